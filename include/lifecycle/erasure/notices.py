"""Notices to people whose account is being erased: when it will happen (*scheduled*) and
that it happened (*completed*), each sent at most once per person.

Each person's ``lifecycle_notices`` row is committed as ``sending`` before their
mail goes out (``mail.send_claimed``); one ledger entry then backs the outcomes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from lifecycle.errors import LifecycleError
from lifecycle.mail import personal_notices, send_claimed
from lifecycle.state.ledger import canonical_json

log = logging.getLogger(__name__)


class ErasureNotices:
    def __init__(self, config, state, stores, mailer: Callable[[], object] | None = None):
        self.config, self.catalog, self.state, self.stores = config, config.catalog, state, stores
        self._mailer = mailer or self._default_mailer

    def _default_mailer(self):
        from lifecycle.mail import Mailer

        settings = self.config.notifications
        if settings is None:  # validation refuses notices without mail settings; a model built in code may not
            raise LifecycleError("notices need notifications.yaml: email (conn_id, from)")
        return Mailer(settings.email.conn_id, settings.email.from_, settings.email.max_per_second)

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
        """Send ``template`` at most once per subject.

        Each person's ``lifecycle_notices`` row is committed as ``sending``
        before their mail goes out (``mail.send_claimed``); the outcome
        follows: ``sent``, ``undeliverable`` (the server refused it for good),
        ``deferred`` (it refused it for now, every try), or ``skipped`` without
        an address.  A refused completion notice does not hold the erasure up.
        A row a killed run left ``sending`` becomes ``uncertain`` and is not
        sent again: whether the server took that mail is unknown.  Notices
        that earlier versions recorded one ledger entry each
        (``notice:<template>:<subject>``) count as sent.  Then one ledger
        entry backs the outcomes not yet backed (``_summarize``).
        """
        recorded = self.state.notices.rows(template, [r.subject_id for r in records])
        interrupted = sorted(s for s, row in recorded.items() if row.status == "sending")
        if interrupted:
            self.state.notices.claims(template, scope).mark_uncertain(interrupted)
            log.warning(
                "%s: %d notice(s) left 'sending' by an interrupted run are recorded uncertain and not sent again",
                template,
                len(interrupted),
            )
        fresh = [r for r in records if r.subject_id not in recorded]
        legacy = self.state.ledger.keys_among([f"notice:{template}:{r.subject_id}" for r in fresh]) if fresh else set()
        todo = [r for r in fresh if f"notice:{template}:{r.subject_id}" not in legacy]
        counts = {
            "sent": 0,
            "no_address": 0,
            "already": len(records) - len(todo) - len(interrupted),
            "uncertain": len(interrupted),
        }
        if todo:
            outcomes = self._mail(template, todo, scope, extra)
            counts["already"] += outcomes.pop("taken", 0)
            for status, n in outcomes.items():
                counts[status] = counts.get(status, 0) + n
        unbacked = [s for s, row in recorded.items() if row.ledger_hash is None] + [r.subject_id for r in todo]
        if unbacked:
            self._summarize(template, unbacked, scope, run_id)
        return counts

    def _summarize(self, template: str, subjects: list[str], scope: str, run_id: str | None) -> None:
        """One ledger entry for the outcomes among ``subjects`` no entry backs yet (an
        interrupted call's too): counts and the SHA-256 of [subject, status, Message-ID]
        rows in subject order; each row then records the entry's hash."""
        rows = [
            row
            for _, row in sorted(self.state.notices.rows(template, subjects).items())
            if row.ledger_hash is None and row.status != "sending"
        ]
        if not rows:
            return
        listing = [[row.subject_id, row.status, row.message_id] for row in rows]
        digest = hashlib.sha256(canonical_json(listing).encode("utf-8")).hexdigest()
        statuses: dict[str, int] = {}
        for _, status, _ in listing:
            statuses[status] = statuses.get(status, 0) + 1
        entry = self.state.ledger.append(
            "notice.batch",
            {
                "template": template,
                "scope": scope,
                "subjects": len(listing),
                "statuses": statuses,
                "notices_sha256": digest,
            },
            run_id=run_id,
            key=f"notices:{template}:{digest[:32]}",
        )
        self.state.notices.back(template, [row.subject_id for row in rows], entry.entry_hash)

    def _mail(self, template: str, todo: list, scope: str, extra) -> dict[str, int]:
        """Render, claim and send each notice (``mail.send_claimed``); counts by outcome."""
        contacts = self.stores.of(self.catalog.subject.dataset).contacts([r.subject_id for r in todo])
        settings = self.config.notifications
        fallback = settings.locales[0] if settings else "en"
        email = settings.email if settings else None
        notice = personal_notices(template, fallback)
        records = {r.subject_id: r for r in todo}
        with self._mailer() as mailer:

            def prepare(subject: str):
                person, record = contacts.get(subject) or {}, records[subject]
                if not person.get("email"):
                    return None
                context = {**self._context(record), **(extra(record) if extra else {})}
                return mailer.compose(
                    person["email"],
                    notice(person.get("locale"), person.get("name"), **context),
                    key=f"notice:{template}:{subject}",
                )

            retries = {"attempts": email.retry_attempts, "backoff": email.retry_backoff.seconds} if email else {}
            return dict(
                send_claimed(
                    mailer, list(records), self.state.notices.claims(template, scope), prepare=prepare, **retries
                )
            )

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
