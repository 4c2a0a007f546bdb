"""One batch's mails, nobody twice.

Before each mail its (incident, person) row is committed in the delivery
table (unique), in the same transaction as the previous mail's outcome
(``mail.send_claimed`` over ``state.incidents.DeliveryClaims``); the batch
ends with one hash-chained ledger entry over its outcomes.  A rerun never
mails a person whose row exists; a row left ``sending`` by a killed run
becomes ``uncertain``, and that person goes on the letter and telephone lists.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING

from lifecycle.incident import documents
from lifecycle.incident.approval import may_send
from lifecycle.mail import personal_notices, send_claimed

if TYPE_CHECKING:
    from lifecycle.incident.models import Run
    from lifecycle.incident.services import Services
    from lifecycle.state.incidents import DeliveryClaims

log = logging.getLogger(__name__)


def send_batch(services: Services, run_id: str, batch: int) -> dict:
    """Mail one batch over one SMTP session; returns the batch's delivery counts."""
    run = services.run(run_id)
    may_send(run)
    incidents, incident = services.state.incidents, run.incident_id
    subjects = incidents.mailable(run_id, batch)
    recorded = incidents.claimed(incident, run_id, batch)
    interrupted = [s for s, status in recorded.items() if status == "sending"]
    claims = incidents.claims(incident, run_id, batch)
    if interrupted:  # a killed run left these between claim and outcome: never resend
        claims.mark_uncertain(interrupted)
    todo = [s for s in subjects if s not in recorded]
    if todo:
        _mail(services, run, todo, claims)
    counts = incidents.delivery_counts_among(incident, subjects)
    if counts.get("sending", 0) == 0:
        rows = incidents.batch_deliveries(incident, run_id, batch)
        digest = hashlib.sha256(json.dumps([list(r) for r in rows]).encode()).hexdigest()
        services.record(
            "batch",
            {"incident": incident, "batch": batch, "counts": counts, "deliveries_sha256": digest},
            run,
            part=str(batch),
        )
    log.info("incident %s batch %d: %s", incident, batch, counts)
    return {"batch": batch, **counts}


def _mail(services: Services, run: Run, todo: list[str], claims: DeliveryClaims) -> None:
    """Send to ``todo`` over one connection, each person's row committed before their mail."""
    cfg = services.cfg
    contacts = services.people().contacts(todo, ("email", "name", "locale"))
    context = documents.notice_context(services.catalog, cfg, run.form, run.scope)
    notice = personal_notices(documents.NOTICE_TEMPLATE, cfg.locales[0], **context)
    with services.mailer() as mailer:

        def prepare(subject: str):
            person = contacts.get(subject) or {}
            if not person.get("email"):  # the address went away since resolve
                return None
            return mailer.compose(
                person["email"],
                notice(person.get("locale"), person.get("name")),
                key=f"incident:{run.incident_id}:{subject}",
            )

        send_claimed(
            mailer,
            todo,
            claims,
            prepare=prepare,
            attempts=cfg.email.retry_attempts,
            backoff=cfg.email.retry_backoff.seconds,
            sleep=services.sleep,
        )
