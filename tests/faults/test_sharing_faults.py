"""sharing_<recipient> under faults: S3 answering 503 or 500 on uploads, the app database
reset mid-extract.  After the retry each file of the delivery is in the bucket once (one
version), the register has one entry, and the ledger verifies."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import sqlalchemy as sa

from lifecycle.config import load_config
from lifecycle.sharing.service import Sharing
from lifecycle.state import StateStore
from lifecycle.state.schema import sharing_register
from tests.config import sample
from tests.faults.conftest import LONG, S3_BACKENDS, backend_of, outcome_of, record, with_retries
from tests.sharing.test_sharing import HMAC_KEY, INTERVAL, SIGNING_KEY, _files, _seed
from tests.support.s3 import aws_connection

CHECKED = "object versions per key (boto3 listing), register rows by hand, the ledger"
FILES = {"push/2026-05-31/users.jsonl", "push/2026-05-31/orders.jsonl", "push/2026-05-31/manifest.json"}


@pytest.fixture
def sharing_world(engine, tmp_path, monkeypatch, s3_store, s3_endpoint, connect, db_proxy, proxies):
    db, url = db_proxy
    s3_proxy = proxies(int(s3_endpoint.rsplit(":", 1)[1]), "http")
    connect("app_db", url)
    connect("drop_faults", aws_connection(f"http://127.0.0.1:{s3_proxy.port}"))
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", HMAC_KEY)
    monkeypatch.setenv("AIRFLOW_CONN_LIFECYCLE_SIGNING", json.dumps({"conn_type": "generic", "password": SIGNING_KEY}))
    config = load_config(sample.write(tmp_path / "config", _files(tmp_path, s3_store.bucket, "drop_faults")))
    state_engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    state = StateStore(state_engine, dataset_names=set(config.catalog.datasets))
    _seed(engine, state)
    yield config, engine, state, s3_store, db, s3_proxy
    state_engine.dispose()


def _deliver(config, state, *, before=lambda: None):
    """The DAG's tasks (gate, one extract per dataset, manifest, register), each retried."""
    run = {"dag_id": "sharing_push", "run_id": "scheduled__x"}
    sharing = lambda: Sharing(config, state, "push")  # noqa: E731  (a task's own, each try)
    files: dict = {}
    tally = with_retries([("gate", lambda: sharing().gate(INTERVAL, **run))])
    before()
    steps = [
        (f"extract[{d}]", lambda d=d: files.__setitem__(d, sharing().extract(d, INTERVAL)))
        for d in sharing().recipient.share
    ]
    manifest: list = []
    steps += [("manifest", lambda: manifest.append(sharing().manifest(INTERVAL, list(files.values()), **run)))]
    steps += [("record", lambda: sharing().record_delivery(INTERVAL, manifest[-1], run_id=run["run_id"]))]
    return with_retries(steps, tally=tally)


def _check(store, state, tally) -> None:
    """Each data file and the signed manifest once; the page for people at most once a try of the
    manifest task (a retry keeps a signed manifest already there for the same files, and the page
    with it, unless the try was cut between the two)."""
    listed = store.client.list_object_versions(Bucket=store.bucket, Prefix="push/")
    versions = Counter(v["Key"] for v in listed.get("Versions", []))
    assert set(versions) >= FILES and {versions[k] for k in FILES} == {1}, versions
    assert 1 <= versions["push/2026-05-31/manifest.html"] <= 1 + sum(f.startswith("manifest") for f in tally.failures)
    with state.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sharing_register)).scalar() == 1
    assert state.ledger.verify().ok


@pytest.mark.parametrize("backend_url", S3_BACKENDS, indirect=True)
@pytest.mark.parametrize(
    "status, code, times, match",
    [(503, "SlowDown", 2, "PUT "), (500, "InternalError", 12, "manifest.json")],
)
def test_s3_errors_on_uploads_wait_or_fail_retryably_and_each_file_goes_up_once(
    sharing_world, status, code, times, match
):
    config, engine, state, store, _, s3_proxy = sharing_world
    s3_proxy.http_error(status, code, times=times, match=match)
    tally = _deliver(config, state)
    assert s3_proxy.counts["injected"] == times
    assert bool(tally.failures) == (times > 4), tally.failures
    _check(store, state, tally)
    where = "the manifest" if match.startswith("manifest") else "uploads"
    fault = f"S3 {status} {code} ×{times} on {where}"
    outcome = outcome_of(tally) + (" (manifest.html written again)" if tally.failures else "")
    record("sharing_<recipient>", fault, backend_of(engine), outcome, 1 + len(tally.failures), CHECKED)


@pytest.mark.parametrize("backend_url", ["postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("statement", [2, 5] + ([1, 3, 8] if LONG else []))
def test_an_app_database_reset_mid_extract_fails_retryably_and_the_files_go_up_once(sharing_world, statement):
    config, engine, state, store, db, _ = sharing_world
    tally = _deliver(config, state, before=lambda: db.reset_after_statements(statement))
    assert db.counts["resets"] == 1 and len(tally.failures) <= 1, tally.failures
    _check(store, state, tally)
    record(
        "sharing_<recipient>",
        "database connection reset mid-extract",
        backend_of(engine),
        outcome_of(tally),
        1 + len(tally.failures),
        CHECKED,
    )
