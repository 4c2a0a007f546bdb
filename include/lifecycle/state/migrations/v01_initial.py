"""Migration 1: the hash-chained ledger, its head row, legal holds (frozen as written)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ledger_entries = sa.Table(
    "lifecycle_ledger",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("idempotency_key", sa.String(255), unique=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)

ledger_head = sa.Table(
    "lifecycle_ledger_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)

legal_holds = sa.Table(
    "lifecycle_legal_holds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subject_id", sa.String(255), nullable=False, index=True),
    sa.Column("datasets", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("until", sa.Date),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("removed_at", sa.String(32)),
)


def upgrade(conn: sa.Connection, now: str) -> None:
    metadata.create_all(conn, checkfirst=True)
    if conn.execute(sa.select(ledger_head.c.id)).first() is None:
        conn.execute(ledger_head.insert().values(id=1, seq=0, entry_hash="0" * 64))
