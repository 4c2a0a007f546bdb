"""The Delta adapter on moto S3 and on a local folder: every verb, commits against another
writer, vacuum as the purge and verification read from the files (against a pyarrow oracle)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

import pytest
from deltalake import DeltaTable, write_deltalake

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
from lifecycle.stores.lake.delta import DeltaStore
from tests.stores import lake_world as world
from tests.stores.lake_world import KEY, NOW


@pytest.fixture(params=["s3", "local"])
def lake(request, connect, tmp_path):
    """(stores, the tables' root URI, storage options another writer uses)."""
    on_s3 = request.param == "s3"
    endpoint = request.getfixturevalue("s3_endpoint") if on_s3 else None
    bucket = world.connect_world(connect, tmp_path, endpoint)
    if on_s3:
        root = f"s3://{bucket}/delta"
        system = {"type": "delta", "conn_id": "lake_s3", "location": root, "purge_after": "0"}
        options = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
    else:
        root = str(tmp_path / "delta")
        system = {"type": "delta", "location": root, "purge_after": 0}
        options = {}
    events = world.events()
    for part in range(4):  # four commits, four files: people spread over all of them
        write_deltalake(f"{root}/events", events.slice(part * 50, 50), mode="append", storage_options=options)
    write_deltalake(f"{root}/order_events", world.order_events(), storage_options=options)
    stores = world.stores(world.catalog(system, "events", "order_events"))
    return stores, root, options


def _fields(stores, dataset, *columns):
    return [f for f in stores.catalog.personal_fields(dataset) if f.column in columns]


def test_the_registry_opens_a_delta_store_with_every_ability(lake):
    store = lake[0].of("events")
    assert isinstance(store, DeltaStore)
    assert all(isinstance(store, ability) for ability in (Rows, Purging, StorageVerification, Describing))


def test_counts_units_and_remaining(lake):
    stores, _, _ = lake
    store = stores.of("events")
    assert store.count("events") == world.EVENTS
    assert store.count_by_subject("events", Selection(subjects=("1", "2"))) == {"1": 20, "2": 20}
    old = Selection(older_than=NOW - timedelta(hours=100), exclude_subjects=("3",))
    assert store.count("events", old) == 99 - 10
    units = store.units("events", Selection(older_than=NOW - timedelta(hours=100)), 50)
    assert [(u.low, u.high, u.rows) for u in units] == [(101, 150, 50), (151, 199, 49)]
    assert store.remaining("events", Selection(subjects=("4",))).by_subject == {"4": 20}
    order_events = stores.of("order_events")
    assert order_events.count("order_events", Selection(subjects=("1",))) == 6  # two hops, through SQL


def test_delete_rewrites_only_files_holding_the_people(lake):
    stores, root, options = lake
    files = set(DeltaTable(f"{root}/events", storage_options=options).file_uris())
    heard = []
    # person 1's events are 0, 10, .. 190: in every file; the rows of ids < 50 only in the first
    change = stores.of("events").delete(
        "events", Selection(subjects=("1",), keys=tuple(range(50))), before_commit=lambda c, k: heard.append(c)
    )
    assert change.rows == 5 and heard == [{"1": 5}]
    after = set(DeltaTable(f"{root}/events", storage_options=options).file_uris())
    assert len(files - after) == 1 and len(after - files) == 1
    assert stores.of("events").count("events") == world.EVENTS - 5


def test_anonymize_in_one_commit_and_through_two_hops(lake):
    stores, root, options = lake
    version = DeltaTable(f"{root}/events", storage_options=options).version()
    store = stores.of("events")
    assert store.anonymize("events", Selection(subjects=("2",)), _fields(stores, "events", "email", "ip")).rows == 20
    assert DeltaTable(f"{root}/events", storage_options=options).version() == version + 1
    rows = store.read("events", ["email", "ip", "path"], Selection(subjects=("2",)))
    assert {(r[0], r[1]) for r in rows} == {("[redacted]", "10.0.2.0")} and len(rows) == 20
    assert store.count("events") == world.EVENTS
    assert store.count("events", Selection(subjects=("2",), pending_anonymization=("email",))) == 0
    order_events = stores.of("order_events")
    fields = _fields(stores, "order_events", "note")
    order_events.anonymize("order_events", Selection(subjects=("1",)), fields, hmac_key=KEY, unlink=True)
    assert order_events.read("order_events", ["order_id", "note"], Selection(keys=("oe-000",))) == [
        (None, hmac.new(KEY, b"note 0", hashlib.sha256).hexdigest())
    ]


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


def test_stream(lake):
    stores, _, _ = lake
    chunks = list(
        stores.of("events").stream("events", ["id", "ts"], selection=Selection(subjects=("7",)), fetch_rows=8)
    )
    assert [len(c) for c in chunks] == [8, 8, 4]
    assert chunks[0][0] == ["7", 6, (NOW - timedelta(hours=6)).isoformat()]


def test_a_writer_appending_during_the_delete_keeps_its_rows(lake):
    stores, root, options = lake

    def append(counts, keys):
        write_deltalake(f"{root}/events", world.newcomers(30), mode="append", storage_options=options)

    store = stores.of("events")
    retried, refresh = [], store._refresh
    store._refresh = lambda dataset: (retried.append(dataset), refresh(dataset))
    assert store.delete("events", Selection(subjects=("1",)), before_commit=append).rows == 20
    assert retried == ["events"]  # the first commit lost the race and was applied again on the new snapshot
    rows = DeltaTable(f"{root}/events", storage_options=options).to_pyarrow_table(columns=["id", "user_id"])
    assert rows.num_rows == world.EVENTS - 20 + 30
    assert sorted(i for i, u in zip(rows["id"].to_pylist(), rows["user_id"].to_pylist()) if u == 1) == [
        1000,
        1010,
        1020,
    ]
    assert -1 in rows["id"].to_pylist()


def test_a_commit_losing_every_race_is_transient(lake):
    stores, root, options = lake
    store = stores.of("events")
    store.commit_attempts = 1

    def append(counts, keys):
        write_deltalake(f"{root}/events", world.newcomers(5), mode="append", storage_options=options)

    with pytest.raises(TransientStoreError, match="another writer committed first"):
        store.delete("events", Selection(subjects=("1",)), before_commit=append)
    assert store.count("events", Selection(subjects=("1",))) == 21  # nothing deleted; the append stays


def test_vacuum_purges_and_storage_verification_reads_every_file(lake):
    stores, _, _ = lake
    store = stores.of("events")
    deleted_at = world.wall_now() - timedelta(seconds=2)
    store.delete("events", Selection(subjects=("1", "2")))
    fs, root = store.storage.filesystem(), store.storage.path(store.location("events"))
    assert world.oracle(fs, root, "user_id", [1, 2])[0] == 40
    assert store.stored("events", ("1", "2")).by_subject == {"1": 20, "2": 20}
    purge = store.purge("events", deleted_at=deleted_at, at=world.wall_now())
    assert purge.done and purge.files_removed == 4 and purge.bytes_freed > 0
    rows, files = world.oracle(fs, root, "user_id", [1, 2])
    seen = store.stored("events", ("1", "2"))
    assert (seen.rows, rows) == (0, 0) and seen.files == files == 1 and seen.bytes > 0
    assert store.count("events") == world.EVENTS - 40
    assert store.purge("events", deleted_at=deleted_at, at=world.wall_now()).files_removed == 0


def test_purge_waits_for_purge_after(lake):
    stores, _, _ = lake
    spec = stores.catalog.systems["lake"].model_copy(update={"purge_after": Duration.parse("7d")})
    purge = DeltaStore(stores.catalog, "lake", spec).purge("events", deleted_at=NOW, at=NOW + timedelta(days=6))
    assert not purge.done and purge.files_removed == 0


@pytest.mark.parametrize("years", [3, -3])
def test_a_purge_honours_the_run_logical_date_ahead_of_or_behind_the_wall_clock(lake, years):
    """delta-rs's vacuum compares with the wall clock; the run's dates are years away from it."""
    stores, _, _ = lake
    spec = stores.catalog.systems["lake"].model_copy(update={"purge_after": Duration.parse("7d")})
    store = DeltaStore(stores.catalog, "lake", spec)
    deleted_at = world.wall_now() + timedelta(days=365 * years)
    store.delete("events", Selection(subjects=("1", "2")))
    committed_by = world.wall_now()  # the ledger's done record, written after the commit
    early = store.purge("events", deleted_at=deleted_at, at=deleted_at + timedelta(days=6), committed_by=committed_by)
    assert not early.done
    purge = store.purge("events", deleted_at=deleted_at, at=deleted_at + timedelta(days=7), committed_by=committed_by)
    assert purge.done and purge.files_removed == 4
    fs, root = store.storage.filesystem(), store.storage.path(store.location("events"))
    assert world.oracle(fs, root, "user_id", [1, 2])[0] == 0
    assert store.count("events") == world.EVENTS - 40


def test_day_partitions_of_a_date_column_go_in_one_commit_without_rewriting_a_file(lake):
    import pyarrow as pa
    import pyarrow.compute as pc

    from lifecycle.catalog import Catalog
    from lifecycle.catalog.models import CatalogFile

    stores, root, options = lake
    events = world.events()
    daily = events.append_column("day", pc.cast(events["ts"], pa.date32()))
    write_deltalake(f"{root}/daily", daily, partition_by=["day"], storage_options=options)
    data = world.catalog_data(stores.catalog.systems["lake"].model_dump(mode="json"), "daily", "order_events")
    data["datasets"]["events"]["created"] = "day"
    store = world.stores(Catalog(CatalogFile.model_validate(data))).of("events")
    assert isinstance(store, Partitions) and isinstance(store, PartitionBatches)
    parts = store.partitions("events")
    assert [p.name for p in parts][:2] == ["day=2026-05-24", "day=2026-05-25"] and len(parts) == 9
    assert (parts[0].low, parts[0].high) == (datetime(2026, 5, 24), datetime(2026, 5, 25))
    assert store.partition_rows("events", parts[-1]) == 13
    assert store.partition_keeps("events", parts[0], Selection(exclude_subjects=("9",))) == "rows of held subjects"

    def live() -> tuple[int, set[str]]:
        table = DeltaTable(f"{root}/daily", storage_options=options)
        return table.version(), set(pa.table(table.get_add_actions()).column("path").to_pylist())

    version, files = live()
    store.drop_partitions("events", [parts[2].name, parts[0].name])  # two days apart: two ranges, one commit
    after, left = live()
    gone = {f for f in files if f.startswith(("day=2026-05-24/", "day=2026-05-26/"))}
    assert after == version + 1 and len(gone) == 2 and left == files - gone  # no file written
    assert [store.partition_state("events", p.name) for p in parts[:3]] == ["gone", "attached", "gone"]
    assert store.count("events") == world.EVENTS - 19 - 24
    store.drop_partitions("events", [parts[0].name])  # finished already: nothing to do
    assert store.count("events") == world.EVENTS - 43


def test_an_unpartitioned_delta_table_has_no_partitions(lake):
    assert lake[0].of("events").partitions("events") == []


def test_describe_and_a_missing_table(lake):
    from lifecycle.scan import scan_report

    stores, _, _ = lake
    described = stores.of("events").describe("events")
    assert described["email"]["type"].__class__.__name__ == "Text"
    catalog = world.catalog(stores.catalog.systems["lake"].model_dump(mode="json"), "events", "gone")
    findings = [str(f) for f in scan_report(catalog).findings if f.system == "lake"]
    assert findings == ["lake: gone: dataset 'order_events' names a table that does not exist"]
