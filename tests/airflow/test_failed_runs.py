"""A run that could not do its work ends failed, never green (SPEC §5: "a run's state is the truth").

One `demo run` of every kind of lifecycle DAG under a catalog that no longer
names a column of the live `devices` table (every preflight, and
lifecycle_checks' scan, covers that table): each run's first check fails, the
run ends failed naming that task, its last task is upstream_failed, and the
reports that run on `all_done` still ran.  The green cases (nothing due, a dry
run, a rejected approval) are pinned in the tests of each DAG.
"""

from pathlib import Path

import yaml

from tests.airflow.conftest import REPO, AirflowWorld, dag_runs

AS_OF = "2026-11-24"  # a day no other test runs a DAG on
DAGS = (
    "retention_expiry",
    "cancellation_erasure",
    "sharing_push_provider",
    "incident_notification",
    "lifecycle_checks",
)
CHECK = {"lifecycle_checks": "scan_schema"}  # else: preflight
LAST = {"retention_expiry": "evidence_complete"}  # else: run_complete


def drifted_config(folder: Path) -> Path:
    """The demo configuration, except that the catalog no longer names `devices.device_id_type`
    (a column the live table has): to the preflights, an unclassified column."""
    folder.mkdir()
    for path in (REPO / "config" / "lifecycle").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if path.name == "catalog.yaml":
            del data["datasets"]["devices"]["fields"]["device_id_type"]
        (folder / path.name).write_text(yaml.safe_dump(data, allow_unicode=True))
    return folder


def test_a_run_whose_preflight_fails_ends_failed_naming_the_task(airflow_world: AirflowWorld, tmp_path):
    mails_before = airflow_world.mail.count
    result = airflow_world.run_dags(
        *DAGS, as_of=AS_OF, env={"LIFECYCLE_CONFIG_DIR": str(drifted_config(tmp_path / "config"))}
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr[-3000:]
    runs = dag_runs(out)
    # incident_notification runs twice without --conf: the demo's dry run, then the approved run
    assert [r["dag_id"] for r in runs] == [*DAGS[:4], "incident_notification", "lifecycle_checks"], out
    for run in runs:
        dag_id = run["dag_id"]
        assert run["run"] == "failed", f"{dag_id} ended {run['run']}:\n{out}"
        assert run[CHECK.get(dag_id, "preflight")] == "failed", out
        assert run[LAST.get(dag_id, "run_complete")] == "upstream_failed", out
        assert f"{dag_id}: failed" in out
    assert "failed: " + ", ".join([*DAGS[:4], "incident_notification", "lifecycle_checks"]) in out, out

    retention, cancellation, sharing, dry, approved = runs[:5]
    assert retention["report"] == "success", "the report after a failed preflight is written, not retried"
    [report] = (airflow_world.var / "reports" / "retention" / AS_OF).rglob("report.json")
    document = yaml.safe_load(report.read_text())
    assert document["planned"] is False and [f["step"] for f in document["failures"]] == ["preflight"]
    assert "does not match catalog.yaml" in document["failures"][0]["reason"]
    assert cancellation["intake"] == cancellation["erase"] == "upstream_failed", "nobody erased"
    assert cancellation["check_deadlines"] == cancellation["report"] == "success", "the all_done steps still ran"
    assert sharing["gate"] == "success" and sharing["extract_devices"] == "upstream_failed"
    assert dry["register"] == approved["send"] == "upstream_failed"
    assert airflow_world.mail.count == mails_before, "nothing sent"
