"""Migration 3: the sharing register (frozen as written)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

sharing_register = sa.Table(
    "lifecycle_sharing_register",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_key", sa.String(255), nullable=False, unique=True),
    sa.Column("recipient_id", sa.String(64), nullable=False, index=True),
    sa.Column("recipient_name", sa.Text, nullable=False),
    sa.Column("contact", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("legal_basis", sa.String(32), nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("processing", sa.Text, nullable=False),
    sa.Column("agreement_id", sa.String(128)),
    sa.Column("categories", sa.Text, nullable=False),
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("rule", sa.String(64)),
    sa.Column("reason", sa.Text),
    sa.Column("records", sa.BigInteger, nullable=False),
    sa.Column("manifest", sa.Text),
    sa.Column("manifest_sha256", sa.String(64)),
    sa.Column("interval_start", sa.String(32), nullable=False, index=True),
    sa.Column("interval_end", sa.String(32), nullable=False),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("ledger_hash", sa.String(64)),
)


def upgrade(conn: sa.Connection, now: str) -> None:
    metadata.create_all(conn, checkfirst=True)
