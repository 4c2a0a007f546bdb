"""Migration 6: one claim table for every notice (frozen as written; its table in the
changelog ``v06_one_claim_table.yaml``).  The rows of
``lifecycle_notices`` (migration 5) and ``lifecycle_incident_deliveries``
(migration 4) move to ``lifecycle_deliveries``; the two tables are dropped.
Incident rows had no claim time: they get the migration's."""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle.state.migrations import changelog
from lifecycle.state.migrations.paging import pages

STEP = "v06_one_claim_table"

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
    changelog.apply(conn, STEP)
    deliveries = changelog.tables(STEP)["lifecycle_deliveries"]
    notices = changelog.tables("v05_notices")["lifecycle_notices"]
    incident_deliveries = changelog.tables("v04_incidents")["lifecycle_incident_deliveries"]
    present = sa.inspect(conn)
    for old, convert in ((notices, _notice_row), (incident_deliveries, _incident_row)):
        if not present.has_table(old.name):
            continue
        for part in pages(conn, sa.select(old)):
            conn.execute(deliveries.insert(), [convert(row, now) for row in part])
        old.drop(conn)
