"""Migration 7: regulator deliveries (frozen as written, in ``v07_regulator_deliveries.yaml``), and a ``before_delivery``
row for each report an approved run wrote before the table existed, so that those
are not taken for reports still owed."""

from __future__ import annotations

import json

import sqlalchemy as sa

from lifecycle.state.migrations import changelog
from lifecycle.state.migrations.paging import pages

STEP = "v07_regulator_deliveries"


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
    changelog.apply(conn, STEP)
    regulator_deliveries = changelog.tables(STEP)["lifecycle_regulator_deliveries"]
    incident_runs = changelog.tables("v04_incidents")["lifecycle_incident_runs"]
    if conn.execute(sa.select(regulator_deliveries.c.run_id).limit(1)).first() is not None:
        return  # a migration interrupted after its inserts: they were committed with the table
    query = sa.select(incident_runs).where(incident_runs.c.dry_run.is_(False), incident_runs.c.figures.is_not(None))
    rows = [row for part in pages(conn, query) for run in part for row in _registered(run)]
    if rows:
        conn.execute(regulator_deliveries.insert(), rows)
