"""retention_expiry under faults: the app database reset mid-apply, or refusing connections
while it restarts.  After the retry exactly the expired rows are gone (the seeding rule says
which), nothing else changed, and the ledger verifies."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lifecycle.retention import Retention, unit_group
from lifecycle.state import StateStore
from tests.faults.conftest import LONG, backend_of, outcome_of, record, with_retries
from tests.retention.test_retention import (
    AS_OF,
    HELD_SUBJECT,
    HMAC_KEY,
    ORDERS_HELD_SUBJECT,
    _checksum,
    _config,
    _expected_log_ids,
    _ids,
    _seed,
)
from tests.support.sample_app import access_logs, users

RUN = "scheduled__2026-06-01"
CHECKED = "access log ids left against the seeding rule, users' checksum, the ledger"


@pytest.fixture
def retention_world(engine, tmp_path, monkeypatch, connect, db_proxy):
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", HMAC_KEY)
    _seed(engine)
    db, url = db_proxy
    connect("app_db", url)
    connect("lifecycle_state", sa.URL.create("sqlite", database=str(tmp_path / "state.db")))
    config = _config(tmp_path)
    state = StateStore.for_catalog(config.catalog)
    state.holds.add(str(HELD_SUBJECT), reason="litigation 2026-041", today=AS_OF.date())
    state.holds.add(str(ORDERS_HELD_SUBJECT), reason="tax audit", datasets=["orders"], today=AS_OF.date())
    return config, engine, state, db


def _run(config, state, *, delay: float = 0.0, before_apply=lambda: None):
    """plan, gate, then each unit as its mapped task, each retried on a retryable failure."""
    retention = lambda: Retention(config, state)  # noqa: E731  (a task's own, each try)
    planned: list = []
    tally = with_retries([("plan", lambda: planned.append(retention().plan(RUN, AS_OF)))], delay=delay)
    groups = retention().gate(planned[-1])
    before_apply()
    steps = [
        (f"apply[{stage}]", lambda unit=unit: retention().apply(unit, RUN, AS_OF))
        for stage in range(3)
        for unit in groups[unit_group("app_db", stage)]
    ]
    return with_retries(steps, delay=delay, tally=tally)


def _check(engine, state, users_before):
    assert _ids(engine, access_logs) == _expected_log_ids()
    assert _checksum(engine, users) == users_before
    assert state.ledger.verify().ok


@pytest.mark.parametrize("backend_url", ["postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("statement", [4, 12, 25] + ([2, 8, 18, 35] if LONG else []))
def test_an_app_database_reset_mid_apply_fails_retryably_and_the_retry_finishes(retention_world, statement):
    config, engine, state, db = retention_world
    users_before = _checksum(engine, users)
    tally = _run(config, state, before_apply=lambda: db.reset_after_statements(statement))
    assert db.counts["resets"] == 1 and len(tally.failures) <= 1, tally.failures
    _check(engine, state, users_before)
    record(
        "retention_expiry",
        "database connection reset mid-apply",
        backend_of(engine),
        outcome_of(tally),
        1 + len(tally.failures),
        CHECKED,
    )


@pytest.mark.parametrize("backend_url", ["postgresql", "mariadb"], indirect=True)
def test_a_restarting_database_fails_the_task_until_it_is_back(retention_world):
    config, engine, state, db = retention_world
    users_before = _checksum(engine, users)
    tally = _run(config, state, delay=1.0, before_apply=lambda: db.refuse_for(1.5))
    assert tally.failures and all(f.startswith("apply[") for f in tally.failures), tally.failures
    _check(engine, state, users_before)
    outcome = "fails, retry finishes"
    record(
        "retention_expiry",
        "database refusing connections 1.5 s",
        backend_of(engine),
        outcome,
        1 + len(tally.failures),
        CHECKED,
    )
