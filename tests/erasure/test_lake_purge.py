"""Cancellation erasure reaching lake copies: an Iceberg table on moto S3 (linked to the
subject) and a Delta table on a local path (linked through SQL orders, two hops).  A batch is
certified only when its purges are done and storage, read again by a pyarrow oracle here,
holds none of its people."""

from __future__ import annotations

from datetime import timedelta

import pyarrow.fs as pafs
import pytest
import sqlalchemy as sa
from deltalake import write_deltalake
from pyiceberg.catalog.sql import SqlCatalog

from lifecycle import deadlines
from lifecycle.config import load_config
from lifecycle.erasure import Erasure
from lifecycle.errors import LifecycleError
from lifecycle.state import StateStore
from lifecycle.state.ledger import Ledger
from tests.config import sample
from tests.stores import lake_world as world

DUE, PENDING = (1, 2), 3  # people 1 and 2 are past their grace period; 3 is not


def _catalog(tmp_path, bucket: str, ice_after: str, delta_after: str) -> dict:
    usage = {"category": "usage"}
    return {
        "systems": {
            "app": {"type": "sql", "conn_id": "lake_app"},
            "state": {"type": "sql", "conn_id": "lifecycle_state"},
            "ice": {
                "type": "iceberg",
                "conn_id": "lake_s3",
                "catalog": {"path": str(tmp_path / "catalog.db")},
                "warehouse": f"s3://{bucket}/warehouse",
                "purge_after": ice_after,
            },
            "dl": {"type": "delta", "location": str(tmp_path / "delta"), "purge_after": delta_after},
        },
        "purposes": sample.CATALOG["purposes"],
        "categories": {c: {"purposes": ["account"]} for c in ("contact", "usage", "account_records")},
        "subject": {"dataset": "users", "key": "id", "contact": {"email": "email"}},
        "reports": {"path": str(tmp_path / "reports")},
        "datasets": {
            "users": {
                "system": "app",
                "table": "users",
                "primary_key": "id",
                "fields": {"email": {"category": "contact"}},
            },
            "orders": {
                "system": "app",
                "table": "orders",
                "primary_key": "id",
                "subject": "user_id -> users.id",
                **usage,
            },
            "consents": {
                "system": "app",
                "table": "consents",
                "primary_key": "id",
                "subject": "user_id -> users.id",
                **usage,
            },
            "account_cancellations": {
                "system": "app",
                "table": "account_cancellations",
                "primary_key": "id",
                "subject": "user_id -> users.id",
                "created": "requested_at",
                "category": "account_records",
                "fields": {"withdrawn_at": {}},
            },
            "events": {
                "system": "ice",
                "table": "analytics.events",
                "primary_key": "id",
                "subject": "user_id -> users.id",
                "created": "ts",
                "category": "usage",
                "fields": {"email": {"category": "contact"}, "ip": {}, "path": {"personal": False}},
            },
            "order_events": {
                "system": "dl",
                "table": "order_events",
                "primary_key": "id",
                "subject": "order_id -> orders.id",
                "created": "ts",
                "category": "usage",
                "fields": {"note": {}},
            },
        },
    }


