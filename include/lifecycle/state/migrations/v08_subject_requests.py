"""Migration 8: the register of a person's own requests, and deletion requests sent
to recipients (frozen as written)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

subject_requests = sa.Table(
    "lifecycle_subject_requests",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("subject_id", sa.String(255), index=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("categories", sa.Text),
    sa.Column("purpose", sa.String(128)),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.Text),
    sa.Column("received_at", sa.String(32), nullable=False),
    sa.Column("due_at", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(250)),
    sa.Column("plan", sa.Text),
    sa.Column("result", sa.Text),
    sa.Column("completed_at", sa.String(32)),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

recipient_deletions = sa.Table(
    "lifecycle_recipient_deletions",
    metadata,
    sa.Column("scope", sa.String(255), primary_key=True),
    sa.Column("recipient_id", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("purpose", sa.String(128)),
    sa.Column("subjects", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message_id", sa.String(255)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("ledger_hash", sa.String(64)),
)


def upgrade(conn: sa.Connection, now: str) -> None:
    metadata.create_all(conn, checkfirst=True)
