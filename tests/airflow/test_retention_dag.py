"""retention_expiry end to end through Airflow on the seeded demo world."""

import json
from datetime import datetime

import sqlalchemy as sa
from dateutil.relativedelta import relativedelta

from lifecycle.lineage import COUNTS
from tests.airflow.conftest import AS_OF, AirflowWorld, asset_events, dag_runs, run_id_of
from tests.support.s3 import moto_client


def test_retention_expiry_applies_the_plan_and_writes_its_report(airflow_world: AirflowWorld):
    engine = sa.create_engine(f"sqlite:///{airflow_world.var / 'app.db'}")
    cutoff = datetime.fromisoformat(AS_OF) - relativedelta(months=6)  # the demo's network-logs-6mo rule
    with engine.connect() as conn:
        expired_before = conn.execute(
            sa.text("SELECT count(*) FROM access_logs WHERE logged_at < :c"), {"c": cutoff}
        ).scalar()
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

    events = asset_events(airflow_world, "retention_expiry", run_id_of(result.stdout, "retention_expiry"))
    assert sum(e["rows_deleted"] for e in events["lifecycle.access_logs"]) == expired_before - left
    for d in document["datasets"]:  # every dataset the run changed has its event with the report's counts; none else
        changed = d["deleted"] + d["anonymized"]
        assert (f"lifecycle.{d['dataset']}" in events) == (changed > 0), (d, events)
    assert "lifecycle.chat_photos" not in events and "lifecycle.users" not in events
    assert all(set(e) <= {"action", *COUNTS} for found in events.values() for e in found)


def test_object_retention_through_the_media_connection_deletes_every_expired_version(airflow_world: AirflowWorld):
    """Defect found on the demo: apply_media_stage_0 opened a store by an empty system name. Here the
    demo's photos are old enough to expire (2028) and the task reaches S3 through AIRFLOW_CONN_MEDIA_S3."""
    s3 = moto_client(f"http://127.0.0.1:{airflow_world.env['LIFECYCLE_S3_PORT']}")
    before = [
        v
        for page in s3.get_paginator("list_object_versions").paginate(Bucket="mic-buyer-media", Prefix="chats/")
        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
    ]
    assert before, "the demo world has chat photos"
    conf = json.dumps({"override_guardrail": True, "override_reason": "two years later: everything has expired"})
    result = airflow_world.run(
        "-m", "lifecycle.demo", "run", "--dags", "retention_expiry", "--as-of", "2028-06-01", "--conf", conf
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    [run] = [r for r in dag_runs(result.stdout) if r["dag_id"] == "retention_expiry"]
    assert run["apply_media_stage_0[0]"] == "success" and run["evidence_complete"] == "success", run
    state = sa.create_engine(f"sqlite:///{airflow_world.var / 'state.db'}")
    with state.connect() as conn:  # the demo's legal holds (on every dataset) keep their people's photos
        held = set(
            conn.execute(
                sa.text(
                    "SELECT subject_id FROM lifecycle_legal_holds WHERE removed_at IS NULL "
                    "AND datasets IS NULL AND (until IS NULL OR until >= '2028-06-01')"
                )
            ).scalars()
        )
    state.dispose()
    kept = [v for v in before if v["Key"].split("/")[1] in held]
    left = [
        v
        for page in s3.get_paginator("list_object_versions").paginate(Bucket="mic-buyer-media", Prefix="chats/")
        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
    ]
    assert sorted(v["VersionId"] for v in left) == sorted(v["VersionId"] for v in kept)
    report = sorted((airflow_world.var / "reports" / "retention" / "2028-06-01").rglob("report.json"))[-1]
    photos = next(d for d in json.loads(report.read_text())["datasets"] if d["dataset"] == "chat_photos")
    gone = [v for v in before if v not in kept]
    assert photos["versions_deleted"] == len(gone) > 0 and photos["deleted"] == len({v["Key"] for v in gone})
    events = asset_events(airflow_world, "retention_expiry", run_id_of(result.stdout, "retention_expiry"))
    assert sum(e["versions_deleted"] for e in events["lifecycle.chat_photos"]) == len(gone)
