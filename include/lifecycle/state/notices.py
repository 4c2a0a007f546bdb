"""Erasure notices (``lifecycle_notices``): one row per template and person.

A row is claimed ``sending`` before the mail (``NoticeClaims``) and becomes
``sent``, ``undeliverable``, ``deferred``, ``skipped`` (no address) or
``uncertain``; the ledger entry that backs its outcome is recorded in the
row afterwards (``back``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from lifecycle.batching import chunks
from lifecycle.clock import iso_utc
from lifecycle.state.claims import Claims, Outcome
from lifecycle.state.schema import notices


@dataclass(frozen=True)
class NoticeRow:
    template: str
    subject_id: str
    scope: str  # the erasure batch, or "scheduled"
    status: str
    reason: str | None
    locale: str | None
    message_id: str | None
    claimed_at: str
    updated_at: str
    ledger_hash: str | None  # the ledger entry that backs the outcome; None: not backed yet


def _now() -> str:
    return iso_utc(datetime.now(UTC))


class NoticeClaims(Claims):
    """``lifecycle_notices`` rows of one template, claimed under ``scope``."""

    def __init__(self, engine: sa.Engine, template: str, scope: str):
        super().__init__(engine, notices, template=template)
        self.scope = scope

    def _row(self, message_id: str | None, locale: str | None) -> dict:
        now = _now()
        row = {"scope": self.scope, "claimed_at": now, "updated_at": now}
        if message_id is None:
            return {**row, "status": "skipped", "reason": "no e-mail address"}
        return {**row, "status": "sending", "locale": locale, "message_id": message_id}

    def _outcome_row(self, outcome: Outcome) -> dict:
        return {
            "status": outcome.status,
            "reason": f"SMTP {outcome.code}" if outcome.code else None,
            "updated_at": _now(),
        }

    def _uncertain_row(self) -> dict:
        return {"updated_at": _now()}


class Notices:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def claims(self, template: str, scope: str) -> NoticeClaims:
        return NoticeClaims(self.engine, template, scope)

    def rows(self, template: str, subjects: Sequence[str]) -> dict[str, NoticeRow]:
        """The rows of ``template`` for ``subjects``, by subject."""
        found = {}
        with self.engine.connect() as conn:
            for part in chunks(subjects, 1000):
                found.update(
                    (row.subject_id, NoticeRow(**row._mapping))
                    for row in conn.execute(
                        sa.select(notices).where(notices.c.template == template, notices.c.subject_id.in_(part))
                    )
                )
        return found

    def back(self, template: str, subjects: Sequence[str], ledger_hash: str) -> None:
        """Record in the subjects' rows of ``template`` the ledger entry that backs their outcomes."""
        with self.engine.begin() as conn:
            for part in chunks(subjects, 1000):
                conn.execute(
                    notices.update()
                    .where(notices.c.template == template, notices.c.subject_id.in_(part))
                    .values(ledger_hash=ledger_hash)
                )

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows by template and status."""
        counted: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for template, status, n in conn.execute(
                sa.select(notices.c.template, notices.c.status, sa.func.count()).group_by(
                    notices.c.template, notices.c.status
                )
            ):
                counted.setdefault(template, {})[status] = n
        return counted
