"""Erasure notices: the claim rows of ``notice:<template>`` in ``lifecycle_deliveries``,
one per template and person; and the rows of notices named in full (``claims_of``).

A row is claimed ``sending`` before the mail (``Claims``) and becomes
``sent``, ``undeliverable``, ``deferred``, ``skipped`` (no address) or
``uncertain``; the ledger entry that backs its outcome is recorded in the
row afterwards (``back``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from lifecycle.batching import chunks
from lifecycle.state.claims import Claims
from lifecycle.state.schema import deliveries

PREFIX = "notice:"


@dataclass(frozen=True)
class NoticeRow:
    template: str
    subject_id: str
    scope: str  # the erasure batch, or the run that sent scheduled notices
    status: str
    reason: str | None
    locale: str | None
    message_id: str | None
    claimed_at: str
    updated_at: str
    ledger_hash: str | None  # the ledger entry that backs the outcome; None: not backed yet


def _row(row) -> NoticeRow:
    return NoticeRow(
        row.notice.removeprefix(PREFIX),
        row.subject_id,
        row.scope,
        row.status,
        row.reason,
        row.locale,
        row.message_id,
        row.claimed_at,
        row.updated_at,
        row.ledger_hash,
    )


class Notices:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def claims(self, template: str, scope: str) -> Claims:
        return Claims(self.engine, PREFIX + template, scope)

    def claims_of(self, notice: str, scope: str) -> Claims:
        """The claim rows of a notice named in full (``deadlines:<run>``: the summary of a run's findings)."""
        return Claims(self.engine, notice, scope, no_address="undeliverable")

    def claimed(self, notice: str) -> dict[str, tuple[str, str | None]]:
        """(status, Message-ID) of each row of a notice named in full, by subject."""
        query = sa.select(deliveries.c.subject_id, deliveries.c.status, deliveries.c.message_id).where(
            deliveries.c.notice == notice
        )
        with self.engine.connect() as conn:
            return {subject: (status, message_id) for subject, status, message_id in conn.execute(query)}

    def rows(self, template: str, subjects: Sequence[str]) -> dict[str, NoticeRow]:
        """The rows of ``template`` for ``subjects``, by subject."""
        found = {}
        with self.engine.connect() as conn:
            for part in chunks(subjects, 1000):
                query = sa.select(deliveries).where(
                    deliveries.c.notice == PREFIX + template, deliveries.c.subject_id.in_(part)
                )
                found.update((row.subject_id, _row(row)) for row in conn.execute(query))
        return found

    def back(self, template: str, subjects: Sequence[str], ledger_hash: str) -> None:
        """Record in the subjects' rows of ``template`` the ledger entry that backs their outcomes."""
        with self.engine.begin() as conn:
            for part in chunks(subjects, 1000):
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.notice == PREFIX + template, deliveries.c.subject_id.in_(part))
                    .values(ledger_hash=ledger_hash)
                )

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows by template and status."""
        counted: dict[str, dict[str, int]] = {}
        query = (
            sa.select(deliveries.c.notice, deliveries.c.status, sa.func.count())
            .where(deliveries.c.notice.startswith(PREFIX, autoescape=True))
            .group_by(deliveries.c.notice, deliveries.c.status)
        )
        with self.engine.connect() as conn:
            for notice, status, n in conn.execute(query):
                counted.setdefault(notice.removeprefix(PREFIX), {})[status] = n
        return counted