@pytest.fixture
def lake(tmp_path, connect, s3_endpoint, monkeypatch):
    """``make(ice_after, delta_after)``: (erasure, state, the run's time, filesystems to read storage with)."""
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", "lake-erasure-test-hmac-key-012345")
    bucket = world.connect_world(connect, tmp_path, s3_endpoint)
    as_of = world.wall_now()  # purges judge files by when they were written
    app = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")  # made by connect_world
    meta = sa.MetaData()
    cancellations = sa.Table(
        "account_cancellations",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer),
        sa.Column("requested_at", sa.DateTime),
        sa.Column("withdrawn_at", sa.DateTime),
    )
    meta.create_all(app)
    naive = as_of.replace(tzinfo=None)
    with app.begin() as conn:
        conn.execute(
            cancellations.insert(),
            [{"id": u, "user_id": u, "requested_at": naive - timedelta(days=20)} for u in DUE]
            + [{"id": PENDING, "user_id": PENDING, "requested_at": naive - timedelta(days=1)}],
        )
    app.dispose()
    s3 = {
        "s3.endpoint": s3_endpoint,
        "s3.access-key-id": "testing",
        "s3.secret-access-key": "testing",
        "s3.region": "us-east-1",
    }
    other = SqlCatalog(
        "lifecycle", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"s3://{bucket}/warehouse", **s3
    )
    other.create_namespace("analytics")
    other.create_table("analytics.events", schema=world.EVENT_SCHEMA).append(world.events())
    delta = tmp_path / "delta" / "order_events"
    for part in range(3):  # three commits, three files
        write_deltalake(str(delta), world.order_events().slice(part * 20, 20), mode="append")
    s3fs = pafs.S3FileSystem(
        access_key="testing", secret_key="testing", endpoint_override=s3_endpoint, scheme="http", region="us-east-1"
    )
    storage = {"events": (s3fs, f"{bucket}/warehouse"), "order_events": (pafs.LocalFileSystem(), str(delta))}
    engines = []

    def make(ice_after: str, delta_after: str, state_engine: sa.Engine | None = None):
        files = {
            "catalog.yaml": _catalog(tmp_path, bucket, ice_after, delta_after),
            "cancellation.yaml": {
                "requests": {
                    "dataset": "account_cancellations",
                    "subject": "user_id",
                    "requested_at": "requested_at",
                    "withdrawn_at": "withdrawn_at",
                },
                "grace_period": "15d",
                "complete_within": "30d",
                "batch_size": 10,
            },
        }
        config = load_config(sample.write(tmp_path / "config", files))
        if state_engine is None:
            engines.append(state_engine := sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}"))
        state = StateStore(state_engine, dataset_names=set(config.catalog.datasets))
        return Erasure(config, state), state, as_of, storage

    yield make
    for engine in engines:
        engine.dispose()


def _left(storage) -> dict[str, int]:
    """The due people's rows in every Parquet file under each table, read by pyarrow alone."""
    orders = [n for n in range(1, world.ORDERS + 1) if world.owner_of_order(n) in DUE]
    (ice_fs, ice_root), (delta_fs, delta_root) = storage["events"], storage["order_events"]
    return {
        "events": world.oracle(ice_fs, ice_root, "user_id", list(DUE))[0],
        "order_events": world.oracle(delta_fs, delta_root, "order_id", orders)[0],
    }


def _entries(state, kind: str) -> list:
    return list(Ledger(state.engine).entries(kind=kind))


def _erase(erasure, as_of, run_id):
    batches = erasure.intake(run_id, as_of).batches
    return [erasure.erase(b, as_of, run_id=run_id) for b in batches]


def _certificate(erasure, record) -> dict:
    """The person's certificate leaf, as it is rendered on demand from the batch's signed root."""
    subject = record.certificate.partition("#")[2]
    return erasure.certificates.person(record.batch, subject)["leaf"]


def test_purge_after_0_purges_and_certifies_in_the_same_run(lake):
    erasure, state, as_of, storage = lake("0", "0")
    assert _left(storage) == {"events": 40, "order_events": 12}
    (result,) = _erase(erasure, as_of, "run-1")
    assert (result.subjects, result.certificates) == (2, 2)
    assert _left(storage) == {"events": 0, "order_events": 0}
    purged = {e.payload["dataset"]: e.payload for e in _entries(state, "erasure.purged")}
    assert set(purged) == {"events", "order_events"}
    for dataset, counts in purged.items():
        assert counts["files_removed"] > 0 and counts["bytes_freed"] > 0, dataset
        assert counts["files_read"] > 0 and counts["bytes_read"] > 0, dataset
    assert purged["events"]["snapshots_expired"] >= 1
    done = state.erasures.in_states("done")
    assert sorted(r.subject_id for r in done) == ["1", "2"]
    cert = _certificate(erasure, done[0])
    lake_rows = {d["dataset"]: d for d in cert["datasets"] if "purge" in d}
    assert set(lake_rows) == {"events", "order_events"}
    assert lake_rows["order_events"]["purge"]["state"] == "purged"
    assert lake_rows["order_events"]["purge"]["files_read"] == purged["order_events"]["files_read"]


