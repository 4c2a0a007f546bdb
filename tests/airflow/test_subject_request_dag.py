"""subject_request end to end through Airflow on the seeded demo world: the app's requests
table (one request of each kind) answered on the schedule, then a form request by e-mail."""

import json

import sqlalchemy as sa

from tests.airflow.conftest import AirflowWorld, asset_events, dag_runs, run_id_of

COUNTED = ("rows_deleted", "rows_anonymized", "versions_deleted")


def test_the_apps_requests_are_answered_and_a_form_dry_run_changes_nothing(airflow_world: AirflowWorld):
    state = sa.create_engine(f"sqlite:///{airflow_world.var / 'state.db'}")
    app = sa.create_engine(f"sqlite:///{airflow_world.var / 'app.db'}")
    mails_before = airflow_world.mail.count
    result = airflow_world.run_dags("subject_request")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    (run,) = dag_runs(result.stdout)
    assert run["run"] == run["run_complete"] == "success", result.stdout
    assert [run[f"answer[{i}]"] for i in range(3)] == ["success"] * 3
    assert "subject requests (from the app's privacy_requests table):" in result.stdout
    with state.connect() as conn:
        requests = {r.kind: r for r in conn.execute(sa.text("SELECT * FROM lifecycle_subject_requests"))}
    assert {k: r.state for k, r in requests.items()} == {"access": "done", "erase": "done", "withdraw_consent": "done"}
    assert all(r.completed_at <= r.due_at for r in requests.values())
    with state.connect() as conn:  # the erase request's steps: an event for each dataset it changed, none else
        steps = [
            json.loads(p)
            for p in conn.execute(
                sa.text("SELECT payload FROM lifecycle_ledger WHERE kind = 'erasure.done' AND idempotency_key LIKE :k"),
                {"k": f"erasure:request:{requests['erase'].request_id}:%"},
            ).scalars()
        ]
    events = asset_events(airflow_world, "subject_request", run_id_of(result.stdout, "subject_request"))
    changed = {p["dataset"]: p.get("rows") or p.get("versions") for p in steps if p.get("rows") or p.get("versions")}
    counted = {
        name.removeprefix("lifecycle."): sum(e.get(k, 0) for e in found for k in COUNTED)
        for name, found in events.items()
    }
    assert changed and counted == changed, (changed, events)
    sent = airflow_world.mail.messages[mails_before:]
    with app.connect() as conn:
        addresses = {
            kind: conn.execute(sa.text("SELECT email FROM users WHERE id = :s"), {"s": int(r.subject_id)}).scalar()
            for kind, r in requests.items()
        }
    to = {r for m in sent for r in m.envelope_to}
    assert addresses["access"] in to and addresses["withdraw_consent"] in to
    link = next(m for m in sent if addresses["access"] in m.envelope_to).get_body().get_content()
    assert "X-Amz-Expires=604800" in link, "the package link expires after link_expires (7d)"
    logs = (airflow_world.var / "log" / "demo-run.log").read_text(errors="replace")
    assert not [a for a in addresses.values() if a and (a in logs or a in result.stdout)], "no address in the logs"

    person = next(iter(addresses.values()))
    form = {"kind": "access", "email": person, "request_id": "FORM-1"}
    dry = airflow_world.run(
        "-m", "lifecycle.demo", "run", "--dags", "subject_request", "--as-of", "2026-11-27", "--conf", json.dumps(form)
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr[-3000:]
    with state.connect() as conn:
        planned = conn.execute(sa.text("SELECT state FROM lifecycle_subject_requests WHERE request_id = 'FORM-1'"))
        assert planned.scalar() == "planned", "dry_run is on unless switched off"
    assert airflow_world.mail.count == mails_before + len(sent), "a dry run sends nothing"
    assert asset_events(airflow_world, "subject_request", run_id_of(dry.stdout, "subject_request")) == {}
    state.dispose()
    app.dispose()
