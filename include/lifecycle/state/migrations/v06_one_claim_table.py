"""Migration 6: one claim table for every notice (frozen as written).  The rows of
``lifecycle_notices`` (migration 5) and ``lifecycle_incident_deliveries``
(migration 4) move to ``lifecycle_deliveries``; the two tables are dropped.
Incident rows had no claim time: they get the migration's."""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle.state.migrations.paging import pages
from lifecycle.state.migrations.v04_incidents import incident_deliveries
from lifecycle.state.migrations.v05_notices import notices

metadata = sa.MetaData()

deliveries = sa.Table(
    "lifecycle_deliveries",
    metadata,
    sa.Column("notice", sa.String(128), primary_key=True),
    sa.Column("subject_id", sa.String(255), primary_key=True),
    sa.Column("scope", sa.String(255), nullable=False),
    sa.Column("batch", sa.Integer),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(255)),
    sa.Column("code", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("locale", sa.String(16)),
    sa.Column("message_id", sa.String(255)),
    sa.Column("claimed_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("ledger_hash", sa.String(64)),
    sa.Index("ix_lifecycle_deliveries_scope", "scope", "batch"),
)

_NOTICE_COLUMNS = (
    "subject_id",
    "scope",
    "status",
    "reason",
    "locale",
    "message_id",
    "claimed_at",
    "updated_at",
    "ledger_hash",
)


def _notice_row(row, now: str) -> dict:
    return {**{c: row[c] for c in _NOTICE_COLUMNS}, "notice": f"notice:{row['template']}", "attempts": 0}


def _incident_row(row, now: str) -> dict:
    return {
        "notice": f"incident:{row['incident_id']}",
        "subject_id": row["subject_id"],
        "scope": row["run_id"],
        "batch": row["batch"],
        "status": row["status"],
        "code": row["code"],
        "attempts": row["attempts"],
        "message_id": row["message_id"],
        "claimed_at": now,
        "updated_at": now,
    }


def upgrade(conn: sa.Connection, now: str) -> None:
    metadata.create_all(conn, checkfirst=True)
    present = sa.inspect(conn)
    for old, convert in ((notices, _notice_row), (incident_deliveries, _incident_row)):
        if not present.has_table(old.name):
            continue
        for part in pages(conn, sa.select(old)):
            conn.execute(deliveries.insert(), [convert(row, now) for row in part])
        old.drop(conn)
