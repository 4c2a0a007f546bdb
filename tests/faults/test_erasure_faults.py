"""cancellation_erasure under faults: the app database reset mid-erase, S3 answering 503 or
500, the SMTP server's 421, and S3 refusing for good (fails at once).  After the retry every
due person is gone from every table and bucket, nobody else changed, each notice went once,
and the ledger verifies."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from lifecycle.erasure import Erasure
from lifecycle.failures import retryable
from lifecycle.mailsink import MailSink
from lifecycle.state import StateStore
from tests.erasure.test_erasure import (
    AS_OF,
    DUE,
    DUPLICATE,
    ERASED,
    HELD,
    PENDING,
    _config,
    _reach,
    _rows_of_others,
    _seed,
)
from tests.faults.conftest import (
    LONG,
    S3_BACKENDS,
    Tally,
    backend_of,
    outcome_of,
    record,
    smtp_connection,
    with_retries,
)
from tests.support.faults import SmtpFaults
from tests.support.s3 import aws_connection

RUN = "scheduled__2026-06-01"
DATASETS = ("users", "access_logs", "conversations", "chat_messages", "account_cancellations", "orders")
CHECKED = "rows reaching the erased (hand-written counts), every other row's checksum, object versions, mails, ledger"


class _World:
    def __init__(self, config, engine, state, s3, bucket, sink, faults, db, s3_proxy):
        self.config, self.engine, self.state, self.s3, self.bucket = config, engine, state, s3, bucket
        self.sink, self.faults, self.db, self.s3_proxy = sink, faults, db, s3_proxy
        self.others = _rows_of_others(engine)

    def run(self, tally: Tally | None = None) -> Tally:
        erasure = lambda: Erasure(self.config, self.state)  # noqa: E731  (a task's own, each try)
        intake = []
        tally = with_retries(
            [
                ("intake", lambda: intake.append(erasure().intake(RUN, AS_OF))),
                ("notify_scheduled", lambda: erasure().notify_scheduled()),
            ],
            tally=tally,
        )
        batches = intake[-1].batches
        steps = [(f"erase[{n}]", lambda b=b: erasure().erase(b, AS_OF, run_id=RUN)) for n, b in enumerate(batches)]
        return with_retries(steps, tally=tally)

    def check(self) -> None:
        for dataset in DATASETS:
            assert _reach(self.engine, self.config, dataset, ERASED) == {}, dataset
        assert _rows_of_others(self.engine) == self.others, "nobody else's rows changed"
        left = self.s3.list_object_versions(Bucket=self.bucket, Prefix="chats/")
        keys = {v["Key"] for v in left.get("Versions", []) + left.get("DeleteMarkers", [])}
        assert keys == {f"chats/{PENDING}/1.jpg", f"chats/{DUPLICATE}/kept.jpg"}, keys
        mails = Counter((m["To"], m["Subject"]) for m in self.sink.messages)
        assert set(mails.values()) == {1} and len(mails) == 5, mails
        assert self.state.ledger.verify().ok


@pytest.fixture
def erasure_world(engine, tmp_path, monkeypatch, locked_s3_store, s3_endpoint, connect, db_proxy, proxies):
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", "erasure-test-hmac-key-0123456789")
    _seed(engine)
    store = locked_s3_store
    db, url = db_proxy
    s3_proxy = proxies(int(s3_endpoint.rsplit(":", 1)[1]), "http")
    connect("app_db", url)
    connect("media_s3", aws_connection(f"http://127.0.0.1:{s3_proxy.port}"))
    for user in (DUE, PENDING, DUPLICATE):
        store.client.put_object(Bucket=store.bucket, Key=f"chats/{user}/1.jpg", Body=b"a")
        store.client.put_object(Bucket=store.bucket, Key=f"chats/{user}/1.jpg", Body=b"b")
    store.client.delete_object(Bucket=store.bucket, Key=f"chats/{DUE}/1.jpg")
    store.client.put_object(
        Bucket=store.bucket,
        Key=f"chats/{DUPLICATE}/kept.jpg",
        Body=b"x",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=datetime(2099, 1, 1, tzinfo=UTC),
    )
    config = _config(tmp_path, store.bucket)
    state_engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    state = StateStore(state_engine, dataset_names=set(config.catalog.datasets))
    state.holds.add(str(HELD), reason="litigation", today=AS_OF.date())
    faults = SmtpFaults()
    with MailSink(faults=faults) as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(sink.port))
        yield _World(config, engine, state, store.client, store.bucket, sink, faults, db, s3_proxy)
    state_engine.dispose()


@pytest.mark.parametrize("backend_url", ["postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("statement", [20, 45, 80] + ([10, 30, 60, 100, 130] if LONG else []))
def test_an_app_database_reset_mid_erase_fails_retryably_and_the_retry_finishes(erasure_world, statement):
    world = erasure_world
    world.db.reset_after_statements(statement)
    tally = world.run()
    assert world.db.counts["resets"] == 1 and len(tally.failures) <= 1, tally.failures
    world.check()
    record(
        "cancellation_erasure",
        "database connection reset mid-erase",
        backend_of(world.engine),
        outcome_of(tally),
        1 + len(tally.failures),
        CHECKED,
    )


@pytest.mark.parametrize("backend_url", S3_BACKENDS, indirect=True)
@pytest.mark.parametrize(
    "status, code, times, outcome",
    [(503, "SlowDown", 3, "waits, succeeds"), (500, "InternalError", 12, "fails, retry finishes")],
)
def test_s3_errors_on_deletes_wait_or_fail_retryably_and_every_version_goes(
    erasure_world, status, code, times, outcome
):
    world = erasure_world
    world.s3_proxy.http_error(status, code, times=times, match="?delete")
    world.s3_proxy.http_error(status, code, times=times, match="DELETE ")
    tally = world.run()
    assert world.s3_proxy.counts["injected"] >= times
    assert bool(tally.failures) == outcome.startswith("fails"), tally.failures
    world.check()
    fault = f"S3 {status} {code} ×{times} on deletes"
    record("cancellation_erasure", fault, backend_of(world.engine), outcome, 1 + len(tally.failures), CHECKED)


def test_421_on_notices_waits_and_each_notice_goes_once(erasure_world):
    world = erasure_world
    world.faults.close_every = 2
    tally = world.run()
    assert tally.failures == [] and world.faults.closed >= 2
    world.check()
    record(
        "cancellation_erasure", "SMTP 421 every 2nd message", backend_of(world.engine), "waits, succeeds", 1, CHECKED
    )


def test_s3_access_denied_fails_at_once_and_is_not_retried(erasure_world):
    world = erasure_world
    world.s3_proxy.http_error(403, "AccessDenied", times=1000)
    tally = Tally()
    with pytest.raises(Exception) as failed:
        world.run(tally)
    assert not retryable(failed.value) and tally.failures == []
    record(
        "cancellation_erasure",
        "deterministic: S3 403 AccessDenied",
        backend_of(world.engine),
        "fails at once",
        1,
        f"no retry ({type(failed.value).__name__})",
    )
