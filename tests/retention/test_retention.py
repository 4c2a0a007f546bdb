"""Retention on real databases (SQLite, PostgreSQL, MariaDB) and a real S3 server."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from lifecycle.config import load_config
from lifecycle.errors import LifecycleError
from lifecycle.evidence import retention_batch, retention_plan
from lifecycle.retention import Retention, unit_group
from lifecycle.retention.apply import BatchRecord
from lifecycle.retention.plan import Plan, unit_from_json
from lifecycle.state import StateStore
from lifecycle.stores.s3 import S3Store
from lifecycle.stores.sql import SqlStore
from tests.config import sample
from tests.support.s3 import aws_connection
from tests.support.sample_app import access_logs, chat_messages, conversations, meta, orders, users

AS_OF = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
LOG_CUTOFF = datetime(2025, 12, 1, 12, 0, 0)  # 6mo before AS_OF (naive UTC, as stored)
CHAT_CUTOFF = datetime(2025, 6, 1, 12, 0, 0)  # 1y
ORDER_CUTOFF = datetime(2023, 6, 1, 12, 0, 0)  # 3y
HMAC_KEY = "retention-test-hmac-key-0123456789"

# access log ages around the 6-month cutoff: exactly at it and one second younger stay, one second older goes
LOG_EDGES = {1: LOG_CUTOFF, 2: LOG_CUTOFF + timedelta(seconds=1), 3: LOG_CUTOFF - timedelta(seconds=1)}
HELD_SUBJECT, ORDERS_HELD_SUBJECT = 3, 4


def _config(tmp_path, **retention_changes):
    files = copy.deepcopy(sample.FILES)
    files["catalog.yaml"]["datasets"].pop("chat_photos")
    files["catalog.yaml"]["reports"] = {"path": str(tmp_path / "reports")}
    files["retention.yaml"] = {
        "batch_size": 7,
        "max_fraction_per_run": 0.9,
        "rules": [
            {"name": "logs-6mo", "applies_to": {"datasets": ["access_logs"]}, "keep": "6mo"},
            {"name": "chats-1y", "applies_to": {"datasets": ["conversations", "chat_messages"]}, "keep": "1y"},
            {"name": "orders-3y", "applies_to": {"datasets": ["orders"]}, "keep": "3y", "action": "anonymize"},
        ],
        "statutory": [
            {
                "name": "network-logs",
                "applies_to": {"datasets": ["access_logs"]},
                "minimum": "6mo",
                "basis": "PRC Cybersecurity Law art. 21",
            },
            {
                "name": "ecommerce",
                "applies_to": {"categories": ["transaction_records"]},
                "minimum": "3y",
                "basis": "PRC E-Commerce Law art. 31",
            },
        ],
        **retention_changes,
    }
    return load_config(sample.write(tmp_path / "config", files))


def _seed(engine):
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            users.insert(),
            [
                {
                    "id": u,
                    "email": f"u{u}@example.com",
                    "name": f"User {u}",
                    "password_hash": "h" * 60,
                    "tier": "gold",
                    "created_at": ORDER_CUTOFF - timedelta(days=400),
                }
                for u in range(1, 11)
            ],
        )
        logs = [
            {
                "id": n,
                "user_id": n % 10 + 1,
                "ip": f"10.0.{n}.{n % 9}",
                "path": f"/p/{n}",
                "logged_at": LOG_EDGES.get(n, LOG_CUTOFF + timedelta(days=90 - 2 * n)),
            }
            for n in range(1, 101)
        ]
        conn.execute(access_logs.insert(), logs)
        # conversations 1..6 are old; 7..8 young.  Every message of an old conversation is old.
        conn.execute(
            conversations.insert(),
            [
                {
                    "id": c,
                    "user_id": c % 5 + 1,
                    "created_at": CHAT_CUTOFF - timedelta(days=30 * c) if c <= 6 else CHAT_CUTOFF + timedelta(days=c),
                }
                for c in range(1, 9)
            ],
        )
        conn.execute(
            chat_messages.insert(),
            [
                {
                    "id": m,
                    "conversation_id": m % 8 + 1,
                    "body": f"hi {m}",
                    "sent_at": CHAT_CUTOFF - timedelta(days=m) if m % 8 + 1 <= 6 else CHAT_CUTOFF + timedelta(days=m),
                }
                for m in range(1, 41)
            ],
        )
        conn.execute(
            orders.insert(),
            [
                {
                    "id": o,
                    "user_id": o % 10 + 1,
                    "address": f"{o} Main St",
                    "amount": 100 * o,
                    "created_at": ORDER_CUTOFF + timedelta(days=10 * (o - 15)),
                }
                for o in range(1, 31)
            ],
        )


def _expired_logs():
    """(expired ids, of which held) by the seeding rule, computed apart from the code under test."""
    expired = {n for n in range(1, 101) if LOG_EDGES.get(n, LOG_CUTOFF + timedelta(days=90 - 2 * n)) < LOG_CUTOFF}
    return expired, {n for n in expired if n % 10 + 1 == HELD_SUBJECT}


def _expected_log_ids():
    expired, held = _expired_logs()
    return set(range(1, 101)) - (expired - held)


def _checksum(engine, table):
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.id)).all()
    return hashlib.sha256(json.dumps([list(map(str, r)) for r in rows]).encode()).hexdigest()


def _ids(engine, table):
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.id)).scalars())


@pytest.fixture
def world(engine, tmp_path, monkeypatch, connect):
    """The app database and the state store reached through Airflow connections, as tasks reach them."""
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", HMAC_KEY)
    _seed(engine)
    connect("app_db", engine.url)
    connect("lifecycle_state", sa.URL.create("sqlite", database=str(tmp_path / "state.db")))
    state = StateStore.for_catalog(_config(tmp_path).catalog)
    state.holds.add(str(HELD_SUBJECT), reason="litigation 2026-041", today=AS_OF.date())
    state.holds.add(str(ORDERS_HELD_SUBJECT), reason="tax audit", datasets=["orders"], today=AS_OF.date())
    yield engine, state, tmp_path


def _retention(config, engine, state):
    return Retention(config, state)


def _run(retention, run_id="scheduled__2026-06-01", **gate):
    plan = retention.plan(run_id, AS_OF)
    groups = retention.gate(plan, **gate)
    for stage in range(3):
        for unit in groups[unit_group("app_db", stage)]:
            retention.apply(unit, run_id, AS_OF)
    return plan


def test_exactly_the_expired_rows_go_and_held_and_young_rows_stay(world):
    engine, state, tmp_path = world
    config = _config(tmp_path)
    before_users = _checksum(engine, users)
    retention = _retention(config, engine, state)
    plan = _run(retention)

    logs = plan.dataset("access_logs")
    expired, held = _expired_logs()
    assert (logs.candidates, logs.held, logs.to_delete, logs.under_floor) == (
        len(expired),
        len(held),
        len(expired - held),
        0,
    )
    assert logs.effective_cutoff == logs.cutoff == "2025-12-01T12:00:00+00:00"
    assert sum(r[2] for r in logs.ranges) == len(expired - held) and all(r[2] <= 7 for r in logs.ranges)
    assert _ids(engine, access_logs) == _expected_log_ids()
    assert {1, 2} <= _ids(engine, access_logs) and 3 not in _ids(engine, access_logs)

    # children first: old messages (stage 0) before their old conversations (stage 1)
    assert plan.dataset("chat_messages").stage == 0 and plan.dataset("conversations").stage == 1
    held_conversations = {c for c in range(1, 7) if c % 5 + 1 == HELD_SUBJECT}
    assert _ids(engine, conversations) == {7, 8} | held_conversations
    assert _ids(engine, chat_messages) == {m for m in range(1, 41) if m % 8 + 1 in _ids(engine, conversations)}

    assert _checksum(engine, users) == before_users, "a dataset no rule covers is byte-identical"
    assert retention.verify(plan)["access_logs"] == {"remaining": 0, "held": len(held), "referenced": 0}
    assert state.ledger.verify().ok


def test_anonymized_rows_keep_their_other_columns_and_are_not_anonymized_twice(world):
    engine, state, tmp_path = world
    retention = _retention(_config(tmp_path), engine, state)
    with engine.connect() as conn:
        before = {r.id: r for r in conn.execute(sa.select(orders))}
    plan = _run(retention)
    expired = {o for o, r in before.items() if r.created_at < ORDER_CUTOFF}
    acted = {o for o in expired if before[o].user_id not in (HELD_SUBJECT, ORDERS_HELD_SUBJECT)}
    assert plan.dataset("orders").to_anonymize == len(acted) > 0
    with engine.connect() as conn:
        after = {r.id: r for r in conn.execute(sa.select(orders))}
    for o, row in after.items():
        assert (row.user_id, row.amount, row.created_at) == (before[o].user_id, before[o].amount, before[o].created_at)
        assert row.address == ("[redacted]" if o in acted else before[o].address)

    again = retention.plan("manual__again", AS_OF)
    assert again.dataset("orders").to_anonymize == 0, "anonymized rows are not candidates again"


def test_a_statutory_floor_protects_rows_even_when_validation_is_bypassed(world):
    engine, state, tmp_path = world
    config = _config(tmp_path)
    short = config.retention.rules[0].model_copy(update={"keep": config.retention.rules[0].keep.parse("30d")})
    config = config.__class__(
        **{
            **config.__dict__,
            "retention": config.retention.model_copy(update={"rules": [short, *config.retention.rules[1:]]}),
        }
    )
    retention = _retention(config, engine, state)
    plan = _run(retention)
    logs = plan.dataset("access_logs")
    assert logs.cutoff > logs.effective_cutoff == "2025-12-01T12:00:00+00:00"
    expired, held = _expired_logs()
    assert logs.under_floor > 0 and logs.to_delete == len(expired - held)
    assert _ids(engine, access_logs) == _expected_log_ids()


def test_the_guardrail_stops_before_any_change_and_an_override_is_ledgered(world):
    engine, state, tmp_path = world
    retention = _retention(_config(tmp_path, max_fraction_per_run=0.25), engine, state)
    before = {t.name: _checksum(engine, t) for t in meta.sorted_tables}
    plan = retention.plan("manual__1", AS_OF)
    with pytest.raises(LifecycleError) as caught:
        retention.gate(plan)
    acted = len(_expired_logs()[0] - _expired_logs()[1])
    assert f"access_logs: {acted} of 100 rows ({acted:.1f}%) is more than max_fraction_per_run 25%" in str(caught.value)
    assert {t.name: _checksum(engine, t) for t in meta.sorted_tables} == before
    with pytest.raises(LifecycleError, match="override_reason must say why"):
        retention.gate(plan, override=True, reason="ok")

    _run(retention, "manual__1", override=True, reason="backlog after the 2026-05 outage")
    assert _ids(engine, access_logs) == _expected_log_ids()
    [event] = [e for e in state.ledger.entries() if e.kind == "retention.guardrail_override"]
    assert event.payload["reason"] == "backlog after the 2026-05 outage"
    assert "access_logs" in [d["dataset"] for d in event.payload["datasets"]]


def test_a_run_whose_guardrail_was_overridden_is_verified_and_reported_as_overridden(world):
    """The plan is recorded before the guardrail runs; verification and the report read it
    back and must see the override, not a blocked dataset that was in fact applied."""
    engine, state, tmp_path = world
    retention = _retention(_config(tmp_path, max_fraction_per_run=0.25), engine, state)
    _run(retention, "manual__2", override=True, reason="backlog after the 2026-05 outage")
    plan = retention.recorded_plan("manual__2")
    assert plan.dataset("access_logs").guardrail == "overridden"
    verified = retention.verify(plan)
    assert "skipped" not in verified["access_logs"], "the override let access_logs through: it is counted again"
    assert (verified["access_logs"]["remaining"], verified["access_logs"]["held"]) == (0, len(_expired_logs()[1]))
    document = json.loads(open(retention.report("manual__2", as_of=AS_OF)["json"]).read())
    row = next(r for r in document["datasets"] if r["dataset"] == "access_logs")
    assert row["guardrail"] == "overridden" and document["verification"]["datasets"]["access_logs"]["remaining"] == 0


class Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_end_state_without_double_counts(world):
    engine, state, tmp_path = world
    config = _config(tmp_path)
    calls = {"n": 0}

    class Dying(SqlStore):
        def delete(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 4:  # mid-dataset: three batches of access_logs are done
                raise Killed()
            return super().delete(*args, **kwargs)

    dying = Retention(config, state, open_store=lambda system: Dying(engine, config.catalog, system))
    with pytest.raises(Killed):
        _run(dying)
    assert len(_ids(engine, access_logs)) == 100 - 21

    resumed = _retention(config, engine, state)
    plan = _run(resumed)
    expired, held = _expired_logs()
    assert plan.dataset("access_logs").to_delete == len(expired - held), "the rerun works from the recorded plan"
    assert _ids(engine, access_logs) == _expected_log_ids()
    report = resumed.report(plan.run_id, as_of=AS_OF)
    document = json.loads(open(report["json"]).read())
    logs = next(d for d in document["datasets"] if d["dataset"] == "access_logs")
    assert logs["deleted"] == len(expired - held) and logs["held"] == len(held)
    assert len([e for e in state.ledger.entries() if e.kind == "retention.plan"]) == 1
    assert state.ledger.verify().ok


def test_rows_still_referenced_by_rows_that_stay_are_kept_and_the_rest_of_the_run_goes_on(world):
    engine, state, tmp_path = world
    with engine.begin() as conn:  # a young message in an old conversation
        conn.execute(
            chat_messages.insert().values(
                id=99, conversation_id=1, body="late", sent_at=CHAT_CUTOFF + timedelta(days=5)
            )
        )
    retention = _retention(_config(tmp_path), engine, state)
    plan = _run(retention, "manual__fk")

    talks = plan.dataset("conversations")
    assert talks.referenced == 1 and talks.references == [
        {
            "dataset": "chat_messages",
            "columns": ["conversation_id"],
            "on_delete": "NO ACTION",
            "subject_link": True,
            "rows": 1,
        }
    ]
    held_conversations = {c for c in range(1, 7) if c % 5 + 1 == HELD_SUBJECT}
    assert _ids(engine, conversations) == {1, 7, 8} | held_conversations, "only the referenced old conversation stays"
    assert 99 in _ids(engine, chat_messages)
    assert _ids(engine, access_logs) == _expected_log_ids(), "other datasets are expired as planned"
    assert retention.verify(plan)["conversations"] == {"remaining": 0, "held": len(held_conversations), "referenced": 1}
    document = json.loads(open(retention.report(plan.run_id, as_of=AS_OF)["json"]).read())
    row = next(d for d in document["datasets"] if d["dataset"] == "conversations")
    assert row["referenced"] == 1
    assert row["references"][0]["advice"].startswith(
        "conversations: 1 expired row(s) kept: referenced by rows of chat_messages that are not expired or are held; "
        "rows of chat_messages reach their person through them (conversation_id)"
    )
    assert "keeps its rows no longer than conversations (1y)" in row["references"][0]["advice"]


def test_a_dataset_that_cannot_be_planned_fails_its_own_unit_and_the_others_go_on(world):
    engine, state, tmp_path = world
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE orders"))
    retention = _retention(_config(tmp_path), engine, state)
    plan = retention.plan("manual__broken", AS_OF)
    broken = plan.dataset("orders")
    assert broken.error == "system 'app_db', dataset 'orders': reflect the table: table 'orders' does not exist"
    groups = retention.gate(plan)
    failing = [u for units in groups.values() for u in units if u.get("error")]
    assert [u["dataset"] for u in failing] == ["orders"]
    with pytest.raises(
        LifecycleError, match="retention of orders could not be planned: system 'app_db', dataset 'orders'"
    ):
        retention.apply(failing[0], "manual__broken", AS_OF)
    for stage in range(3):
        for unit in groups[unit_group("app_db", stage)]:
            if not unit.get("error"):
                retention.apply(unit, "manual__broken", AS_OF)
    assert _ids(engine, access_logs) == _expected_log_ids()
    assert retention.verify(plan)["orders"] == {"error": broken.error}
    document = json.loads(open(retention.report(plan.run_id, as_of=AS_OF)["json"]).read())
    assert next(d for d in document["datasets"] if d["dataset"] == "orders")["error"] == broken.error


def test_the_report_after_a_failed_plan_says_which_step_stopped_the_run(world):
    engine, state, tmp_path = world
    retention = _retention(_config(tmp_path), engine, state)
    retention.record_failure("manual__nope", "plan", "system 'app_db': count rows: OperationalError: server closed")
    written = retention.report("manual__nope", as_of=AS_OF, failed_steps=["plan", "preflight"])
    document = json.loads(open(written["json"]).read())
    assert document["planned"] is False and document["datasets"] == []
    assert document["failures"] == [
        {"step": "plan", "reason": "system 'app_db': count rows: OperationalError: server closed"},
        {"step": "preflight", "reason": "the task failed; its log says why"},
    ]
    assert "server closed" in open(written["html"]).read()


def test_the_report_has_counts_and_no_personal_information(world):
    engine, state, tmp_path = world
    retention = _retention(_config(tmp_path), engine, state)
    plan = _run(retention)
    retention.verify(plan)
    written = retention.report(plan.run_id, as_of=AS_OF)
    text = open(written["json"]).read() + open(written["html"]).read()
    assert "@example.com" not in text and "Main St" not in text and "User " not in text
    document = json.loads(open(written["json"]).read())
    assert document["verification"]["ok"] is True
    orders_row = next(d for d in document["datasets"] if d["dataset"] == "orders")
    assert orders_row["statutory_floor"] == "ecommerce" and orders_row["basis"] == "PRC E-Commerce Law art. 31"
    assert "How to read this" in open(written["html"]).read()


PLAN_ENTRY_KEYS = {
    "dataset", "system", "store", "rule", "action", "keep", "cutoff", "effective_cutoff", "floor", "basis",
    "floor_cutoff", "fields", "total", "candidates", "under_floor", "held", "referenced", "references",
    "to_delete", "to_anonymize", "fraction", "guardrail", "stage", "ranges", "error",
}  # fmt: skip


def test_the_ledgered_plan_units_and_batch_records_keep_their_json_shape(world):
    """Reruns and reports read what earlier versions recorded: the JSON is pinned, and reads back equal."""
    engine, state, tmp_path = world
    retention = _retention(_config(tmp_path), engine, state)
    plan = _run(retention, "manual__shape")

    recorded = state.ledger.find(retention_plan("manual__shape"))
    assert recorded.idempotency_key == "retention:manual__shape:plan"
    assert set(recorded.payload) == {"run_id", "as_of", "batch_size", "max_fraction", "datasets"}
    assert all(set(d) == PLAN_ENTRY_KEYS for d in recorded.payload["datasets"])
    assert recorded.payload == json.loads(json.dumps(plan.to_json()))
    assert Plan.from_json(recorded.payload) == plan

    units = [u for group in retention.units(plan).values() for u in group]
    assert units and all(set(u) == {"dataset", "action", "cutoff", "fields", "part", "parts", "ranges"} for u in units)
    assert all(unit_from_json(u).to_json() == u for u in units)

    low, high, _ = plan.dataset("access_logs").ranges[0]
    batch = state.ledger.find(retention_batch("manual__shape", "access_logs", low, high))
    assert batch.idempotency_key == f"retention:manual__shape:access_logs:{low}:{high}"
    assert set(batch.payload) == {"dataset", "low", "high", "rows", "seconds"}
    assert BatchRecord.from_json(batch.payload).to_json() == batch.payload


def test_a_batch_record_of_objects_keeps_objects_requests_and_locks_together():
    objects = {"dataset": "chat_photos", "low": "a", "high": "b", "rows": 3, "seconds": 0.1}
    objects.update(objects=2, requests=4, locked=[{"retain_until": "2099-01-01T00:00:00+00:00"}])
    assert BatchRecord.from_json(objects).to_json() == objects


# -------------------------------------------------------------------- S3


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_expired_objects_lose_every_version_and_locked_ones_are_reported(
    locked_s3_store, s3_endpoint, tmp_path, engine, connect
):
    store: S3Store = locked_s3_store
    put = store.client.put_object
    for user in (1, 2, HELD_SUBJECT):
        put(Bucket=store.bucket, Key=f"chats/{user}/a.jpg", Body=b"v1")
        put(Bucket=store.bucket, Key=f"chats/{user}/a.jpg", Body=b"v2")
    store.client.delete_object(Bucket=store.bucket, Key="chats/2/a.jpg")  # a delete marker
    put(
        Bucket=store.bucket,
        Key="chats/5/locked.jpg",
        Body=b"x",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=datetime(2099, 1, 1, tzinfo=UTC),
    )
    time.sleep(1.5)
    middle = datetime.now(UTC)
    time.sleep(1.5)
    put(Bucket=store.bucket, Key="chats/1/young.jpg", Body=b"y1")
    put(Bucket=store.bucket, Key="chats/1/young.jpg", Body=b"y2")

    files = copy.deepcopy(sample.FILES)
    files["catalog.yaml"]["datasets"] = {
        k: v for k, v in files["catalog.yaml"]["datasets"].items() if k in ("users", "chat_photos")
    }
    files["catalog.yaml"]["reports"] = {"path": str(tmp_path / "reports")}
    files["catalog.yaml"]["systems"]["media"]["bucket"] = store.bucket
    connect("media_s3", aws_connection(s3_endpoint))  # the task's path: the store opened by system name
    files["retention.yaml"] = {
        "rules": [{"name": "photos", "applies_to": {"datasets": ["chat_photos"]}, "keep": "400d"}],
        "max_fraction_per_run": 1.0,
    }
    for name in ("cancellation.yaml", "recipients.yaml"):
        files.pop(name)
    config = load_config(sample.write(tmp_path / "config", files))
    state = StateStore(engine, dataset_names={"users", "chat_photos"})
    state.holds.add(str(HELD_SUBJECT), reason="litigation", today=middle.date())
    retention = Retention(config, state)
    as_of = middle + timedelta(days=400)

    plan = retention.plan("scheduled__photos", as_of)
    photos = plan.dataset("chat_photos")
    assert (photos.total, photos.candidates, photos.held, photos.to_delete) == (5, 4, 1, 3)
    [unit] = retention.gate(plan)[unit_group("media", 0)]
    result = retention.apply(unit, "scheduled__photos", as_of)
    assert result == {
        "dataset": "chat_photos",
        "action": "delete",
        "rows": 5,
        "objects": 2,
        "locked": 1,
        "batches": 1,
        "resumed": 0,
    }

    left = {(v.key, v.is_delete_marker) for v in store.list_versions("chats/")}
    assert left == {(f"chats/{HELD_SUBJECT}/a.jpg", False), ("chats/5/locked.jpg", False), ("chats/1/young.jpg", False)}
    assert len([v for v in store.list_versions("chats/1/young.jpg")]) == 2, "young objects keep every version"
    assert retention.verify(plan)["chat_photos"] == {"remaining": 0, "held": 1, "locked": 1}
    document = json.loads(open(retention.report(plan.run_id, as_of=as_of)["json"]).read())
    [row] = document["datasets"]
    assert (row["deleted"], row["versions_deleted"], row["locked"], row["locked_until"]) == (
        2,
        5,
        1,
        ["2099-01-01T00:00:00+00:00"],
    )
