"""The product on Airflow's distributed engine: every lifecycle DAG triggered
through the REST API runs on two Celery workers against PostgreSQL; the roles
allow and refuse what they should; nothing personal leaks into Airflow or the
documents it produces."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from lifecycle.config import load_config
from tests.deploy.conftest import AS_OF
from tests.support.cluster import ApiError
from tests.support.leaks import scan_bucket, scan_database, scan_files
from tests.support.s3 import moto_client

CONFIG = load_config()
CONTACT_LISTS = {"letters.csv", "telephone.csv"}


def _expected_refusals() -> set[str]:
    """Sharing DAGs whose agreement is not in force on the run's date: their run fails, by design."""
    today = date.fromisoformat(AS_OF)
    return {
        f"sharing_{r.id}"
        for r in CONFIG.recipients.recipients
        if r.agreement is None or not (r.agreement.signed <= today <= (r.agreement.expires or today))
    }


def _deadlines_found() -> bool:
    """lifecycle_deadlines fails while a deadline is near or past: the demo's lapsed agreement is, by design."""
    from lifecycle.deadlines import Watch, agreements

    return bool(agreements(Watch(CONFIG, None, datetime.now(UTC))))


def _expected_failures() -> set[str]:
    return _expected_refusals() | ({"lifecycle_deadlines"} if _deadlines_found() else set())


def _incident_conf() -> dict:
    """The demo's sample incident, for real (dry run off; the cluster's config requires approval)."""
    from lifecycle.demo.incident import form

    return form(datetime.now(UTC), dry_run=False)


@pytest.fixture(scope="module")
def runs(cluster):
    """Trigger every lifecycle DAG at once (the incident as the responder), wait for all."""
    status, body = cluster.call("engineer", "GET", "/api/v2/dags?limit=100")
    assert status == 200, body
    dag_ids = sorted(d["dag_id"] for d in body["dags"])
    triggered = {}
    for dag_id in dag_ids:
        if dag_id == "incident_notification":
            triggered[dag_id] = cluster.trigger("responder", dag_id, _incident_conf())
        else:
            triggered[dag_id] = cluster.trigger("engineer", dag_id)
    # only the responder answers the approval: the data engineer is refused
    with pytest.raises(ApiError, match="may not answer"):
        cluster.answer("engineer", "incident_notification", triggered["incident_notification"], "approve", "Approve")
    # the responder approves the notices through the REST API once the approval task waits
    approval = cluster.answer(
        "responder", "incident_notification", triggered["incident_notification"], "approve", "Approve"
    )
    assert approval["chosen_options"] == ["Approve"]
    states = cluster.wait(triggered, timeout=600)
    return {dag_id: (triggered[dag_id], states[dag_id]) for dag_id in dag_ids}


def test_every_lifecycle_dag_ran_to_its_expected_end(cluster, runs):
    expected = {dag_id: "failed" if dag_id in _expected_failures() else "success" for dag_id in runs}
    got = {dag_id: state for dag_id, (_run, state) in runs.items()}
    detail = {d: cluster.task_states(d, runs[d][0]) for d in runs if got[d] != expected[d]}
    assert got == expected, f"unexpected end states; task states: {detail}"
    assert {
        "retention_expiry",
        "cancellation_erasure",
        "incident_notification",
        "lifecycle_checks",
        "lifecycle_deadlines",
    } <= set(runs)


def test_tasks_ran_on_both_celery_workers(cluster, runs):
    by_worker = cluster.tasks_by_worker()
    assert set(by_worker) == {"worker-1", "worker-2"}
    assert all(by_worker.values()), f"a worker ran nothing: { {w: len(t) for w, t in by_worker.items()} }"
    ran = {entry.split("/")[0] for tasks in by_worker.values() for entry in tasks}
    assert ran >= set(runs), f"DAGs with no task on any worker: {set(runs) - ran}"


