"""incident_notification under faults: the SMTP server's 421 and 451, a connection reset or
refused, the databases reset mid-run or the state store locked.  Each run either waits and
succeeds or fails retryably until the fault is gone; then every reachable person has exactly
one mail (the sink's own record), nobody a second, and the ledger verifies."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from lifecycle.failures import retryable
from lifecycle.incident import IncidentNotification, parse
from lifecycle.mailsink import MailSink
from lifecycle.state import StateStore
from lifecycle.state.schema import deliveries
from tests.faults.conftest import LONG, Tally, backend_of, outcome_of, record, smtp_connection, with_retries
from tests.incident.test_incident import AS_OF, EMAILED, FORM, IN_WINDOW, PEOPLE, REGULATORS, _config, _seed
from tests.support.faults import SmtpFaults
from tests.support.sample_app import access_logs, users

EXTRA = range(100, 160 if LONG else 124)  # more people in the window, so that faults land mid-send
RUN = "manual__faults"


def _reachable() -> set[str]:
    """The oracle: every affected person with an e-mail address, by the seeding rule."""
    return {PEOPLE[s][0] for s in EMAILED} | {f"p{i}@example.com" for i in EXTRA}


def _seed_more(engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            users.insert(),
            [
                {"id": i, "email": f"p{i}@example.com", "name": f"P {i}", "country": "US", "locale": "en"}
                | {"password_hash": "h", "tier": "free", "created_at": IN_WINDOW}
                for i in EXTRA
            ],
        )
        conn.execute(
            access_logs.insert(),
            [{"id": 1000 + i, "user_id": i, "ip": "10.9.9.9", "path": "/", "logged_at": IN_WINDOW} for i in EXTRA],
        )


@pytest.fixture
def incident_world(engine, tmp_path, monkeypatch, s3_store, s3_conn_id, connect, db_proxy, proxies):
    """App and state in the test's database, reached through a proxy on the servers; the sink
    behind a proxy of its own.  ``world.faults`` is the sink's fault hook."""
    _seed(engine)
    _seed_more(engine)
    proxy, url = db_proxy
    connect("app_db", url)
    config = _config(tmp_path, s3_store.bucket, s3_conn_id, incidents={"batch_size": 10})
    faults = SmtpFaults()
    with MailSink(faults=faults) as sink:
        smtp = proxies(sink.port)
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(smtp.port))
        yield _World(config, engine, url, sink, faults, smtp, proxy)


