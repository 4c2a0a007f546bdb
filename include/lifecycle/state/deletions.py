"""Deletion requests sent to recipients (``lifecycle_recipient_deletions``), and their claim rows.

One request per scope (``request:<id>`` for a withdrawn consent,
``erasure:<batch>`` for erased accounts) and recipient.  It is mailed
through the one claim table (``lifecycle_deliveries``, rows
``deletion:<scope>`` with the recipient id in ``subject_id``), so a
recipient is asked once per scope even after a kill; this table is the
register of what was asked: the reason, the purpose, how many people (never
who: they are named in the mail only, by the recipient's pseudonym), the
outcome, the Message-ID and the ledger entry that backs it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from lifecycle.state.claims import Claims
from lifecycle.state.schema import deliveries, recipient_deletions

PREFIX = "deletion:"


def notice_of(scope: str) -> str:
    """The claim rows' notice name of a scope (the column holds 128 characters)."""
    name = PREFIX + scope
    if len(name) <= 128:
        return name
    return PREFIX + hashlib.sha256(scope.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ClaimRow:
    recipient_id: str
    status: str
    message_id: str | None
    ledger_hash: str | None


@dataclass(frozen=True)
class DeletionRow:
    scope: str
    recipient_id: str
    reason: str  # withdraw_consent | cancellation
    purpose: str | None
    subjects: int
    status: str  # sent | undeliverable | deferred | uncertain (sending: not yet summarized)
    message_id: str | None
    run_id: str | None
    recorded_at: str
    ledger_hash: str | None


class RecipientDeletions:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def claims(self, scope: str) -> Claims:
        """The claim rows of ``scope``'s deletion requests; a recipient without a contact address
        gets ``undeliverable`` at once."""
        return Claims(self.engine, notice_of(scope), scope, no_address="undeliverable")

    def claimed(self, scope: str, recipients: Sequence[str]) -> dict[str, ClaimRow]:
        """The claim rows of ``scope`` for ``recipients``, by recipient."""
        if not recipients:
            return {}
        query = sa.select(deliveries).where(
            deliveries.c.notice == notice_of(scope), deliveries.c.subject_id.in_(list(recipients))
        )
        with self.engine.connect() as conn:
            return {
                row.subject_id: ClaimRow(row.subject_id, row.status, row.message_id, row.ledger_hash)
                for row in conn.execute(query)
            }

    def record(self, row: DeletionRow) -> None:
        """Insert or update the register row of (scope, recipient), and back its claim row with
        ``row.ledger_hash``, in one transaction."""
        values = dict(row.__dict__)
        mine = sa.and_(recipient_deletions.c.scope == row.scope, recipient_deletions.c.recipient_id == row.recipient_id)
        with self.engine.begin() as conn:
            if not conn.execute(recipient_deletions.update().where(mine).values(values)).rowcount:
                conn.execute(recipient_deletions.insert().values(values))
            conn.execute(
                deliveries.update()
                .where(deliveries.c.notice == notice_of(row.scope), deliveries.c.subject_id == row.recipient_id)
                .values(ledger_hash=row.ledger_hash)
            )

    def recorded_between(self, start: str, end: str) -> list[DeletionRow]:
        """Deletion requests recorded in [start, end) (ISO UTC)."""
        recorded = recipient_deletions.c.recorded_at
        query = sa.select(recipient_deletions).where(recorded >= start, recorded < end)
        query = query.order_by(recorded, recipient_deletions.c.scope, recipient_deletions.c.recipient_id)
        with self.engine.connect() as conn:
            return [DeletionRow(**row._mapping) for row in conn.execute(query)]

    def rows(self, scope: str | None = None) -> list[DeletionRow]:
        query = sa.select(recipient_deletions)
        if scope is not None:
            query = query.where(recipient_deletions.c.scope == scope)
        query = query.order_by(recipient_deletions.c.scope, recipient_deletions.c.recipient_id)
        with self.engine.connect() as conn:
            return [DeletionRow(**row._mapping) for row in conn.execute(query)]