def test_end_state_in_the_data(cluster, runs):
    app, state = cluster.database("app"), cluster.database("state")
    # retention: a plan as of the run's own instant finds nothing left to act on
    status, run = cluster.call("auditor", "GET", f"/api/v2/dags/retention_expiry/dagRuns/{runs['retention_expiry'][0]}")
    as_of = run["data_interval_end"] or run["logical_date"] or run["run_after"]
    plan = cluster.run("-m", "lifecycle", "plan", "--as-of", as_of).stdout.splitlines()
    header = next(i for i, line in enumerate(plan) if line.startswith("dataset"))
    to_act = {
        line.split()[0]: int(line.split()[-3].replace(",", ""))
        for line in plan[header + 1 :]
        if line.strip() and not line.startswith(" ")
    }
    assert to_act and not any(to_act.values()), f"retention left work undone: {to_act}"
    # erasure: every done subject is gone from the subject dataset
    with state.connect() as conn:
        done = [
            r.subject_id
            for r in conn.execute(sa.text("SELECT subject_id FROM lifecycle_erasures WHERE state = 'done'"))
        ]
    assert done, "no cancellation was erased"
    with app.connect() as conn:
        left = conn.execute(
            sa.text("SELECT count(*) FROM users WHERE CAST(id AS TEXT) IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": done},
        ).scalar()
    assert left == 0
    # sharing: each delivered recipient has a manifest in the drop bucket
    bucket = CONFIG.catalog.systems["partner_drop"].bucket
    keys = [
        o["Key"]
        for page in _s3(cluster).get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    delivered = {f"sharing_{r.id}" for r in CONFIG.recipients.recipients} - _expected_refusals()
    for recipient in delivered:
        prefix = next(r.delivery.prefix for r in CONFIG.recipients.recipients if f"sharing_{r.id}" == recipient)
        top = prefix.split("{")[0]
        assert any(k.startswith(top) and "manifest" in k for k in keys), f"{recipient}: no manifest under {top}"
    # incident: approved by the responder, then mails reached people
    tasks = cluster.task_states("incident_notification", runs["incident_notification"][0])
    assert tasks["approve[-1]"] == "success" and tasks["send[0]"] == "success", tasks
    assert list((cluster.var / "mail").glob("*.eml")), "no mail was sent"


def test_roles_allow_and_refuse(cluster, runs):
    # the incident responder: incident_notification only
    status, body = cluster.call("responder", "GET", "/api/v2/dags?limit=100")
    assert status == 200 and [d["dag_id"] for d in body["dags"]] == ["incident_notification"]
    for dag_id in ("retention_expiry", "cancellation_erasure"):
        status, _ = cluster.call("responder", "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
        assert status == 403, f"responder triggering {dag_id}: HTTP {status}"
    for dag_id, allowed in (("incident_notification", 200), ("retention_expiry", 403)):
        status, _ = cluster.call("responder", "GET", f"/api/v2/dags/{dag_id}/dagRuns/{runs[dag_id][0]}/taskInstances")
        assert status == allowed, f"responder reading the tasks of {dag_id}: HTTP {status}"
    # the auditor: reads runs and logs of every DAG, triggers nothing, changes nothing
    status, body = cluster.call("auditor", "GET", "/api/v2/dags?limit=100")
    assert status == 200 and {d["dag_id"] for d in body["dags"]} == set(runs)
    run_id = runs["retention_expiry"][0]
    status, _ = cluster.call(
        "auditor", "GET", f"/api/v2/dags/retention_expiry/dagRuns/{run_id}/taskInstances/plan/logs/1"
    )
    assert status == 200
    for dag_id in ("retention_expiry", "incident_notification"):
        status, _ = cluster.call("auditor", "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
        assert status == 403, f"auditor triggering {dag_id}: HTTP {status}"
    status, _ = cluster.call("auditor", "PATCH", "/api/v2/dags/retention_expiry", {"is_paused": True})
    assert status == 403
    # the data engineer: every lifecycle DAG (their triggers above all succeeded), no user admin
    status, _ = cluster.call("engineer", "GET", "/api/v2/dags/retention_expiry")
    assert status == 200
    status, _ = cluster.call("engineer", "GET", "/api/v2/connections")
    assert status == 403


def test_no_personal_information_leaks_into_airflow_or_documents(cluster, runs):
    needles = cluster.needles
    hits = scan_database(cluster.database("airflow"), needles, label="metadata DB")
    hits += scan_files(cluster.var / "airflow" / "logs", needles, label="task logs")
    hits += scan_files(cluster.var / "log", needles, label="service logs")
    # the letter and telephone lists are how the people themselves are reached when
    # e-mail cannot: like a mail to them, they must name them; nothing else may
    hits += scan_files(cluster.var / "reports", needles, label="reports", skip=lambda path: path.name in CONTACT_LISTS)
    s3 = _s3(cluster)
    for system in ("public_site", "partner_drop"):
        bucket = CONFIG.catalog.systems[system].bucket
        # files delivered to a recipient carry what the agreement allows; their manifests must not
        hits += scan_bucket(
            s3, bucket, needles, skip=lambda key, system=system: system == "partner_drop" and "manifest" not in key
        )
    scanned = len(needles.values)
    assert scanned > 300, "too few needles: the seed did not load"
    assert not hits, f"personal information found in {len(hits)} place(s):\n" + "\n".join(map(str, hits))
    assert list((cluster.var / "reports").rglob("letters.csv")), "the contact lists moved: update CONTACT_LISTS"


def _s3(cluster):
    return moto_client(f"http://127.0.0.1:{cluster.env['LIFECYCLE_S3_PORT']}")
