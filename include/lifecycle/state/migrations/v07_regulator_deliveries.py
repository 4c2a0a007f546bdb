"""Migration 7: regulator deliveries (frozen as written), and a ``before_delivery``
row for each report an approved run wrote before the table existed, so that those
are not taken for reports still owed."""

from __future__ import annotations

import json

import sqlalchemy as sa

from lifecycle.state.migrations.paging import pages
from lifecycle.state.migrations.v04_incidents import incident_runs

metadata = sa.MetaData()

regulator_deliveries = sa.Table(
    "lifecycle_regulator_deliveries",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("regulator_id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("incident_id", sa.String(64), nullable=False, index=True),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("target", sa.Text),
    sa.Column("message_id", sa.String(255)),
    sa.Column("pdf_sha256", sa.String(64)),
    sa.Column("json_sha256", sa.String(64)),
    sa.Column("delivered_at", sa.String(32)),
    sa.Column("deadline", sa.String(32), nullable=False),
    sa.Column("late", sa.Boolean, nullable=False),
)


def _registered(run) -> list[dict]:
    """The ``register`` rows of one run: one per report, when the run was approved."""
    approval = json.loads(run["approval"] or "null") or {}
    reports = json.loads(run["figures"]).get("reports") or {}
    if approval.get("decision") != "approved" or not reports:
        return []
    deadlines = {r["id"]: r["deadline"] for r in json.loads(run["obligations"] or "{}").get("regulators", [])}
    return [
        {
            "run_id": run["run_id"],
            "regulator_id": regulator,
            "channel": "register",
            "incident_id": run["incident_id"],
            "phase": run["phase"],
            "status": "before_delivery",
            "deadline": deadlines.get(regulator, ""),
            "late": False,
        }
        for regulator in reports
    ]


def upgrade(conn: sa.Connection, now: str) -> None:
    metadata.create_all(conn, checkfirst=True)
    if conn.execute(sa.select(regulator_deliveries.c.run_id).limit(1)).first() is not None:
        return  # a migration interrupted after its inserts: they were committed with the table
    query = sa.select(incident_runs).where(incident_runs.c.dry_run.is_(False), incident_runs.c.figures.is_not(None))
    rows = [row for part in pages(conn, query) for run in part for row in _registered(run)]
    if rows:
        conn.execute(regulator_deliveries.insert(), rows)
