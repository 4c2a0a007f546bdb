"""incident_notification end to end through Airflow on the seeded demo world: a dry run, then the approved
run; a rejection answered through the REST API; the DAG's shape with approval required."""

import json
from datetime import datetime

import sqlalchemy as sa

from lifecycle.config import load_config
from lifecycle.demo import incident as demo_incident
from tests.airflow.conftest import AirflowWorld, dag_runs
from tests.support.s3 import moto_client

AS_OF = "2026-11-20"
REGULATORS = ".regulator.example"  # the demo regulators' addresses (incidents.yaml)
LEAD_SA = next(r.contact for r in load_config().incidents.regulators if r.id == "eu_lead_sa")


def _states(block: str) -> dict[str, str]:
    """Task states from the demo runner's summary of one run."""
    lines = block.splitlines()
    states = {"run": lines[0].split()[0]}
    for line in lines[1:]:
        if not line.startswith("  ") or len(line.split()) < 2:
            break
        states[line.split()[0]] = line.split()[1]
    return states


def _state(world: AirflowWorld):
    return sa.create_engine(f"sqlite:///{world.var / 'state.db'}")


def test_a_dry_run_then_an_approved_run_notify_each_affected_person_once(airflow_world: AirflowWorld):
    mails_before = airflow_world.mail.count
    result = airflow_world.run_dags("incident_notification", as_of=AS_OF)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    dry, approved = [_states(block) for block in result.stdout.split("incident_notification: ")[1:3]]
    assert dry["run"] == approved["run"] == "success", result.stdout
    assert dry["preview"] == "success" and dry["approve"] == dry["send"] == dry["announce"] == "skipped"
    assert (
        approved["approve"]
        == approved["send[0]"]
        == approved["regulator_reports"]
        == approved["deliver_reports"]
        == approved["finish"]
        == "success"
    )
    assert dry["run_complete"] == approved["run_complete"] == "success", "a dry run is a complete run"
    assert "incident INC-20261120-DEMO (initial, dry run)" in result.stdout, result.stdout
    assert "incident INC-20261120-DEMO (initial, approved)" in result.stdout

    state = _state(airflow_world)
    with state.connect() as conn:
        runs = {r.dry_run: r for r in conn.execute(sa.text("SELECT * FROM lifecycle_incident_runs"))}
        deliveries = conn.execute(
            sa.text("SELECT subject_id, status FROM lifecycle_deliveries WHERE notice LIKE 'incident:%'")
        ).all()
        emailable = conn.execute(
            sa.text(
                "SELECT count(*) FROM lifecycle_incident_subjects s JOIN lifecycle_incident_runs r "
                "ON r.run_id = s.run_id WHERE r.dry_run = 0 AND s.reach = 'email'"
            )
        ).scalar()
    assert set(runs) == {0, 1}
    final = json.loads(runs[0].figures)["final"]
    assert final["emails_sent"] == len(deliveries) == emailable > 0
    mails = airflow_world.mail.messages[mails_before:]
    sent = [m for m in mails if not m.envelope_to[0].endswith(REGULATORS)]
    recipients = [r for m in sent for r in m.envelope_to]
    assert len(recipients) == len(set(recipients)) == final["emails_sent"], "one mail each, none in the dry run"
    assert all(m.get_body(preferencelist=("html",)) is not None for m in sent)
    logs = (airflow_world.var / "log" / "demo-run.log").read_text(errors="replace")
    assert not [r for r in recipients if r in logs or r in result.stdout], "no address in task logs or XCom"

    reports = airflow_world.var / "reports" / final["folder"]
    assert (reports / "report.eu_lead_sa.pdf").read_bytes().startswith(b"%PDF")
    assert json.loads((reports / "report.eu_lead_sa.json").read_text())["timeline"]["deadline_met"] is True
    assert (reports / "letters.csv").exists() and (reports / "telephone.csv").exists()
    [to_regulator] = [m for m in mails if m.envelope_to[0].endswith(REGULATORS)]
    assert to_regulator.envelope_to == [LEAD_SA]
    attached = {part.get_filename(): part.get_payload(decode=True) for part in to_regulator.iter_attachments()}
    assert attached["incident-INC-20261120-DEMO.pdf"] == (reports / "report.eu_lead_sa.pdf").read_bytes()
    assert final["reports_delivered"]["eu_lead_sa"]["channels"] == {"email": "sent"}
    assert final["reports_delivered"]["eu_lead_sa"]["late"] is False
    s3 = moto_client(final["announcement"].split("/mic-public-site/")[0])
    page = s3.get_object(Bucket="mic-public-site", Key="notices/INC-20261120-DEMO.html")["Body"].read().decode()
    assert demo_incident.form(datetime(2026, 11, 20), dry_run=False)["cause"] in page
    assert not any(r in page for r in recipients)

    assert airflow_world.mail.count == mails_before + len(sent) + 1
    state.dispose()


