"""One send rate for a whole run: starts from the state store, shared by processes sending side by side.

The store's half (``state.rates``) on every backend; then incident batches
sent by two real processes at once, as two Celery workers run the mapped
``send`` tasks, each opening its stores by system name from
``AIRFLOW_CONN_*`` and its own SMTP session to a real SMTP server.  Together
they keep ``email.max_per_second``, each person is mailed once, and a
process killed half-way leaves a run the rerun finishes without mailing
anyone twice.
"""

from __future__ import annotations

import bisect
import copy
import json
import multiprocessing
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from lifecycle.config import load_config
from lifecycle.incident import IncidentNotification, parse
from lifecycle.mail import SharedSpacing
from lifecycle.mailsink import MailSink
from lifecycle.state import StateStore
from lifecycle.state.schema import deliveries, incident_subjects, send_rates
from tests.config import sample
from tests.support.faults import SmtpFaults
from tests.support.sample_app import access_logs, meta, users

AS_OF = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)
PEOPLE = 240
BATCH = 40  # six batches: three for each process
RUN = "manual__parallel"
FORM = {
    "incident_id": "INC-2026-077",
    "title": "Access log exposure",
    "discovered_at": "2026-11-12T08:00:00Z",
    "occurred_from": "2026-11-01T00:00:00Z",
    "occurred_to": "2026-11-10T00:00:00Z",
    "cause": "A misconfigured log export made access records readable from the internet.",
    "affected_datasets": ["access_logs"],
    "impact": "Someone could learn which pages you visited.",
    "measures_taken": "We closed the export.",
    "precautions": "Be wary of messages quoting your activity.",
    "remedies": "A free security review of your account.",
    "channels": ["email"],
    "phase": "initial",
    "dry_run": False,
}


# ---------------------------------------------------------------- the store's half


def test_starts_are_an_interval_apart_and_never_before_now(engine):
    rates = StateStore(engine).send_rates
    starts = rates.open("mail:run-a", 0.5)
    try:
        assert starts.take(100.0) == [100.0], "the first start is now"
        assert starts.take(100.0) == [100.5]
        assert starts.take(100.2) == [101.0], "a start is never closer than the interval to the one before"
        assert starts.take(100.2, 3) == [101.5, 102.0, 102.5], "a block: consecutive starts"
        assert starts.take(250.0) == [250.0], "after a pause the next start is now, not owed from the past"
    finally:
        starts.close()
    other = rates.open("mail:run-b", 0.5)
    try:
        assert other.take(100.0) == [100.0], "another run has a rate of its own"
    finally:
        other.close()


def test_threads_drawing_at_once_get_distinct_starts_an_interval_apart(engine):
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite serializes writers; the servers are what many workers share")
    rates = StateStore(engine).send_rates
    taken: list[float] = []
    lock = threading.Lock()

    def draw() -> None:
        starts = rates.open("mail:run-c", 0.01)
        try:
            mine = [start for n in range(25) for start in starts.take(1000.0, 1 + n % 3)]
        finally:
            starts.close()
        with lock:
            taken.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == pytest.approx([1000.0 + 0.01 * n for n in range(len(taken))]), "none twice, none skipped"


