"""lifecycle_checks end to end through Airflow on the seeded demo world."""

import json

import sqlalchemy as sa

from tests.airflow.conftest import AirflowWorld


def test_checks_pass_on_the_demo_world_then_fail_on_drift(airflow_world: AirflowWorld):
    result = airflow_world.run_dags("lifecycle_checks")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "lifecycle_checks: success" in result.stdout
    assert '"findings": 0' in result.stdout and '"table_datasets": 14' in result.stdout  # 12 SQL tables, 2 lake tables
    assert "1 of 1 DAG run(s) succeeded" in result.stdout
    assert "run_complete                 success" in result.stdout
    assert "discover_columns             success" in result.stdout
    kept = json.loads((airflow_world.var / "reports" / "discovery" / "coverage.json").read_text())
    assert kept["systems"]["app_db"]["unclassified"] == 0 and kept["systems"]["app_db"]["flagged"] == 0, kept

    engine = sa.create_engine(f"sqlite:///{airflow_world.var / 'app.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE users ADD COLUMN nickname VARCHAR(40)"))
    try:
        result = airflow_world.run_dags("lifecycle_checks", as_of="2026-11-27")
        assert result.returncode == 1
        assert "lifecycle_checks: failed" in result.stdout
        assert "scan_schema                  failed" in result.stdout
        assert "discover_columns             failed" in result.stdout
        kept = json.loads((airflow_world.var / "reports" / "discovery" / "coverage.json").read_text())
        assert [(c["table"], c["column"]) for c in kept["columns"] if c["standing"] == "unclassified"] == [
            ("users", "nickname")
        ]
        assert "validate_config              success" in result.stdout
        assert "run_complete                 upstream_failed" in result.stdout
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE users DROP COLUMN nickname"))
        engine.dispose()
