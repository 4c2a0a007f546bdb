"""Notices to people whose account is being erased: when it will happen (*scheduled*) and
that it happened (*completed*), each sent at most once per person.

The ``Notifier`` sends them; ``NoticeBook`` is their claim table
(``notice:<template>`` rows of ``lifecycle_deliveries``, one per template and person) and their evidence:
one ``notice.batch`` ledger entry over the outcomes each call adds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence

from lifecycle.evidence import notice_outcomes, notice_sent_before
from lifecycle.mail import personal_notices
from lifecycle.notifier import Notifier, Recorded
from lifecycle.state.ledger import canonical_json

log = logging.getLogger(__name__)


class NoticeBook:
    """The claim rows of one template, claimed under ``scope`` (a batch, or
    the run that sends scheduled notices).  Notices that earlier versions recorded as one
    ledger entry each (``notice:<template>:<subject>``) count as sent."""

    def __init__(self, state, template: str, scope: str):
        self.state, self.template, self.scope, self.name = state, template, scope, template

    def recorded(self, subjects: Sequence[str]) -> dict[str, Recorded]:
        found = {
            s: Recorded(r.status, r.ledger_hash is not None)
            for s, r in self.state.notices.rows(self.template, subjects).items()
        }
        fresh = [s for s in subjects if s not in found]
        if fresh:
            legacy = self.state.ledger.keys_among([notice_sent_before(self.template, s) for s in fresh])
            found.update((s, Recorded("sent", True)) for s in fresh if notice_sent_before(self.template, s) in legacy)
        return found

    def claims(self):
        return self.state.notices.claims(self.template, self.scope)

    def summarize(self, subjects: Sequence[str], run_id: str | None) -> None:
        """Counts and the SHA-256 of [subject, status, Message-ID] rows in subject order, of the
        outcomes among ``subjects`` no entry backs yet (an interrupted call's too); each row
        then records the entry's hash."""
        rows = [
            row
            for _, row in sorted(self.state.notices.rows(self.template, subjects).items())
            if row.ledger_hash is None and row.status != "sending"
        ]
        if not rows:
            return
        listing = [[row.subject_id, row.status, row.message_id] for row in rows]
        digest = hashlib.sha256(canonical_json(listing).encode("utf-8")).hexdigest()
        statuses: dict[str, int] = {}
        for _, status, _ in listing:
            statuses[status] = statuses.get(status, 0) + 1
        payload = {
            "template": self.template,
            "scope": self.scope,
            "subjects": len(listing),
            "statuses": statuses,
            "notices_sha256": digest,
        }
        entry = self.state.ledger.append(
            "notice.batch", payload, run_id=run_id, key=notice_outcomes(self.template, digest)
        )
        self.state.notices.back(self.template, [row.subject_id for row in rows], entry.entry_hash)


class ErasureNotices:
    def __init__(self, config, state, stores, mailer: Callable[[], object] | None = None):
        self.config, self.catalog, self.state, self.stores = config, config.catalog, state, stores
        self.notifier = Notifier(config.notifications, mailer, rates=state.send_rates, rate_scope="erasure")

    def _context(self, record) -> dict:
        contact = self.config.notifications.contact if self.config.notifications else None
        return {
            "requested_on": record.requested_at[:10],
            "erase_on": record.grace_end[:10],
            "contact_name": contact.name if contact else "",
            "contact_email": contact.email if contact else "",
        }

    def send(
        self,
        template: str,
        records: list,
        scope: str,
        extra: Callable[[object], dict] | None = None,
        run_id: str | None = None,
    ) -> dict:
        """Send ``template`` at most once per subject: ``sent``, ``undeliverable`` (the server
        refused it for good), ``deferred`` (for now, every try), ``no_address``; ``already``
        sent before, ``uncertain`` after an interrupted run.  A refused completion notice
        does not hold the erasure up."""
        by_subject = {r.subject_id: r for r in records}
        fallback = self.config.notifications.locales[0] if self.config.notifications else "en"
        notice = personal_notices(template, fallback)

        def prepare(todo: Sequence[str], mailer):
            contacts = self.stores.of(self.catalog.subject.dataset).contacts(list(todo))

            def compose(subject: str):
                person, record = contacts.get(subject) or {}, by_subject[subject]
                if not person.get("email"):
                    return None
                context = {**self._context(record), **(extra(record) if extra else {})}
                message = notice(person.get("locale"), person.get("name"), **context)
                return mailer.compose(person["email"], message, key=f"notice:{template}:{subject}")

            return compose

        book = NoticeBook(self.state, template, scope)
        delivered = self.notifier.deliver(book, list(by_subject), prepare, run_id=run_id)
        outcomes = dict(delivered.outcomes)
        counts = {"sent": 0, "no_address": 0, "already": delivered.already + outcomes.pop("taken", 0)}
        counts["uncertain"] = delivered.uncertain
        for status, n in outcomes.items():
            counts[status] = counts.get(status, 0) + n
        return counts

    def completed(self, records: list, retained: dict[str, list[str]], batch: str, run_id: str | None) -> dict:
        """The completion notice of each erased subject, naming what was kept and why."""
        template = self.config.cancellation.notify.completed
        extra = lambda record: {"retained": retained.get(record.subject_id, [])}  # noqa: E731
        return self.send(template, records, batch, extra=extra, run_id=run_id)

    def scheduled(self, run_id: str | None = None) -> dict:
        template = self.config.cancellation.notify.scheduled
        if not template:
            return {"sent": 0}
        records = self.state.erasures.in_states("pending", "due", "erasing")
        counts = self.send(template, records, run_id or "scheduled", run_id=run_id)
        log.info("scheduled notices: %s", counts)
        return counts
