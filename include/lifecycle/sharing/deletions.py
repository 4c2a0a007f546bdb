"""Deletion requests to recipients that received a person's data: after a consent is
withdrawn (``rights.withdraw``) and after an account is erased (``erasure.batch``).

Who is asked:

* **a withdrawn consent** — every recipients.yaml recipient whose
  ``consent.purpose`` is the purpose, with a *delivered* sharing register
  entry that carried records and whose data interval
  ``[interval_start, interval_end]`` overlaps a period the person's consent
  for the purpose was in force (``[granted, withdrawn)``, or up to the run's
  time when not withdrawn before it).  The extract judges consent at the
  interval's end, so this is a superset of the deliveries that carried the
  person: asking a recipient that never got them is harmless, missing one is not.
* **an erased account** — every recipient with a delivered entry that
  carried records, whenever it was: the person's account creation date is
  gone with the account, and a recipient's files do not say whom they hold
  without its pseudonyms, so every recipient that ever received data is asked.

Each recipient gets one mail per scope (``request:<id>``, ``erasure:<batch>``)
naming the people by the identifier its deliveries carry (``_subject``: the
recipient's keyed pseudonym, or the subject id when ``pseudonymize_subject``
is false), sent through the ``Notifier`` over the claim table (rows
``deletion:<scope>`` of ``lifecycle_deliveries``), so a rerun after a kill
never asks twice.  Each outcome is one ledger entry
(``evidence.recipient_deletion``) and one row of ``lifecycle_recipient_deletions``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lifecycle.clock import iso_utc
from lifecycle.evidence import recipient_deletion
from lifecycle.mail import render_notice
from lifecycle.notifier import Notifier, Recorded
from lifecycle.sharing.pseudonym import pseudonymizer
from lifecycle.sharing.register import SharingRegister
from lifecycle.state.deletions import DeletionRow
from lifecycle.state.ledger import canonical_json

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "recipient_deletion_request"


@dataclass(frozen=True)
class Asked:
    """One recipient to ask, and the people (subject ids: they leave only as its pseudonyms)."""

    recipient: object  # config.recipients.Recipient
    subjects: tuple[str, ...]


def _delivered(state, recipient_id: str) -> list[tuple[datetime, datetime]]:
    """The data intervals of the recipient's delivered entries that carried records."""
    return [
        (datetime.fromisoformat(e["interval_start"]), datetime.fromisoformat(e["interval_end"]))
        for e in SharingRegister(state).entries(recipient=recipient_id)
        if e["outcome"] == "delivered" and (e["records"] or 0) > 0
    ]


def consent_recipients(config, state, purpose: str, periods: Sequence, as_of: datetime) -> list:
    """The recipients that may hold the person's data under consent to ``purpose`` (module
    docstring): ``periods`` are the person's ``ConsentPeriod`` rows for the purpose."""
    if config.recipients is None:
        return []
    spans = [(p.granted, min(p.withdrawn or as_of, as_of)) for p in periods if p.granted <= as_of]
    found = []
    for recipient in config.recipients.recipients:
        if recipient.consent is None or recipient.consent.purpose != purpose:
            continue
        intervals = _delivered(state, recipient.id)
        if any(start <= end_c and granted <= end for start, end in intervals for granted, end_c in spans):
            found.append(recipient)
    return found


def erasure_recipients(config, state) -> list:
    """Every recipient with a delivered entry that carried records (module docstring)."""
    if config.recipients is None:
        return []
    return [r for r in config.recipients.recipients if _delivered(state, r.id)]


def deletion_template(config) -> str | None:
    """requests.yaml's ``notify.deletion_request`` (None: no mail), else the default template."""
    return config.requests.notify.deletion_request if config.requests is not None else DEFAULT_TEMPLATE