def test_connections_late_for_their_starts_draw_new_ones_and_no_second_holds_more_than_the_rate(engine):
    """A connection held up (a reconnect, a slow reply) does not send its past starts at once
    beside the connections on time: in every one-second window the run keeps the rate."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite serializes writers; the servers are what many workers share")
    rate = 200.0
    rates = StateStore(engine).send_rates
    used: list[tuple[float, float]] = []  # (asked at, start given)
    lock = threading.Lock()

    def connection(seed: int) -> None:
        spacing, held_up = SharedSpacing(rates, "mail:run-d", 1 / rate), random.Random(seed)
        try:
            for _ in range(100):
                asked = time.time()
                start = spacing.wait()
                with lock:
                    used.append((asked, start))
                if held_up.random() < 0.08:
                    time.sleep(0.05)
        finally:
            spacing.close()

    threads = [threading.Thread(target=connection, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(used) == 400
    late = [asked - start for asked, start in used if start < asked - SharedSpacing.LATE_MOST]
    assert not late, f"starts given already past: {late[:5]}"
    starts = sorted(start for _, start in used)
    assert len(set(starts)) == len(starts), "no start given twice"
    busiest = max(bisect.bisect_left(starts, t + 1.0) - n for n, t in enumerate(starts))
    assert busiest <= rate, f"{busiest} starts in one second at {rate:g} a second"


# ------------------------------------------------------ two processes, one rate


def _config(tmp_path, max_per_second: float, **email):
    files = copy.deepcopy(sample.FILES)
    catalog = files["catalog.yaml"]
    catalog["subject"]["contact"] = {"email": "email", "name": "name", "locale": "locale"}
    catalog["reports"] = {"path": str(tmp_path / "reports")}
    files["incidents.yaml"].update(
        email={
            "conn_id": "smtp_default",
            "from": "MIC Privacy <privacy@mic.example>",
            "max_per_second": max_per_second,
            "connections": 2,
        }
        | email,
        batch_size=BATCH,
        regulators=[],
    )
    sample.write(tmp_path / "config", files)
    return tmp_path / "config"


def _seed(engine) -> None:
    meta.create_all(engine)
    when = datetime(2026, 11, 5, 12, 0)
    with engine.begin() as conn:
        conn.execute(
            users.insert(),
            [
                {
                    "id": i,
                    "email": f"person{i}@example.com",
                    "name": f"Person {i}",
                    "locale": "en",
                    "password_hash": "h",
                    "tier": "free",
                    "created_at": datetime(2025, 1, 1),
                }
                for i in range(1, PEOPLE + 1)
            ],
        )
        conn.execute(
            access_logs.insert(),
            [{"id": i, "user_id": i, "ip": "10.0.0.1", "path": "/", "logged_at": when} for i in range(1, PEOPLE + 1)],
        )


def _notification(folder) -> IncidentNotification:
    """As a task builds it: the configuration from its folder, the state store by system name."""
    config = load_config(folder)
    return IncidentNotification(config, StateStore.for_catalog(config.catalog))


def _send(folder, batches: list[int], ready, go) -> None:
    """One worker: its share of the run's batches, one after another, once every worker is ready."""
    notification = _notification(folder)
    ready.release()
    go.wait(timeout=60)
    for batch in batches:
        notification.send_batch(RUN, batch)


