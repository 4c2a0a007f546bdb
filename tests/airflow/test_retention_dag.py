"""retention_expiry end to end through Airflow on the seeded demo world."""

import json
from datetime import datetime

import sqlalchemy as sa
from dateutil.relativedelta import relativedelta

from tests.airflow.conftest import AS_OF, AirflowWorld


def test_retention_expiry_applies_the_plan_and_writes_its_report(airflow_world: AirflowWorld):
    engine = sa.create_engine(f"sqlite:///{airflow_world.var / 'app.db'}")
    cutoff = datetime.fromisoformat(AS_OF) - relativedelta(months=6)     # the demo's network-logs-6mo rule
    with engine.connect() as conn:
        expired_before = conn.execute(sa.text("SELECT count(*) FROM access_logs WHERE logged_at < :c"), {"c": cutoff}).scalar()
    result = airflow_world.run_dags("retention_expiry")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "retention_expiry: success" in result.stdout
    assert "apply_app_db_stage_0[0]" in result.stdout and "evidence_complete" in result.stdout

    reports = sorted((airflow_world.var / "reports" / "retention").rglob("report.json"))
    assert reports, "the run writes its report into the reports destination"
    document = json.loads(reports[-1].read_text())
    logs = next(d for d in document["datasets"] if d["dataset"] == "access_logs")
    assert logs["effective_cutoff"] == cutoff.isoformat() + "+00:00"
    assert logs["deleted"] + logs["held"] == logs["candidates"] == expired_before > 0
    assert document["verification"]["ok"] is True
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM access_logs WHERE logged_at < :c"), {"c": cutoff}).scalar()
    engine.dispose()
    assert expired_before > left == logs["held"]