class _World:
    def __init__(self, config, engine, url, sink, faults, smtp, db):
        self.config, self.engine, self.url, self.sink, self.faults, self.smtp, self.db = (
            config,
            engine,
            url,
            sink,
            faults,
            smtp,
            db,
        )

    def notifier(self) -> IncidentNotification:
        """A task's notifier: the state store on a new engine through the proxy (a new process)."""
        kwargs = {"connect_args": {"timeout": 60}} if self.url.get_backend_name() == "sqlite" else {}
        state = StateStore(sa.create_engine(self.url, **kwargs), dataset_names=set(self.config.catalog.datasets))
        return IncidentNotification(self.config, state, sleep=time.sleep)

    def run(self, *, tally: Tally | None = None, delay: float = 0.0, before_send=lambda: None) -> Tally:
        """The DAG's tasks in order, each retried (cleared) on a retryable failure;
        ``before_send`` is called once the run is approved."""
        form = parse(dict(FORM), self.config.catalog)
        tally = with_retries(
            [
                ("register", lambda: self.notifier().register(form, RUN, AS_OF)),
                ("resolve", lambda: self.notifier().resolve(RUN)),
                ("obligations", lambda: self.notifier().obligations(RUN)),
                ("approve", lambda: self.notifier().record_approval(RUN, "approved", by="responder", how="test")),
            ],
            delay=delay,
            tally=tally,
        )
        batches = self.notifier().batches(RUN)
        before_send()
        steps = [(f"send[{b}]", lambda b=b: self.notifier().send_batch(RUN, b)) for b in batches]
        tasks = ("contact_lists", "announce", "regulator_reports", "deliver_reports", "finish")
        steps += [(name, lambda name=name: getattr(self.notifier(), name)(RUN)) for name in tasks]
        return with_retries(steps, delay=delay, tally=tally)

    def mailed(self) -> Counter:
        return Counter(r for m in self.sink.messages for r in m.envelope_to if not r.endswith(REGULATORS))

    def statuses(self) -> dict[str, str]:
        """The delivery rows, read by hand (status by address)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(users.c.email, deliveries.c.status)
                .select_from(deliveries)
                .join(users, sa.cast(users.c.id, sa.String(64)) == deliveries.c.subject_id)
                .where(deliveries.c.notice.startswith("incident:"))
            ).all()
        return {email: status for email, status in rows if email}

    def check(self, *, lost_allowed: int = 0) -> dict:
        """Nobody mailed twice; every reachable person mailed, but for at most ``lost_allowed``
        left uncertain by a connection lost with their mail on the wire; the ledger verifies."""
        mailed = self.mailed()
        assert max(mailed.values()) == 1, [a for a, n in mailed.items() if n > 1]
        assert set(mailed) <= _reachable()
        missing = _reachable() - set(mailed)
        statuses = self.statuses()
        assert all(statuses.get(a) == "uncertain" for a in missing), {a: statuses.get(a) for a in missing}
        assert len(missing) <= lost_allowed, missing
        assert self.notifier().services.state.ledger.verify().ok
        return {"mailed": len(mailed), "uncertain": len(missing)}


CHECKED = "each reachable person's mails at the sink, the delivery rows by hand, the ledger"


def test_421_mid_session_waits_and_every_person_is_mailed_once(incident_world):
    world = incident_world
    world.faults.close_every = 7
    tally = world.run()
    assert tally.failures == [] and world.faults.closed >= 3
    assert world.check() == {"mailed": len(_reachable()), "uncertain": 0}
    record(
        "incident_notification", "SMTP 421 every 7th message", backend_of(world.engine), "waits, succeeds", 1, CHECKED
    )


def test_451_greylisting_is_retried_later_and_nobody_waits_for_it(incident_world):
    world = incident_world
    grey = {f"p{i}@example.com" for i in list(EXTRA)[::5]}
    world.faults.is_grey, world.faults.tries = grey.__contains__, 2
    tally = world.run()
    assert tally.failures == [] and world.faults.greylisted == len(grey)
    assert world.check() == {"mailed": len(_reachable()), "uncertain": 0}
    record(
        "incident_notification",
        "SMTP 451 greylisting (1 in 5)",
        backend_of(world.engine),
        "waits, succeeds",
        1,
        CHECKED,
    )


@pytest.mark.parametrize("after", [3_000, 20_000] + ([45_000] if LONG else []))
def test_an_smtp_connection_reset_fails_the_batch_and_a_rerun_mails_nobody_twice(incident_world, after):
    world = incident_world
    world.smtp.reset_after_bytes(after)
    tally = world.run()
    assert world.smtp.counts["resets"] == 1 and len(tally.failures) == 1, tally.failures
    assert tally.failures[0].startswith("send[")
    result = world.check(lost_allowed=1)
    record(
        "incident_notification",
        "SMTP connection reset mid-send",
        backend_of(world.engine),
        f"fails, rerun finishes ({result['uncertain']} uncertain)",
        2,
        CHECKED,
    )


def test_an_smtp_server_refusing_connections_fails_until_it_is_back(incident_world):
    world = incident_world
    tally = world.run(delay=1.0, before_send=lambda: world.smtp.refuse_for(1.5))
    assert tally.failures and all(f.startswith("send[") for f in tally.failures), tally.failures
    assert world.check() == {"mailed": len(_reachable()), "uncertain": 0}
    record(
        "incident_notification",
        "SMTP refusing connections 1.5 s",
        backend_of(world.engine),
        "fails, retry succeeds",
        1 + len(tally.failures),
        CHECKED,
    )


@pytest.mark.parametrize("backend_url", ["postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("statement", [15, 60, 140] + ([30, 90, 200, 260] if LONG else []))
def test_a_database_connection_reset_mid_run_fails_retryably_and_the_rerun_mails_nobody_twice(
    incident_world, statement
):
    world = incident_world
    world.db.reset_after_statements(statement)
    tally = world.run()
    assert world.db.counts["resets"] == 1 and len(tally.failures) <= 1, tally.failures
    result = world.check(lost_allowed=2 * 16)
    record(
        "incident_notification",
        "database connection reset mid-run",
        backend_of(world.engine),
        f"{outcome_of(tally, 'rerun finishes')} ({result['uncertain']} uncertain)",
        1 + len(tally.failures),
        CHECKED,
    )


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_locked_state_store_waits_and_the_run_succeeds(incident_world):
    world = incident_world
    locked, release = threading.Event(), threading.Event()

    def hold():
        with world.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN EXCLUSIVE")
            locked.set()
            release.wait(5)
            conn.exec_driver_sql("ROLLBACK")

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait(5)
    threading.Timer(1.0, release.set).start()
    tally = world.run()
    holder.join()
    assert tally.failures == []
    assert world.check() == {"mailed": len(_reachable()), "uncertain": 0}
    record("incident_notification", "state store locked 1 s", "sqlite", "waits, succeeds", 1, CHECKED)


def test_a_missing_table_fails_at_once_with_no_retry(incident_world):
    world = incident_world
    with world.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE access_logs"))
    tally = Tally()
    with pytest.raises(Exception) as failed:
        world.run(tally=tally)
    assert not retryable(failed.value) and tally.failures == []
    assert world.sink.messages == []
    record(
        "incident_notification",
        "deterministic: a missing table",
        backend_of(world.engine),
        "fails at once",
        1,
        "no retry, no mail",
    )
