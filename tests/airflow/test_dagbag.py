"""The DAG files: they import cleanly, build the DAGs the config asks for, and parse fast."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.config import sample

REPO = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter so the measurement includes nothing cached, with
# every way out of the process closed: a DAG file that touches a database, a
# store or the network at parse time fails this test.
PARSE = r"""
import json, socket, sys, time
def refuse(*args, **kwargs):
    raise RuntimeError("network access at parse time")
socket.socket.connect = refuse
socket.create_connection = refuse
import lifecycle.connections as connections
connections.get_connection = connections.sql_engine = connections.s3_client = refuse
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({
    "seconds": seconds,
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {d.dag_id: {"tags": sorted(d.tags), "doc": bool(d.doc_md), "schedule": str(d.schedule), "tasks": {
        t.task_id: {"trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)), "downstream": sorted(t.downstream_task_ids),
                    "skips_downstream": bool(getattr(t, "inherits_from_skipmixin", False))} for t in d.tasks}}
             for d in bag.dags.values()},
}))
"""


def parse(config_dir: Path, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "LIFECYCLE_CONFIG_DIR": str(config_dir),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    result = subprocess.run(
        [sys.executable, "-c", PARSE, str(REPO / "dags")], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def demo_bag(tmp_path_factory) -> dict:
    return parse(REPO / "config" / "lifecycle", tmp_path_factory.mktemp("demo"))


def test_demo_config_builds_every_dag_without_errors(demo_bag):
    bag = demo_bag
    assert bag["errors"] == {}
    assert set(bag["dags"]) == {
        "lifecycle_checks",
        "lifecycle_deadlines",
        "lifecycle_evidence",
        "retention_expiry",
        "cancellation_erasure",
        "incident_notification",
        "subject_request",
        "sharing_push_provider",
        "sharing_payment_institution",
        "sharing_expo_marketing",
        "sharing_dd_acquirer",
    }
    for dag_id, dag in bag["dags"].items():
        assert dag["doc"], f"{dag_id} has no doc_md"
        assert "privacy-lifecycle" in dag["tags"], dag_id
    assert bag["dags"]["incident_notification"]["schedule"] == "None"
    assert bag["dags"]["subject_request"]["schedule"] == "@hourly", "requests.yaml: intake.schedule"
    assert bag["dags"]["lifecycle_deadlines"]["schedule"] == "@hourly"
    assert bag["dags"]["lifecycle_evidence"]["schedule"] == "@monthly", "catalog.yaml: evidence.packs.schedule"


# Trigger rules under which a failed or upstream_failed upstream task makes the task upstream_failed.
PASSES_FAILURE_ON = {"all_success", "none_failed", "none_failed_min_one_success"}


def test_every_dag_ends_in_one_task_that_a_failed_step_fails(demo_bag):
    """A run whose step failed ends failed, never green.  A DAG run fails when one of its last tasks failed
    or is upstream_failed: every task's failure must reach one of them along tasks that pass failure on
    (a report on all_done does not).  Each DAG ends in one such task, and it is not directly below a task that skips its direct
    downstream tasks (a dry run's short-circuit, an approval): that would skip it, not only what it guards."""
    problems = []
    for dag_id, dag in demo_bag["dags"].items():
        tasks = dag["tasks"]
        last = [t for t, task in tasks.items() if not task["downstream"]]
        for task_id, task in tasks.items():
            reached, todo = {task_id}, [task_id]
            while todo:
                for down in tasks[todo.pop()]["downstream"]:
                    if down not in reached and tasks[down]["trigger_rule"] in PASSES_FAILURE_ON:
                        reached.add(down)
                        todo.append(down)
            if not reached & set(last):
                problems.append(
                    f"{dag_id}: a failed {task_id} leaves the last tasks {last} "
                    f"({', '.join(tasks[t]['trigger_rule'] for t in last)}) and the run green"
                )
            problems += [
                f"{dag_id}: {task_id} would skip the last task {end}"
                for end in last
                if task["skips_downstream"] and end in task["downstream"]
            ]
        final = "evidence_complete" if dag_id == "retention_expiry" else "run_complete"
        if last != [final] or tasks[final]["trigger_rule"] not in {"all_success", "none_failed"}:
            problems.append(f"{dag_id}: last tasks {last}, not {final} (all_success or none_failed)")
    assert not problems, "\n".join(problems)


def hundred_datasets() -> dict:
    files = copy.deepcopy(sample.FILES)
    datasets = files["catalog.yaml"]["datasets"]
    for i in range(100):
        datasets[f"t{i:03d}"] = {
            "system": "app_db",
            "table": f"t{i:03d}",
            "primary_key": "id",
            "subject": "user_id -> users.id" if i % 2 == 0 else f"parent_id -> t{i - 1:03d}.id",
            "created": "created_at",
            "category": "access_records",
            "fields": {
                "ip": {"category": "network_identification", "anonymize": "truncate_ip"},
                "note": {"personal": False},
            },
        }
    for i in range(10):
        files["recipients.yaml"]["recipients"].append(
            {
                **copy.deepcopy(files["recipients.yaml"]["recipients"][0]),
                "id": f"partner_{i}",
                "share": {f"t{i:03d}": ["ip", "note"]},
            }
        )
    return files


def test_a_hundred_dataset_config_parses_about_as_fast_as_the_demos(tmp_path, demo_bag):
    """Parsing grows with the configuration, not with its square: a hundred datasets (17 DAGs)
    parse within three times the demo's twelve (11 DAGs), measured in the same module (a loaded
    machine slows both), and within two seconds where the demo's parse is quick."""
    config = sample.write(tmp_path / "config", hundred_datasets())
    bag = parse(config, tmp_path)
    assert bag["errors"] == {}
    assert len(bag["dags"]) == 7 + 10
    allowed = max(2.0, 3 * demo_bag["seconds"])
    assert bag["seconds"] < allowed, f"parsing dags/ took {bag['seconds']:.2f}s (the demo's {demo_bag['seconds']:.2f}s)"


def test_an_invalid_config_is_an_import_error_naming_the_problem(tmp_path):
    files = copy.deepcopy(sample.FILES)
    files["retention.yaml"]["rules"][1]["keep"] = "30d"
    bag = parse(sample.write(tmp_path / "config", files), tmp_path)
    assert bag["dags"] == {} or "retention_expiry" not in bag["dags"]
    assert bag["errors"], "an invalid configuration must surface as a DAG import error"
    assert all(
        "retention.yaml: rules[1].keep: 30d is shorter than the statutory minimum 3y" in e
        for e in bag["errors"].values()
    )