def test_a_follow_up_with_nobody_new_still_writes_its_lists_and_reports(airflow_world: AirflowWorld, tmp_path):
    """An update run whose people were all notified before has no mail batch to send; its letter and
    telephone lists, announcement and regulator reports are still due (they were skipped with the batches)."""
    form = {**demo_incident.form(datetime(2026, 11, 20), dry_run=False), "phase": "update"}
    (tmp_path / "update.json").write_text(json.dumps(form))
    mails_before = airflow_world.mail.count
    result = airflow_world.run(
        "-m",
        "lifecycle.demo",
        "run",
        "--dags",
        "incident_notification",
        "--as-of",
        "2026-11-21",
        "--conf",
        f"@{tmp_path / 'update.json'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    [run] = [r for r in dag_runs(result.stdout) if r["dag_id"] == "incident_notification"]
    assert run["run"] == "success" and run["plan_sends"] == "success", run
    assert run["contact_lists"] == run["announce"] == run["regulator_reports"] == run["finish"] == "success", run
    assert run["deliver_reports"] == run["run_complete"] == "success", run
    mails = airflow_world.mail.messages[mails_before:]
    assert [m.envelope_to for m in mails] == [[LEAD_SA]], "nobody new: only the follow-up report goes out"
    assert mails[0]["Subject"].startswith("Follow-up report")
    state = _state(airflow_world)
    with state.connect() as conn:
        figures = conn.execute(sa.text("SELECT figures FROM lifecycle_incident_runs WHERE phase = 'update'")).scalar()
    state.dispose()
    reports = airflow_world.var / "reports" / json.loads(figures)["final"]["folder"]
    assert json.loads((reports / "report.eu_lead_sa.json").read_text())["follow_up"] is True
    assert (reports / "letters.csv").exists() and (reports / "telephone.csv").exists()


def test_a_decision_not_to_notify_is_approved_recorded_and_mails_nobody(airflow_world: AirflowWorld, tmp_path):
    """decision not_notify through the whole DAG: approved, recorded in the register and the ledger with its
    reason; no person is mailed and nothing published; the lead authority's report is still due and delivered."""
    reason = "The bucket was private to our own backup account; its access log shows no read from outside."
    form = {
        **demo_incident.form(datetime(2026, 11, 22), dry_run=False),
        "incident_id": "INC-NOT-NOTIFIED",
        "channels": ["email", "letter", "telephone"],
        "decision": "not_notify",
        "decision_reason": reason,
    }
    (tmp_path / "withheld.json").write_text(json.dumps(form))
    mails_before = airflow_world.mail.count
    result = airflow_world.run(
        "-m", "lifecycle.demo", "run", "--dags", "incident_notification", "--as-of", "2026-11-22",
        "--conf", f"@{tmp_path / 'withheld.json'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    [run] = [r for r in dag_runs(result.stdout) if r["dag_id"] == "incident_notification"]
    assert run["run"] == run["approve"] == run["plan_sends"] == run["finish"] == run["run_complete"] == "success", run
    assert run["contact_lists"] == run["announce"] == run["deliver_reports"] == "success", run
    assert f"decision:     not to notify: {reason}" in result.stdout
    mails = airflow_world.mail.messages[mails_before:]
    assert not [m for m in mails if not m.envelope_to[0].endswith(REGULATORS)], "no notice reached the mail sink"
    assert [m.envelope_to for m in mails] == [[LEAD_SA]], "people in the EU: the lead authority's report is due"
    state = _state(airflow_world)
    with state.connect() as conn:
        run_row = conn.execute(
            sa.text("SELECT facts, figures FROM lifecycle_incident_runs WHERE incident_id = 'INC-NOT-NOTIFIED'")
        ).one()
        ledger = {
            kind: json.loads(payload)
            for kind, payload in conn.execute(
                sa.text(
                    "SELECT kind, payload FROM lifecycle_ledger WHERE kind LIKE 'incident.%' "
                    "AND payload LIKE '%INC-NOT-NOTIFIED%' ORDER BY seq"
                )
            )
        }
        claimed = conn.execute(
            sa.text("SELECT count(*) FROM lifecycle_deliveries WHERE notice = 'incident:INC-NOT-NOTIFIED'")
        ).scalar()
    state.dispose()
    assert json.loads(run_row.facts)["decision_reason"] == reason and claimed == 0
    final = json.loads(run_row.figures)["final"]
    assert (final["decision"], final["emails_sent"], final["owed"], final["announcement"]) == ("not_notify", 0, 0, None)
    assert ledger["incident.registered"]["decision"] == "not_notify"
    assert ledger["incident.registered"]["decision_reason"] == reason
    assert ledger["incident.approval"]["decision"] == "approved" and "incident.batch" not in ledger


SHAPE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags["incident_notification"]
approve = dag.get_task("approve")
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "approve": type(approve).__name__, "defaults": getattr(approve, "defaults", None),
    "timeout": str(getattr(approve, "response_timeout", None)),
    "downstream": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
    "params": {k: v for k, v in dag.params.dump().items()},
    "datasets": dag.params.get_param("affected_datasets").schema["items"]["enum"],
}))
"""


def test_with_approval_required_the_run_waits_for_the_standard_providers_approval_operator(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[2]
    config = tmp_path / "config"
    config.mkdir()
    for name in ("catalog.yaml", "incidents.yaml", "notifications.yaml"):
        data = yaml.safe_load((repo / "config" / "lifecycle" / name).read_text())
        if name == "incidents.yaml":
            data.update(approval="required", approval_timeout="12h")
        (config / name).write_text(yaml.safe_dump(data))
    env = {**os.environ, "LIFECYCLE_CONFIG_DIR": str(config), "AIRFLOW_HOME": str(tmp_path / "airflow")}
    result = subprocess.run(
        [sys.executable, "-c", SHAPE, str(repo / "dags" / "lifecycle.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    shape = json.loads(result.stdout.strip().splitlines()[-1])
    assert shape["errors"] == {}
    assert (shape["approve"], shape["defaults"], shape["timeout"]) == ("ApprovalOperator", ["Reject"], "12:00:00")
    assert shape["downstream"]["not_a_dry_run"] == ["approve"] and shape["downstream"]["approve"] == ["plan_sends"]
    assert shape["downstream"]["regulator_reports"] == ["deliver_reports", "run_complete"]
    assert shape["downstream"]["deliver_reports"] == ["finish", "run_complete"]
    assert shape["downstream"]["finish"] == ["run_complete"] and shape["downstream"]["run_complete"] == []
    assert shape["params"]["dry_run"] is True and shape["params"]["phase"] == "initial"
    assert {"access_logs", "orders", "chat_photos"} <= set(shape["datasets"]), "choices come from the catalog"


def test_a_rejection_through_the_rest_api_ends_the_run_with_nothing_sent(airflow_world: AirflowWorld, tmp_path):
    """approval: required; an api-server on the same metadata DB takes the responder's answer (PATCH hitlDetails)."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[2]
    config = tmp_path / "config"
    config.mkdir()
    for path in (repo / "config" / "lifecycle").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if path.name == "incidents.yaml":
            data["approval"] = "required"
        (config / path.name).write_text(yaml.safe_dump(data, allow_unicode=True))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **airflow_world.env,
        "LIFECYCLE_CONFIG_DIR": str(config),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }
    base = f"http://127.0.0.1:{port}/api/v2/dags/incident_notification"

    def call(method: str, url: str, body: dict | None = None):
        request = urllib.request.Request(
            url,
            method=method,
            data=json.dumps(body).encode() if body else None,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    form = {**demo_incident.form(datetime(2026, 11, 21), dry_run=False), "incident_id": "INC-REJECTED"}
    mails_before = airflow_world.mail.count
    api = subprocess.Popen(
        [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lifecycle.demo",
            "run",
            "--dags",
            "incident_notification",
            "--as-of",
            "2026-11-21",
            "--conf",
            json.dumps(form),
        ],
        env=env,
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answered, deadline = None, time.monotonic() + 240
        while answered is None and time.monotonic() < deadline and run.poll() is None:
            time.sleep(2)
            try:
                runs = call("GET", f"{base}/dagRuns?limit=20")["dag_runs"]
                mine = [r["dag_run_id"] for r in runs if r["conf"].get("incident_id") == "INC-REJECTED"]
                if mine:
                    answered = call(
                        "PATCH",
                        f"{base}/dagRuns/{mine[0]}/taskInstances/approve/-1/hitlDetails",
                        {"chosen_options": ["Reject"], "params_input": {}},
                    )
            except (OSError, KeyError, urllib.error.HTTPError):
                continue  # the api-server is starting, or the task is not waiting yet
        assert answered is not None, (
            "the approval task never waited for an answer",
            run.poll(),
            run.stdout.read()[-3000:] + run.stderr.read()[-3000:] if run.poll() is not None else "",
        )
        stdout, stderr = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
        os.killpg(api.pid, 15)
        api.wait(timeout=30)
    assert answered["chosen_options"] == ["Reject"]
    states = _states(stdout.split("incident_notification: ")[1])
    assert states["approve"] == "success" and states["plan_sends"] == states["send"] == "skipped", stdout
    assert states["finish"] == "success" and "(initial, rejected)" in stdout, stdout[:1500]
    assert states["run_complete"] == states["run"] == "success", "a rejection is a decision, not a failure"
    assert airflow_world.mail.count == mails_before, "a rejection sends nothing"
    state = _state(airflow_world)
    with state.connect() as conn:
        approval = conn.execute(
            sa.text(
                "SELECT approval FROM lifecycle_incident_runs r JOIN lifecycle_incidents i "
                "ON i.incident_id = r.incident_id WHERE i.incident_id = 'INC-REJECTED'"
            )
        ).scalar()
    assert json.loads(approval)["decision"] == "rejected"
    state.dispose()