@pytest.fixture
def run(engine, tmp_path, connect, monkeypatch):
    """Returns ``start(max_per_second)``: the run registered, resolved and approved, and the sink."""
    if engine.dialect.name == "sqlite":
        pytest.skip("workers share a server database; SQLite is one machine's file")
    connect("app_db", engine.url)
    connect("lifecycle_state", engine.url)
    _seed(engine)
    with MailSink(keep=True) as sink:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT",
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": sink.port,
                    "extra": {"disable_ssl": True, "disable_tls": True},
                }
            ),
        )

        def start(max_per_second: float, **email):
            folder = _config(tmp_path, max_per_second, **email)
            notification = _notification(folder)
            notification.register(parse(FORM, notification.catalog), RUN, AS_OF)
            assert notification.resolve(RUN)["affected"] == PEOPLE
            notification.obligations(RUN)
            notification.record_approval(RUN, "approved", by="responder", how="test")
            assert notification.batches(RUN) == list(range(PEOPLE // BATCH))
            return folder, notification

        yield start, sink


def _workers(folder) -> list[multiprocessing.Process]:
    """Two workers, each with every other batch, started together (a worker's start-up, not
    the rate, would otherwise decide who sends first)."""
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, as a Celery worker is
    ready, go = spawn.Semaphore(0), spawn.Event()
    workers = [spawn.Process(target=_send, args=(folder, _BATCHES[n::2], ready, go)) for n in range(2)]
    for worker in workers:
        worker.start()
    for _ in workers:
        assert ready.acquire(timeout=60), "a worker did not start"
    go.set()
    return workers


_BATCHES = list(range(PEOPLE // BATCH))


def _most_in_one_second(times: list[datetime]) -> int:
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= timedelta(seconds=1):
            first += 1
        most = max(most, last - first + 1)
    return most


def _statuses(engine) -> Counter:
    with engine.connect() as conn:
        return Counter(conn.execute(sa.select(deliveries.c.status)).scalars())


def test_two_processes_side_by_side_keep_one_rate_and_mail_each_person_once(run, engine):
    start, sink = run
    folder, _ = start(max_per_second=80)
    workers = _workers(folder)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    received = sink.wait_for(PEOPLE, timeout=10)
    recipients = Counter(r for m in received for r in m.envelope_to)
    assert len(recipients) == PEOPLE and set(recipients.values()) == {1}, "everybody once"
    assert _statuses(engine) == {"sent": PEOPLE}
    arrivals = [m.received_at for m in received]
    # 80 starts a second, one each connection may take late, and the jitter between a start and
    # its arrival; two connections each at 80/s would show ~160
    assert _most_in_one_second(arrivals) <= 90, "one rate for both connections"
    spread = (max(arrivals) - min(arrivals)).total_seconds()
    assert spread >= (PEOPLE - 1) / 80 - 0.5, f"{PEOPLE} mails at 80/s take 3 s, not half that ({spread:.1f}s)"
    with engine.connect() as conn:
        assert conn.execute(sa.select(send_rates.c.scope)).scalars().all() == [f"incident:{RUN}"], "one rate row"
    with engine.connect() as conn:  # the first worker's people: those of its batches
        mine = sa.select(deliveries.c.subject_id).where(deliveries.c.batch.in_(_BATCHES[0::2]))
        first = {f"person{subject}@example.com" for subject in conn.execute(mine).scalars()}
    by_worker = [[m.received_at for m in received if (m.envelope_to[0] in first) == mine] for mine in (1, 0)]
    assert min(by_worker[1]) < max(by_worker[0]) and min(by_worker[0]) < max(by_worker[1]), (
        "the two workers sent at the same time"
    )


def test_a_worker_killed_half_way_leaves_a_run_the_rerun_finishes_without_mailing_anyone_twice(run, engine):
    start, sink = run
    folder, notification = start(max_per_second=60)
    workers = _workers(folder)
    sink.wait_for(40, timeout=30)
    workers[0].kill()  # SIGKILL, mid-batch: no handler runs
    workers[0].join(timeout=10)
    workers[1].join(timeout=60)
    assert workers[1].exitcode == 0
    assert len(sink.messages) < PEOPLE, "the kill came before the first worker's batches were done"

    for batch in notification.batches(RUN):  # the scheduler's retry of the killed task, and of its batches after
        notification.send_batch(RUN, batch)

    recipients = Counter(r for m in sink.messages for r in m.envelope_to)
    assert set(recipients.values()) == {1}, "nobody mailed twice"
    statuses = _statuses(engine)
    assert statuses["sent"] + statuses["uncertain"] == PEOPLE
    assert statuses["sent"] <= len(recipients) <= PEOPLE, "an uncertain mail may or may not have arrived"
    assert statuses["uncertain"] <= 2, "at most the mail on the wire and the next claim are in doubt"


def test_a_worker_killed_while_greylisted_mails_wait_leaves_them_owed_and_the_rerun_mails_them_once(run, engine):
    """A mail a 4xx put off holds no claim while it waits: killed then, the worker leaves the
    person owed a notice (not in doubt), and the task's retry mails them, once."""
    start, sink = run
    folder, notification = start(max_per_second=100, retry_attempts=3, retry_backoff="5min")
    with engine.connect() as conn:
        first_batch = sorted(
            conn.execute(sa.select(incident_subjects.c.subject_id).where(incident_subjects.c.batch == 0)).scalars()
        )
    grey = {f"person{s}@example.com" for s in first_batch[::4]}
    sink.faults = SmtpFaults(greylisted=grey.__contains__, greylist_tries=2)
    spawn = multiprocessing.get_context("spawn")
    ready, go = spawn.Semaphore(0), spawn.Event()
    worker = spawn.Process(target=_send, args=(folder, _BATCHES, ready, go))
    worker.start()
    assert ready.acquire(timeout=60), "the worker did not start"
    go.set()
    sink.wait_for(len(first_batch) - len(grey), timeout=30)
    time.sleep(0.5)  # the worker waits out the greylisted mails' backoff
    worker.kill()
    worker.join(timeout=10)
    assert sink.faults.greylisted == len(grey) and len(sink.messages) == len(first_batch) - len(grey)

    statuses = _statuses(engine)
    assert statuses == {"sent": len(first_batch) - len(grey)}, "nothing in doubt: the put-off mails hold no claim"
    runs = [RUN]
    owed = set(notification.services.state.incidents.owed(FORM["incident_id"], runs))
    assert {s for s in first_batch if f"person{s}@example.com" in grey} <= owed

    for batch in notification.batches(RUN):  # the task's retry
        notification.send_batch(RUN, batch)
    recipients = Counter(r for m in sink.messages for r in m.envelope_to)
    assert len(recipients) == PEOPLE and set(recipients.values()) == {1}, "everybody once"
    assert _statuses(engine) == {"sent": PEOPLE}
