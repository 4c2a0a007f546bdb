"""Migration 2: the erasure states, one row per subject (frozen as written)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

erasures = sa.Table(
    "lifecycle_erasures",
    metadata,
    sa.Column("subject_id", sa.String(255), primary_key=True),
    sa.Column("request_ids", sa.Text, nullable=False),
    sa.Column("requested_at", sa.String(32), nullable=False),
    sa.Column("grace_end", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.Text),
    sa.Column("batch", sa.String(255), index=True),
    sa.Column("first_seen", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("completed_at", sa.String(32)),
    sa.Column("certificate", sa.Text),
)


def upgrade(conn: sa.Connection, now: str) -> None:
    metadata.create_all(conn, checkfirst=True)