class DeletionBook:
    """The claim rows of one scope's deletion requests (the recipients are the claim's
    "subjects"), and their evidence: one ledger entry and one register row per outcome."""

    def __init__(self, state, scope: str, reason: str, purpose: str | None, asked: dict[str, Asked], pseudonyms):
        self.state, self.scope, self.reason, self.purpose = state, scope, reason, purpose
        self.asked, self.pseudonyms, self.name = asked, pseudonyms, f"deletion:{scope}"

    def recorded(self, recipients: Sequence[str]) -> dict[str, Recorded]:
        return {
            r: Recorded(row.status, row.ledger_hash is not None)
            for r, row in self.state.deletions.claimed(self.scope, recipients).items()
        }

    def claims(self):
        return self.state.deletions.claims(self.scope)

    def summarize(self, recipients: Sequence[str], run_id: str | None) -> None:
        """For each outcome no entry backs yet: the ledger entry (record-once by key), then the register row."""
        for rid, row in sorted(self.state.deletions.claimed(self.scope, recipients).items()):
            if row.ledger_hash is not None or row.status == "sending":
                continue
            listing = self.pseudonyms(self.asked[rid]) if rid in self.asked else []
            payload = {
                "scope": self.scope,
                "recipient_id": rid,
                "reason": self.reason,
                "purpose": self.purpose,
                "subjects": len(listing),
                "pseudonyms_sha256": hashlib.sha256(canonical_json(listing).encode("utf-8")).hexdigest(),
                "status": row.status,
                "message_id": row.message_id,
            }
            entry = self.state.ledger.append(
                "recipient.deletion", payload, run_id=run_id, key=recipient_deletion(self.scope, rid)
            )
            self.state.deletions.record(
                DeletionRow(
                    scope=self.scope,
                    recipient_id=rid,
                    reason=self.reason,
                    purpose=self.purpose,
                    subjects=entry.payload.get("subjects", len(listing)),
                    status=entry.payload.get("status", row.status),
                    message_id=row.message_id,
                    run_id=run_id,
                    recorded_at=iso_utc(datetime.now(UTC)),
                    ledger_hash=entry.entry_hash,
                )
            )


class DeletionRequests:
    """Ask recipients to delete people's data, each recipient once per scope."""

    def __init__(self, config, state, notifier: Notifier, hmac_key: Callable[[], bytes] | None = None):
        from lifecycle import connections

        self.config, self.state, self.notifier = config, state, notifier
        self._hmac_key = hmac_key or (lambda: connections.hmac_key(config.catalog))

    def pseudonyms(self, asked: Asked) -> list[str]:
        """The people as the recipient's deliveries name them (``_subject``), sorted."""
        if asked.recipient.pseudonymize_subject:
            pseudonym = pseudonymizer(self._hmac_key(), asked.recipient.id)
            return sorted(pseudonym(str(s)) for s in asked.subjects)
        return sorted(str(s) for s in asked.subjects)

    def send(
        self,
        scope: str,
        asked: Sequence[Asked],
        *,
        reason: str,
        purpose: str | None = None,
        run_id: str | None = None,
    ) -> dict:
        """One deletion request per recipient of ``asked``; counts and recipient ids only."""
        template = deletion_template(self.config)
        by_id = {a.recipient.id: a for a in asked if a.subjects}
        if not by_id or not template:
            return {"recipients": [], "sent": 0}
        notifications = self.config.notifications
        contact = notifications.contact if notifications else None
        locale = notifications.locales[0] if notifications else "en"
        book = DeletionBook(self.state, scope, reason, purpose, by_id, self.pseudonyms)

        def prepare(todo: Sequence[str], mailer):
            def compose(rid: str):
                one = by_id[rid]
                if not one.recipient.contact:
                    return None
                key = recipient_deletion(scope, rid)
                listing = self.pseudonyms(one)
                notice = render_notice(
                    template,
                    locale,
                    locale,
                    reference=key,
                    agreement_id=one.recipient.agreement.id if one.recipient.agreement else "",
                    recipient_name=one.recipient.name,
                    purpose=one.recipient.purpose if purpose else None,
                    subjects=len(listing),
                    pseudonyms=listing,
                    contact_name=contact.name if contact else "",
                    contact_email=contact.email if contact else "",
                )
                return mailer.compose(one.recipient.contact, notice, key=key)

            return compose

        delivered = self.notifier.deliver(book, sorted(by_id), prepare, run_id=run_id)
        counts = dict(delivered.outcomes)
        counts["already"] = delivered.already + counts.pop("taken", 0)
        counts["uncertain"] = delivered.uncertain
        counts.setdefault("sent", 0)
        counts["recipients"] = sorted(by_id)
        log.info("%s: deletion requests to %d recipient(s): %s", scope, len(by_id), counts)
        return counts