def test_purge_after_7d_leaves_the_batch_pending_until_a_later_run(lake, engine):
    """The state store on each backend (SQLite, PostgreSQL, MariaDB)."""
    erasure, state, as_of, storage = lake("7d", "0", engine)
    (result,) = _erase(erasure, as_of, "run-1")
    assert (result.subjects, result.certificates) == (2, 0)
    purging = state.erasures.in_states("purging")
    due = (as_of + timedelta(days=7)).date().isoformat()
    assert sorted(r.subject_id for r in purging) == ["1", "2"]
    assert {r.reason for r in purging} == {f"pending purge until {due}"}
    assert _left(storage) == {"events": 40, "order_events": 0}  # the Delta copy went at once
    assert erasure.purge(as_of + timedelta(days=6), run_id="run-2") == {
        "batches": 1,
        "certified": 0,
        "pending_purge": 2,
    }
    assert erasure.overdue(as_of + timedelta(days=6)) == []
    late = erasure.overdue(as_of + timedelta(days=11))  # requested 20 days before, complete_within 30d
    assert len(late) == 2 and {r["state"] for r in late} == {"purging"}
    report = deadlines.check(erasure.config, state, as_of + timedelta(days=11))
    assert len(report.found("erasure_requests", "past")) == 2  # the lifecycle_deadlines check counts them

    later = as_of + timedelta(days=8)
    assert erasure.purge(later, run_id="run-3") == {"batches": 1, "certified": 2, "pending_purge": 0}
    assert _left(storage) == {"events": 0, "order_events": 0}
    done = state.erasures.in_states("done")
    assert sorted(r.subject_id for r in done) == ["1", "2"]
    cert = _certificate(erasure, done[0])
    purges = {d["dataset"]: d["purge"] for d in cert["datasets"] if "purge" in d}
    assert {p["state"] for p in purges.values()} == {"purged"}
    assert cert["completed_at"] == purges["events"]["purged_at"]  # complete once the last copy went
    assert erasure.purge(later, run_id="run-4") == {"batches": 0, "certified": 0, "pending_purge": 0}


def test_a_kill_between_purge_and_certificate_is_finished_by_the_rerun(lake, monkeypatch):
    erasure, state, as_of, storage = lake("7d", "0")  # delta-rs judges a vacuum by the wall clock
    _erase(erasure, as_of, "run-1")
    from lifecycle.erasure.certificates import Certificates

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    later = as_of + timedelta(days=8)
    with monkeypatch.context() as patch:
        patch.setattr(Certificates, "issue", killed)
        with pytest.raises(KeyboardInterrupt):
            erasure.purge(later, run_id="run-2")
    assert len(_entries(state, "erasure.purged")) == 2  # the Iceberg purge recorded, then the kill
    assert state.erasures.in_states("done") == []
    again = Erasure(erasure.config, state).purge(later, run_id="run-2")
    assert again["certified"] == 2
    assert len(_entries(state, "erasure.purged")) == 2  # each purge recorded once
    assert _left(storage)["events"] == 0


def test_storage_still_holding_people_fails_the_purge_naming_the_dataset(lake):
    erasure, state, as_of, storage = lake("0", "0")
    with pytest.raises(LifecycleError, match="events: 40 row"):
        # Iceberg's purge judges files by the run's time: one before the writes removes nothing
        _erase(erasure, as_of - timedelta(hours=1), "run-1")
    assert state.erasures.in_states("done") == []
    assert sorted(r.subject_id for r in state.erasures.in_states("erasing")) == ["1", "2"]  # a rerun retries
