"""A fault under Airflow itself: cancellation_erasure through ``dag.test()`` on the seeded demo
world while the SMTP server closes every second session with a ``421``.  The run ends green
having done its work: every erased person gone, each notice sent once (the sink's record)."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from tests.airflow.conftest import AirflowWorld, airflow_world, dag_runs  # noqa: F401  (the fixture)
from tests.faults.conftest import record
from tests.support.faults import SmtpFaults

AS_OF = "2026-11-27"  # a day no other test of this world runs a DAG on


def test_cancellation_erasure_under_421_ends_green_with_each_notice_once(airflow_world: AirflowWorld):  # noqa: F811
    world = airflow_world
    faults = SmtpFaults(close_every=2)
    world.mail.faults = faults
    before = world.mail.count
    try:
        result = world.run_dags("cancellation_erasure", as_of=AS_OF)
    finally:
        world.mail.faults = None
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    [run] = dag_runs(result.stdout)
    assert (run["run"], run["erase[0]"], run["run_complete"]) == ("success", "success", "success"), result.stdout
    assert faults.closed >= 1, "the fault fired"
    sent = world.mail.messages[before:]
    assert sent and set(Counter((m["To"], m["Subject"]) for m in sent).values()) == {1}, "each notice once"
    state = sa.create_engine(f"sqlite:///{world.var / 'state.db'}")
    app = sa.create_engine(f"sqlite:///{world.var / 'app.db'}")
    with state.connect() as conn:
        done = conn.execute(sa.text("SELECT subject_id FROM lifecycle_erasures WHERE state = 'done'")).scalars().all()
    with app.connect() as conn:
        left = conn.execute(sa.text(f"SELECT count(*) FROM users WHERE id IN ({','.join(done) or 'NULL'})")).scalar()
    state.dispose()
    app.dispose()
    assert done and left == 0
    checked = "the run's task states, mails at the sink, erased users by hand"
    record("cancellation_erasure", "SMTP 421 every 2nd message, under Airflow", "sqlite", "waits, succeeds", 1, checked)
