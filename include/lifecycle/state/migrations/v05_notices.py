"""Migration 5: erasure notices, one claim row per template and person (frozen as
written; migration 6 moved its rows to ``lifecycle_deliveries`` and dropped it)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

notices = sa.Table(
    "lifecycle_notices",
    metadata,
    sa.Column("template", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(255), primary_key=True),
    sa.Column("scope", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(255)),
    sa.Column("locale", sa.String(16)),
    sa.Column("message_id", sa.String(255)),
    sa.Column("claimed_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("ledger_hash", sa.String(64)),
)


def upgrade(conn: sa.Connection, now: str) -> None:
    metadata.create_all(conn, checkfirst=True)
