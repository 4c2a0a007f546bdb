"""One batch's mails, nobody twice.

The ``Notifier`` sends them; ``DeliveryBook`` is their claim table (the
incident's delivery rows, unique per incident and person, committed before
each mail) and their evidence: one hash-chained ledger entry over the batch's
outcomes once none is left ``sending``.  A rerun never mails a person whose
row exists; a row left ``sending`` by a killed run becomes ``uncertain``, and
that person goes on the letter and telephone lists.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lifecycle.incident import documents
from lifecycle.incident.approval import may_notify
from lifecycle.mail import personal_notices
from lifecycle.notifier import Recorded

if TYPE_CHECKING:
    from lifecycle.incident.models import Run
    from lifecycle.incident.services import Services

log = logging.getLogger(__name__)


class DeliveryBook:
    """The delivery rows one batch of a run claims (by any run of the incident, for the
    batch's people)."""

    def __init__(self, services: Services, run: Run, batch: int, subjects: Sequence[str]):
        self.services, self.run, self.batch, self.subjects = services, run, batch, subjects
        self.name = f"incident {run.incident_id} batch {batch}"

    def recorded(self, subjects: Sequence[str]) -> dict[str, Recorded]:
        """Backed by the batch's ledger entry, which is written once: never marked per row."""
        claimed = self.services.state.incidents.claimed(self.run.incident_id, subjects)
        return {s: Recorded(status, False) for s, status in claimed.items()}

    def claims(self):
        return self.services.state.incidents.claims(self.run.incident_id, self.run.run_id, self.batch)

    def counts(self) -> dict[str, int]:
        return self.services.state.incidents.delivery_counts_among(self.run.incident_id, self.subjects)

    def summarize(self, subjects: Sequence[str], run_id: str | None) -> None:
        """The batch's entry: its counts and the SHA-256 of its delivery rows, once none is ``sending``."""
        counts = self.counts()
        if counts.get("sending", 0):
            return
        incidents, incident = self.services.state.incidents, self.run.incident_id
        rows = incidents.batch_deliveries(incident, self.run.run_id, self.batch)
        digest = hashlib.sha256(json.dumps([list(r) for r in rows]).encode()).hexdigest()
        payload = {"incident": incident, "batch": self.batch, "counts": counts, "deliveries_sha256": digest}
        self.services.record("batch", payload, self.run, part=str(self.batch))


def send_batch(services: Services, run_id: str, batch: int) -> dict:
    """Mail one batch over one SMTP session; returns the batch's delivery counts."""
    run = services.run(run_id)
    may_notify(run)
    subjects = services.state.incidents.mailable(run_id, batch)
    book = DeliveryBook(services, run, batch, subjects)
    services.notifier.deliver(
        book, subjects, lambda todo, mailer: _composer(services, run, todo, mailer), run_id=run_id
    )
    counts = book.counts()
    log.info("incident %s batch %d: %s", run.incident_id, batch, counts)
    return {"batch": batch, **counts}


def _composer(services: Services, run: Run, todo: Sequence[str], mailer):
    """What composes each person's notice: their address and name read once for ``todo``,
    the notice rendered once per language."""
    mail = services.mail
    contacts = services.people().contacts(list(todo), ("email", "name", "locale"))
    context = documents.notice_context(services.catalog, mail, run.form, run.scope)
    notice = personal_notices(documents.NOTICE_TEMPLATE, mail.locales[0], **context)

    def compose(subject: str):
        person = contacts.get(subject) or {}
        if not person.get("email"):  # the address went away since resolve
            return None
        message = notice(person.get("locale"), person.get("name"))
        return mailer.compose(person["email"], message, key=f"incident:{run.incident_id}:{subject}")

    return compose
