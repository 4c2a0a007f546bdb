"""The Iceberg adapter on moto S3 with a SQLite catalog: every verb, commits against another
writer, purge and verification read from the files (against a pyarrow oracle)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.transforms import DayTransform
from pyiceberg.types import StringType

from lifecycle.durations import Duration
from lifecycle.errors import TransientStoreError
from lifecycle.stores.contract import (
    Describing,
    PartitionBatches,
    Partitions,
    Purging,
    Rows,
    Selection,
    StorageVerification,
)
from lifecycle.stores.lake.iceberg import IcebergStore
from tests.stores import lake_world as world
from tests.stores.lake_world import KEY, NOW
from tests.support.s3 import aws_connection


@pytest.fixture
def lake(connect, tmp_path, s3_endpoint):
    """(stores, the pyiceberg catalog as another writer sees it, the bucket)."""
    bucket = world.connect_world(connect, tmp_path, s3_endpoint)
    system = {
        "type": "iceberg",
        "conn_id": "lake_s3",
        "catalog": {"path": str(tmp_path / "catalog.db")},
        "warehouse": f"s3://{bucket}/warehouse",
        "purge_after": "0",
    }
    other = SqlCatalog(
        "lifecycle",
        uri=f"sqlite:///{tmp_path / 'catalog.db'}",
        warehouse=f"s3://{bucket}/warehouse",
        **{
            "s3.endpoint": s3_endpoint,
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing",
            "s3.region": "us-east-1",
        },
    )
    other.create_namespace("analytics")
    events = other.create_table("analytics.events", schema=world.EVENT_SCHEMA)
    with events.update_spec() as spec:
        spec.add_field("ts", DayTransform(), "ts_day")
    events.append(world.events())
    other.create_table("analytics.order_events", schema=world.ORDER_EVENT_SCHEMA).append(world.order_events())
    stores = world.stores(world.catalog(system, "analytics.events", "analytics.order_events"))
    return stores, other, bucket


def _fields(stores, dataset, *columns):
    return [f for f in stores.catalog.personal_fields(dataset) if f.column in columns]


def test_the_registry_opens_an_iceberg_store_with_every_ability(lake):
    stores, _, _ = lake
    store = stores.of("events")
    assert isinstance(store, IcebergStore)
    assert all(isinstance(store, ability) for ability in (Rows, Purging, StorageVerification, Describing))


def test_counts_units_and_remaining_follow_subjects_age_and_holds(lake):
    stores, _, _ = lake
    store = stores.of("events")
    assert store.count("events") == world.EVENTS
    assert store.count("events", Selection(subjects=("1", "2"))) == 40
    assert store.count_by_subject("events", Selection(subjects=("1", "2"))) == {"1": 20, "2": 20}
    old = Selection(older_than=NOW - timedelta(hours=100))  # events 101..199 are older
    assert store.count("events", old) == 99
    held = Selection(older_than=NOW - timedelta(hours=100), exclude_subjects=("3",))
    assert store.count("events", held) == 99 - 10
    units = store.units("events", old, 40)
    assert [(u.low, u.high, u.rows) for u in units] == [(101, 140, 40), (141, 180, 40), (181, 199, 19)]
    assert store.count("events", Selection(within=units[1])) == 40
    left = store.remaining("events", Selection(subjects=("4",)))
    assert (left.items, left.by_subject) == (20, {"4": 20})


def test_two_hops_resolve_people_through_the_sql_store(lake):
    stores, _, _ = lake
    store = stores.of("order_events")
    counts = store.count_by_subject("order_events")
    assert sum(counts.values()) == 60 and counts["1"] == 6  # orders 1 and 11, three events each
    assert store.count("order_events", Selection(subjects=("1",))) == 6


def test_delete_rewrites_only_the_files_holding_the_people(lake):
    stores, other, _ = lake
    table = other.load_table("analytics.events")
    before = {f: set(ids) for f, ids in _live_users(table).items()}
    holding = {f for f, users in before.items() if 5 in users}
    heard = []
    change = stores.of("events").delete(
        "events", Selection(subjects=("5",)), before_commit=lambda counts, keys: heard.append(counts)
    )
    assert change.rows == 20 and heard == [{"5": 20}]
    table.refresh()
    after = _live_users(table)
    assert set(before) - set(after) == holding  # the files without person 5 are the same files
    assert all(5 not in users for users in after.values())
    assert table.scan().to_arrow().num_rows == world.EVENTS - 20


def _live_users(table) -> dict[str, list]:
    out = {}
    for task in table.scan().plan_files():
        out[task.file.file_path] = []
    for path in out:
        with table.io.new_input(path).open() as handle:
            import pyarrow.parquet as pq

            out[path] = pq.read_table(handle, columns=["user_id"])["user_id"].to_pylist()
    return out


def test_anonymize_rewrites_the_fields_in_one_commit(lake):
    stores, other, _ = lake
    table = other.load_table("analytics.events")
    commits = len(table.metadata.metadata_log)
    store = stores.of("events")
    change = store.anonymize("events", Selection(subjects=("2",)), _fields(stores, "events", "email", "ip"))
    assert change.rows == 20
    table.refresh()
    assert len(table.metadata.metadata_log) == commits + 1
    rows = store.read("events", ["user_id", "email", "ip", "path"], Selection(subjects=("2",)))
    assert {(r[1], r[2]) for r in rows} == {("[redacted]", "10.0.2.0")}
    assert {r[3] for r in rows} == {f"/page/{n % 7}" for n in range(1, world.EVENTS, 10)}
    assert store.count("events") == world.EVENTS
    others = store.read("events", ["email"], Selection(subjects=("3",)))
    assert {r[0] for r in others} == {"user3@example.com"}
    pending = Selection(subjects=("2", "3"), pending_anonymization=("email",))
    assert store.count_by_subject("events", pending) == {"3": 20}


def test_anonymize_with_a_key_and_unlink_through_two_hops(lake):
    import hashlib
    import hmac

    stores, _, _ = lake
    store = stores.of("order_events")
    change = store.anonymize(
        "order_events", Selection(subjects=("1",)), _fields(stores, "order_events", "note"), hmac_key=KEY, unlink=True
    )
    assert change.rows == 6
    rows = store.read("order_events", ["id", "order_id", "note"], Selection(keys=("oe-000",)))
    assert rows == [("oe-000", None, hmac.new(KEY, b"note 0", hashlib.sha256).hexdigest())]
    assert store.count("order_events", Selection(subjects=("1",))) == 0


def test_delete_by_age_keeps_held_people(lake):
    stores = lake[0]
    store = stores.of("events")
    expired = Selection(older_than=NOW - timedelta(hours=100), exclude_subjects=("3",))
    assert store.delete("events", expired).rows == 89
    assert store.count("events") == world.EVENTS - 89
    assert store.count("events", Selection(older_than=NOW - timedelta(hours=100))) == 10
    assert store.count_by_subject("events", Selection(older_than=NOW - timedelta(hours=100))) == {"3": 10}
    window = Selection(created_within=(NOW - timedelta(hours=20), NOW - timedelta(hours=10)), subjects=("1", "2"))
    assert store.delete("events", window).rows == 3  # events 10, 11 and 20: both bounds are inside


def test_day_partitions_are_dropped_whole_without_rewriting_a_file(lake):
    stores, other, _ = lake
    store = stores.of("events")
    assert isinstance(store, Partitions)
    parts = store.partitions("events")
    assert [p.name for p in parts][:2] == ["ts_day=2026-05-24", "ts_day=2026-05-25"] and len(parts) == 9
    newest = parts[-1]
    assert (newest.low, newest.high) == (datetime(2026, 6, 1), datetime(2026, 6, 2))
    assert store.partition_rows("events", newest) == 13  # events 0..12 (noon and the twelve hours before)
    oldest = parts[0]  # events 181..199: every person's
    assert store.partition_keeps("events", oldest, Selection(exclude_subjects=("9",))) == "rows of held subjects"
    assert store.partition_keeps("events", oldest, Selection(exclude_subjects=("11",))) is None
    store.drop_partition("events", oldest.name)
    assert store.partition_state("events", oldest.name) == "gone"
    assert store.count("events") == world.EVENTS - 19
    summary = other.load_table("analytics.events").current_snapshot().summary.additional_properties
    assert summary.get("added-data-files", "0") == "0" and summary["deleted-data-files"] == "1"
    store.drop_partition("events", oldest.name)  # finished already: nothing to do


def test_several_partitions_go_in_one_commit_without_rewriting_a_file(lake):
    stores, other, _ = lake
    store = stores.of("events")
    assert isinstance(store, PartitionBatches)
    oldest = [p.name for p in store.partitions("events")][:3]  # 2026-05-24 .. 26: events 133..199
    before = len(other.load_table("analytics.events").snapshots())
    store.drop_partitions("events", [oldest[2], oldest[0], oldest[1]])
    table = other.load_table("analytics.events")
    assert len(table.snapshots()) == before + 1
    summary = table.current_snapshot().summary.additional_properties
    assert summary.get("added-data-files", "0") == "0" and summary["deleted-data-files"] == "3"
    assert [store.partition_state("events", name) for name in oldest] == ["gone"] * 3
    assert store.count("events") == world.EVENTS - 67
    store.drop_partitions("events", oldest)  # finished already: nothing to do
    assert store.count("events") == world.EVENTS - 67


def test_stream_gives_subjects_beside_json_ready_values(lake):
    stores, _, _ = lake
    chunks = list(
        stores.of("events").stream("events", ["id", "ts"], selection=Selection(subjects=("7",)), fetch_rows=8)
    )
    assert [len(c) for c in chunks] == [8, 8, 4]
    first = chunks[0][0]
    assert first == ["7", 6, (NOW - timedelta(hours=6)).isoformat()]


def test_stream_keeps_to_people_whose_consent_is_in_force(lake):
    stores, _, _ = lake
    chunks = stores.of("events").stream("events", ["id"], consent=("consents", "analytics", NOW))
    assert {row[0] for chunk in chunks for row in chunk} == {"1"}
    before = stores.of("events").stream("events", ["id"], consent=("consents", "analytics", NOW - timedelta(days=2)))
    assert {row[0] for chunk in before for row in chunk} == {"1", "2"}


@pytest.mark.parametrize("pyiceberg_retries", ["0", "4"], ids=["the store retries", "pyiceberg rebases"])
def test_a_writer_appending_during_the_delete_keeps_its_rows(lake, pyiceberg_retries):
    """The other writer commits between the lifecycle's read and its commit: the delete is
    applied again on the new snapshot (by the store, or by pyiceberg's own retry, which keeps
    the files it planned), and the appended rows (of the same person too) stay."""
    stores, other, _ = lake
    writer = other.load_table("analytics.events")
    with writer.transaction() as tx:
        tx.set_properties({"commit.retry.num-retries": pyiceberg_retries})

    def append(counts, keys):
        writer.refresh()
        writer.append(world.events(first=1000, count=30))  # people 1..10, ids 1000..1029

    store = stores.of("events")
    retried, refresh = [], store._refresh
    store._refresh = lambda dataset: (retried.append(dataset), refresh(dataset))
    assert store.delete("events", Selection(subjects=("1",)), before_commit=append).rows == 20
    if pyiceberg_retries == "0":
        assert retried == ["events"]  # the first commit lost the race and was applied again on the new snapshot
    rows = other.load_table("analytics.events").scan().to_arrow()
    assert rows.num_rows == world.EVENTS - 20 + 30
    owned = sorted(i for i, u in zip(rows["id"].to_pylist(), rows["user_id"].to_pylist()) if u == 1)
    assert owned == [1000, 1010, 1020]


def test_a_commit_losing_every_race_is_transient(lake):
    stores, other, _ = lake
    writer = other.load_table("analytics.events")
    with writer.transaction() as tx:
        tx.set_properties({"commit.retry.num-retries": "0"})
    store = stores.of("events")
    store.commit_attempts = 1

    def append(counts, keys):
        writer.refresh()
        writer.append(world.events(first=2000, count=5))

    with pytest.raises(TransientStoreError, match="another writer committed first"):
        store.delete("events", Selection(subjects=("1",)), before_commit=append)
    assert store.count("events", Selection(subjects=("1",))) == 21  # nothing deleted; the append stays


def test_storage_out_of_reach_is_transient(lake, connect):
    stores, _, _ = lake
    connect("lake_s3", aws_connection("http://127.0.0.1:9"))  # nothing listens there
    with pytest.raises(TransientStoreError, match="system 'lake', dataset 'events': count rows"):
        IcebergStore(stores.catalog, "lake").count("events")


def test_purge_removes_what_the_delete_left_and_storage_verification_reads_it(lake):
    stores, other, bucket = lake
    store = stores.of("events")
    people = ("1", "2")
    deleted_at = world.wall_now() - timedelta(seconds=2)
    store.delete("events", Selection(subjects=people))
    fs, root = store.storage.filesystem(), store.storage.path(store.location("events"))
    left, _ = world.oracle(fs, root, "user_id", [1, 2])
    assert left == 40  # the old files still hold every deleted row
    seen = store.stored("events", people)
    assert (seen.rows, seen.by_subject) == (40, {"1": 20, "2": 20})

    purge = store.purge("events", deleted_at=deleted_at, at=world.wall_now())
    assert purge.done and purge.snapshots_expired == 1 and purge.files_removed > 0 and purge.bytes_freed > 0
    rows, files = world.oracle(fs, root, "user_id", [1, 2])
    after = store.stored("events", people)
    assert (after.rows, rows) == (0, 0)
    assert after.files == files == len(list(other.load_table("analytics.events").scan().plan_files()))
    assert after.bytes > 0
    assert store.count("events") == world.EVENTS - 40  # the live table is intact
    again = store.purge("events", deleted_at=deleted_at, at=world.wall_now())
    assert (again.snapshots_expired, again.files_removed) == (0, 0)


def test_a_purge_killed_after_its_expiry_is_finished_by_the_next(lake):
    stores, other, _ = lake
    store = stores.of("events")
    deleted_at = world.wall_now() - timedelta(seconds=2)
    store.delete("events", Selection(subjects=("6",)))
    table = other.load_table("analytics.events")
    old = [s.snapshot_id for s in table.snapshots() if s.snapshot_id != table.current_snapshot().snapshot_id]
    table.maintenance.expire_snapshots().by_ids(old).commit()  # the expiry committed, then the kill
    assert store.stored("events", ("6",)).rows == 20
    purge = store.purge("events", deleted_at=deleted_at, at=world.wall_now())
    assert (purge.snapshots_expired, purge.files_removed > 0) == (0, True)
    assert store.stored("events", ("6",)).rows == 0


def test_purge_waits_for_purge_after(lake):
    stores, _, _ = lake
    spec = stores.catalog.systems["lake"].model_copy(update={"purge_after": Duration.parse("7d")})
    store = IcebergStore(stores.catalog, "lake", spec)
    purge = store.purge("events", deleted_at=NOW, at=NOW + timedelta(days=6))
    assert (purge.done, purge.due) == (False, (NOW + timedelta(days=7)).replace(tzinfo=purge.due.tzinfo))


def test_describe_and_scan_find_unclassified_and_vanished_columns(lake):
    from lifecycle.scan import scan_report

    stores, other, _ = lake
    table = other.load_table("analytics.events")
    with table.update_schema() as update:
        update.add_column("device_id", StringType())
    described = stores.of("events").describe("events")
    assert set(described) >= {"id", "user_id", "ts", "email", "ip", "path", "device_id"}
    findings = [str(f) for f in scan_report(stores.catalog, stores=stores).findings if f.system == "lake"]
    assert any("device_id" in f and "not classified" in f for f in findings)
    with table.update_schema() as update:
        update.delete_column("ip")
    findings = [str(f) for f in scan_report(stores.catalog, stores=stores).findings if f.system == "lake"]
    assert any("ip" in f and "not in the table" in f for f in findings)


# ------------------------------------------------------------------ configuration

LAKE = {
    "type": "iceberg",
    "conn_id": "lake_s3",
    "catalog": {"path": "var/lake/catalog.db"},
    "warehouse": "s3://lake/wh",
}
EVENTS = {
    "system": "lake",
    "table": "analytics.events",
    "primary_key": "id",
    "subject": "user_id -> users.id",
    "created": "ts",
    "category": "access_records",
}


def _lake_files(system: dict) -> dict:
    import copy

    from tests.config import sample

    files = copy.deepcopy(sample.FILES)
    files["catalog.yaml"]["systems"]["lake"] = system
    files["catalog.yaml"]["datasets"]["lake_events"] = EVENTS
    return files


@pytest.mark.parametrize(
    "system,path,words",
    [
        ({**LAKE, "conn_id": None}, "systems.lake", "warehouse 's3://lake/wh' is on S3: name its aws connection"),
        ({**LAKE, "catalog": {"path": "x.db", "conn_id": "c"}}, "systems.lake.catalog", "either conn_id"),
        ({**LAKE, "purge_after": "soon"}, "systems.lake.purge_after", "is not a duration"),
        (
            {**LAKE, "purge_after": "60d"},
            "systems.lake.purge_after",
            "longer than cancellation.yaml complete_within (30d)",
        ),
        ({**LAKE, "bucket": "b"}, "systems.lake.bucket", "valid keys here: conn_id, purge_after, pool_slots"),
        ({"type": "delta", "location": "s3://lake/d"}, "systems.lake", "location 's3://lake/d' is on S3"),
        ({**LAKE, "type": "hive"}, "systems.lake", "'iceberg', 'delta'"),
    ],
    ids=[
        "s3 without connection",
        "two catalogs",
        "bad duration",
        "purge past the promise",
        "unknown key",
        "delta",
        "type",
    ],
)
def test_bad_lake_configuration_is_refused_naming_the_key(tmp_path, system, path, words):
    from lifecycle.config import load_config
    from lifecycle.errors import ConfigError
    from tests.config import sample

    with pytest.raises(ConfigError) as caught:
        load_config(sample.write(tmp_path, _lake_files(system)))
    found = [str(p) for p in caught.value.problems if p.file == "catalog.yaml" and p.path == path]
    assert any(words in p for p in found), [str(p) for p in caught.value.problems]


def test_a_lake_configuration_loads(tmp_path):
    from lifecycle.config import load_config
    from tests.config import sample

    config = load_config(sample.write(tmp_path, _lake_files({**LAKE, "purge_after": 0})))
    assert str(config.catalog.systems["lake"].purge_after) == "0"
    assert config.catalog.systems["lake"].catalog.name == "lifecycle"
