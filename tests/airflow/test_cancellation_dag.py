"""cancellation_erasure end to end through Airflow on the seeded demo world."""

import json

import sqlalchemy as sa

from tests.airflow.conftest import AirflowWorld, asset_events, dag_runs, run_id_of


def _batch(root: str) -> str:
    """The batch a root document certifies (its folder name is the batch made safe for a path)."""
    return json.loads(open(root).read())["batch"]


def test_cancellation_erasure_erases_due_subjects_certifies_and_notifies_once(airflow_world: AirflowWorld):
    state = sa.create_engine(f"sqlite:///{airflow_world.var / 'state.db'}")
    app = sa.create_engine(f"sqlite:///{airflow_world.var / 'app.db'}")
    mails_before = airflow_world.mail.count
    result = airflow_world.run_dags("cancellation_erasure")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "cancellation_erasure: success" in result.stdout
    assert dag_runs(result.stdout)[0]["run_complete"] == "success"

    with state.connect() as conn:
        rows = conn.execute(sa.text("SELECT subject_id, state, certificate FROM lifecycle_erasures")).all()
    states = {r.state for r in rows}
    assert {"done", "pending", "withdrawn", "held"} <= states
    done = [r for r in rows if r.state == "done"]
    assert len(done) >= 2
    with app.connect() as conn:
        for r in done:
            for table in ("users", "access_logs", "devices", "account_cancellations"):
                column = "id" if table == "users" else "user_id"
                assert (
                    conn.execute(
                        sa.text(f"SELECT count(*) FROM {table} WHERE {column} = :s"), {"s": int(r.subject_id)}
                    ).scalar()
                    == 0
                )
            root, _, subject = r.certificate.partition("#")
            assert r.subject_id not in subject and json.loads(open(root).read())["merkle"]["root"]
    shown = airflow_world.run("-m", "lifecycle", "certificate", "show", "--batch", _batch(root), "--subject", subject)
    assert shown.returncode == 0, shown.stderr
    certificate = airflow_world.var / "certificate.json"
    certificate.write_text(shown.stdout)
    assert json.loads(shown.stdout)["leaf"]["completed_at"]
    keys = str(airflow_world.var / "reports" / "public-keys.json")
    checkpoints = sorted((airflow_world.var / "evidence" / "checkpoints").glob("*.json"))
    assert checkpoints, "the run's end published a signed ledger checkpoint"
    checked = airflow_world.run(
        "-m", "lifecycle", "evidence", "verify", str(certificate), str(checkpoints[-1]), "--keys", keys
    )
    assert checked.returncode == 0 and checked.stdout.count("result: OK") == 2, checked.stdout + checked.stderr
    ledger = airflow_world.run("-m", "lifecycle", "ledger", "verify", "--checkpoints")
    assert ledger.returncode == 0 and "the ledger extends every one" in ledger.stdout, ledger.stdout + ledger.stderr

    run_id = run_id_of(result.stdout, "cancellation_erasure")
    events = asset_events(airflow_world, "cancellation_erasure", run_id)
    with state.connect() as conn:
        steps = [
            json.loads(p)
            for p in conn.execute(
                sa.text("SELECT payload FROM lifecycle_ledger WHERE kind = 'erasure.done' AND run_id = :r"),
                {"r": run_id},
            ).scalars()
        ]
    changed = {p["dataset"] for p in steps if p.get("rows") or p.get("versions")}
    untouched = {p["dataset"] for p in steps} - changed
    assert sum(e["rows_deleted"] for e in events["lifecycle.users"]) == len(done), "one own row per erased person"
    assert {name.removeprefix("lifecycle.") for name in events} == changed and untouched, (events, untouched)

    sent = airflow_world.mail.messages[mails_before:]
    completed = [m for m in sent if m["Subject"] in ("Your account has been deleted", "您的账户已注销")]
    with state.connect() as conn:
        finished = conn.execute(
            sa.text(
                "SELECT subject_id, status, message_id, ledger_hash FROM lifecycle_deliveries "
                "WHERE notice = 'notice:cancellation_completed'"
            )
        ).all()
        summaries = set(
            conn.execute(sa.text("SELECT entry_hash FROM lifecycle_ledger WHERE kind = 'notice.batch'")).scalars()
        )
    assert {r.subject_id for r in finished} == {r.subject_id for r in done}, (
        "every erased person got the completion notice, or the record says why not"
    )
    assert len(completed) == sum(1 for r in finished if r.status == "sent" and r.message_id) >= 1
    assert {r.ledger_hash for r in finished} <= summaries, "each outcome is backed by a ledger entry"

    again = airflow_world.run_dags("cancellation_erasure", as_of="2026-11-26")
    assert again.returncode == 0, again.stdout
    rerun = dag_runs(again.stdout)[0]
    assert (rerun["run"], rerun["erase"], rerun["run_complete"]) == ("success", "skipped", "success"), (
        "nobody left to erase: no batches, and the run is green"
    )
    assert asset_events(airflow_world, "cancellation_erasure", run_id_of(again.stdout, "cancellation_erasure")) == {}
    assert airflow_world.mail.count == mails_before + len(sent), "a rerun sends no notice twice"
    state.dispose()
    app.dispose()
