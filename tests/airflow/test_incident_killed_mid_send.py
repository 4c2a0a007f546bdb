"""The defect as a responder met it: an approved incident_notification run (approval none) whose process
is SIGKILLed mid-send, then the responder's next step, a run with phase 'update', sends to exactly the
people never mailed, once each; the notices left in doubt only after a run that releases them.

The oracle is the mail sink and the app database: the addresses mailed, counted in the sink, against
the people with an address and an access log in the incident's window, queried here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime

import sqlalchemy as sa
import yaml

from lifecycle.demo import incident as demo_incident
from lifecycle.demo.schema import access_logs, users
from tests.airflow.conftest import REPO, AirflowWorld, dag_runs

INCIDENT = "INC-KILLED-MID-SEND"
REGULATORS = ".regulator.example"
RATE = 4  # mails a second: slow enough to kill the run mid-send
KILL_AFTER = 5  # mails received


def _config(folder):
    """The demo configuration, mailing at ``RATE`` a second."""
    folder.mkdir()
    for path in (REPO / "config" / "lifecycle").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if path.name == "notifications.yaml":
            data["email"]["max_per_second"] = RATE
        (folder / path.name).write_text(yaml.safe_dump(data, allow_unicode=True))
    return folder


def _form(**changes) -> dict:
    return {**demo_incident.form(datetime(2026, 11, 17), dry_run=False), "incident_id": INCIDENT, **changes}


def _affected_addresses(world: AirflowWorld, form: dict) -> set[str]:
    """People with an address and an access log inside the incident's window, from the app database."""
    start, end = (datetime.fromisoformat(form[k]).replace(tzinfo=None) for k in ("occurred_from", "occurred_to"))
    engine = sa.create_engine(f"sqlite:///{world.var / 'app.db'}")
    with engine.connect() as conn:
        found = set(
            conn.execute(
                sa.select(users.c.email)
                .join(access_logs, access_logs.c.user_id == users.c.id)
                .where(access_logs.c.logged_at.between(start, end), users.c.email.is_not(None))
                .distinct()
            ).scalars()
        )
    engine.dispose()
    return found


def _people_mailed(world: AirflowWorld, since: int) -> Counter:
    return Counter(r for m in world.mail.messages[since:] for r in m.envelope_to if not r.endswith(REGULATORS))


def _run(world: AirflowWorld, env: dict, as_of: str, form: dict, tmp_path) -> subprocess.CompletedProcess:
    conf = tmp_path / f"{as_of}.json"
    conf.write_text(json.dumps(form))
    args = ("-m", "lifecycle.demo", "run", "--dags", "incident_notification", "--as-of", as_of, "--conf", f"@{conf}")
    return world.run(*args, env=env)


def _in_doubt(world: AirflowWorld) -> set[str]:
    """The people whose delivery row is in doubt, as the state store holds them (subject ids)."""
    engine = sa.create_engine(f"sqlite:///{world.var / 'state.db'}")
    with engine.connect() as conn:
        found = set(
            conn.execute(
                sa.text(
                    "SELECT subject_id FROM lifecycle_deliveries WHERE notice = :n AND status IN ('sending', 'uncertain')"
                ),
                {"n": f"incident:{INCIDENT}"},
            ).scalars()
        )
    engine.dispose()
    return found


def _emails_of(world: AirflowWorld, subjects: set[str]) -> set[str]:
    engine = sa.create_engine(f"sqlite:///{world.var / 'app.db'}")
    with engine.connect() as conn:
        found = set(conn.execute(sa.select(users.c.email).where(users.c.id.in_([int(s) for s in subjects]))).scalars())
    engine.dispose()
    return found


def test_a_run_killed_mid_send_is_finished_by_the_update_run_and_nobody_is_mailed_twice(
    airflow_world: AirflowWorld, tmp_path
):
    env = {"LIFECYCLE_CONFIG_DIR": str(_config(tmp_path / "config"))}
    form = _form()
    expected = _affected_addresses(airflow_world, form)
    assert len(expected) > 2 * KILL_AFTER, "enough people to be killed among"
    before = airflow_world.mail.count

    conf = tmp_path / "initial.json"
    conf.write_text(json.dumps(form))
    killed = subprocess.Popen(
        [sys.executable, "-m", "lifecycle.demo", "run", "--dags", "incident_notification", "--as-of", "2026-11-17"]
        + ["--conf", f"@{conf}"],
        env={**airflow_world.env, **env},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while sum(_people_mailed(airflow_world, before).values()) < KILL_AFTER:
            assert killed.poll() is None, "the run ended before it was killed"
            assert time.monotonic() < deadline, "the run never started sending"
            time.sleep(0.05)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)  # the worker is lost: no handler runs
        killed.wait(timeout=30)
    time.sleep(1)  # a mail on the wire when the process died lands, or not
    first = _people_mailed(airflow_world, before)
    assert set(first.values()) == {1} and set(first) <= expected
    assert len(first) < len(expected), "killed mid-send: people are left"
    doubt = _emails_of(airflow_world, _in_doubt(airflow_world))
    assert 1 <= len(doubt) <= 2, "the mail on the wire and perhaps the next claim are in doubt"

    # the responder's next step: the same incident with phase 'update'
    middle = airflow_world.mail.count
    result = _run(airflow_world, env, "2026-11-18", _form(phase="update"), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    [run] = [r for r in dag_runs(result.stdout) if r["dag_id"] == "incident_notification"]
    assert run["run"] == "success" and run["finish"] == "success", result.stdout
    owed = expected - set(first) - doubt
    update = _people_mailed(airflow_world, middle)
    assert set(update.values()) == {1} and set(update) == owed, "exactly the owed, once each"
    assert f"incident {INCIDENT} (update, approved)" in result.stdout, result.stdout
    assert "; still owed by this run 0, by the incident 0;" in result.stdout, result.stdout

    # the notices in doubt: not sent by the update; sent once more after a release with a reason
    last = airflow_world.mail.count
    released = _form(phase="update", resend_uncertain=True, resend_reason="No 250 for those Message-IDs in the log")
    result = _run(airflow_world, env, "2026-11-19", released, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    [run] = [r for r in dag_runs(result.stdout) if r["dag_id"] == "incident_notification"]
    assert run["run"] == "success", result.stdout
    again = _people_mailed(airflow_world, last)
    assert set(again.values()) == {1} and set(again) == doubt, "released: the ones in doubt, once"
    total = _people_mailed(airflow_world, before)
    assert set(total) == expected, "everybody affected with an address was mailed"
    assert all(n == 1 for a, n in total.items() if a not in doubt), "nobody else twice"
