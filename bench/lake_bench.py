"""Erasure from a day-partitioned Iceberg table against a hand-written pyiceberg baseline, in one run
(see bench/README.md).

Two identical tables (a SQLite catalog, a local warehouse): N rows of P people over D days,
partitioned by day, one data file per day.  The lifecycle's store (``IcebergStore``: select the
people's keys, one ``delete`` commit by key, then ``purge`` with ``purge_after: 0``: snapshot expiry
and removal of the files nothing references) against pyiceberg's own
``delete(In("user_id", people))`` followed by ``expire_snapshots().older_than(now)`` on the copy
(which leaves the old files in place: the lifecycle does more).  Then retention: the oldest day
partitions dropped whole (``PartitionBatches.drop_partitions``, one commit) against one raw
``delete(LessThan("ts", cutoff))``.  Reported: both times, the ratio
raw / lifecycle, the data files rewritten against the files holding the people, the verification
read from storage, and the process's peak RSS.

    .venv/bin/python bench/lake_bench.py [--rows 1000000] [--people 100000] [--erase 1000] [--days 100]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "include")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import In
from pyiceberg.transforms import DayTransform

from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.stores.contract import Selection
from lifecycle.stores.lake.iceberg import IcebergStore

START = datetime(2026, 1, 1)
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("ip", pa.string()),
        ("path", pa.string()),
    ]
)


def events(rows: int, people: int, days: int, seed: int = 7) -> pa.Table:
    rng = random.Random(seed)
    users = [rng.randrange(1, people + 1) for _ in range(rows)]
    seconds = days * 86400
    return pa.table(
        {
            "id": pa.array(range(rows), type=pa.int64()),
            "user_id": pa.array(users, type=pa.int64()),
            "ts": pa.array(
                [START + timedelta(seconds=n * seconds // rows) for n in range(rows)], type=pa.timestamp("us")
            ),
            "ip": pa.array([f"10.{u % 250}.{u % 199}.{n % 250}" for n, u in enumerate(users)]),
            "path": pa.array([f"/p/{n % 97}" for n in range(rows)]),
        },
        schema=SCHEMA,
    )


def _catalog(folder: Path, lake: dict | None = None, table: str = "analytics.events") -> Catalog:
    lake = lake or {
        "type": "iceberg",
        "catalog": {"path": str(folder / "catalog.db")},
        "warehouse": str(folder / "wh"),
        "purge_after": 0,
    }
    return Catalog(
        CatalogFile.model_validate(
            {
                "systems": {"app": {"type": "sql", "conn_id": "unused"}, "lake": lake},
                "categories": {"usage": {}},
                "subject": {"dataset": "users", "key": "id"},
                "datasets": {
                    "users": {"system": "app", "table": "users", "primary_key": "id", "category": "usage"},
                    "events": {
                        "system": "lake",
                        "table": table,
                        "primary_key": "id",
                        "subject": "user_id -> users.id",
                        "created": "ts",
                        "category": "usage",
                        "fields": {"ip": {"anonymize": "truncate_ip"}, "path": {"personal": False}},
                    },
                },
            }
        )
    )


def _tables(folder: Path, data: pa.Table):
    catalog = SqlCatalog("lifecycle", uri=f"sqlite:///{folder / 'catalog.db'}", warehouse=(folder / "wh").as_uri())
    catalog.create_namespace("analytics")
    made = []
    for name in ("analytics.events", "analytics.events_raw"):
        table = catalog.create_table(name, schema=SCHEMA)
        with table.update_spec() as spec:
            spec.add_field("ts", DayTransform(), "ts_day")
        table.append(data)
        made.append(table)
    return made


def _holding(table, people: set[int]) -> int:
    """Data files of the live snapshot holding any of ``people`` (pyarrow alone)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found, wanted = 0, pa.array(sorted(people), type=pa.int64())
    for task in table.scan().plan_files():
        with table.io.new_input(task.file.file_path).open() as handle:
            column = pq.read_table(handle, columns=["user_id"])["user_id"]
        found += bool(pc.any(pc.is_in(column, value_set=wanted)).as_py())
    return found


def _retention(store: IcebergStore, raw_table, days: int) -> tuple[float, float, int]:
    """The oldest ``days`` day partitions: dropped whole in one commit by the store's
    ``PartitionBatches`` ability (what retention's apply does) against one raw pyiceberg delete
    below the cutoff."""
    from pyiceberg.expressions import LessThan

    expired = store.partitions("events")[:days]
    started = time.perf_counter()
    store.drop_partitions("events", [partition.name for partition in expired])
    dropped = time.perf_counter() - started
    started = time.perf_counter()
    raw_table.delete(LessThan("ts", expired[-1].high.isoformat()))
    return dropped, time.perf_counter() - started, len(expired)


def _delta(folder: Path, data: pa.Table, people: list[int]) -> None:
    """The same erasure on two Delta tables partitioned by day: the store's delete and purge
    (vacuum) against deltalake's own ``delete`` and ``vacuum`` on the copy."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable, write_deltalake

    from lifecycle.stores.lake.delta import DeltaStore

    data = data.append_column("day", pc.cast(data["ts"], pa.date32()))
    for name in ("events", "events_raw"):
        write_deltalake(str(folder / "delta" / name), data, partition_by=["day"])
    spec = {"type": "delta", "location": str(folder / "delta"), "purge_after": 0}
    catalog = _catalog(folder, spec, "events")
    store = DeltaStore(catalog, "lake")
    raw = DeltaTable(str(folder / "delta" / "events_raw"))
    for table in (store.table("events"), raw):
        table.to_pyarrow_table()
    deleted_at = datetime.now(UTC)
    started = time.perf_counter()
    change = store.delete("events", Selection(subjects=tuple(str(p) for p in people)))
    purge = store.purge("events", deleted_at=deleted_at, at=datetime.now(UTC) + timedelta(seconds=1))
    lifecycle = time.perf_counter() - started
    started = time.perf_counter()
    raw.delete(f"user_id IN ({', '.join(map(str, people))})")
    raw.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    raw_time = time.perf_counter() - started
    stored = store.stored("events", tuple(str(p) for p in people))
    print(
        f"delta: {change.rows:,} rows; lifecycle delete + purge {lifecycle:.2f} s ({purge.files_removed} files removed), "
        f"raw delete + vacuum {raw_time:.2f} s, ratio {raw_time / lifecycle:.2f}; verification {stored.rows} rows "
        f"in {stored.files} files"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--erase", type=int, default=1000)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--delta", action="store_true", help="also the same erasure on Delta tables")
    parser.add_argument("--expire-days", type=int, default=30, help="retention: the oldest day partitions dropped")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lake-bench-"))
    data = events(args.rows, args.people, args.days)
    started = time.perf_counter()
    lifecycle_table, raw_table = _tables(folder, data)
    print(f"built two tables of {args.rows:,} rows, {args.days} days: {time.perf_counter() - started:.1f} s")
    people = sorted(random.Random(11).sample(range(1, args.people + 1), args.erase))
    holding = _holding(lifecycle_table, set(people))
    for table in (lifecycle_table, raw_table):  # both read once: neither side pays a cold cache alone
        table.scan().to_arrow()

    store = IcebergStore(_catalog(folder), "lake")
    deleted_at = datetime.now(UTC)
    started = time.perf_counter()
    change = store.delete("events", Selection(subjects=tuple(str(p) for p in people)))
    deleted = time.perf_counter() - started
    purge = store.purge("events", deleted_at=deleted_at, at=datetime.now(UTC) + timedelta(seconds=1))
    lifecycle = time.perf_counter() - started
    summary = store.table("events").snapshots()[-1].summary.additional_properties
    started = time.perf_counter()
    stored = store.stored("events", tuple(str(p) for p in people))
    verified = time.perf_counter() - started

    started = time.perf_counter()
    raw_table.delete(In("user_id", people))
    raw_deleted = time.perf_counter() - started
    raw_table.maintenance.expire_snapshots().older_than(datetime.now(UTC)).commit()
    raw = time.perf_counter() - started

    dropped, raw_dropped, partitions = _retention(store, raw_table, args.expire_days)
    if args.delta:
        _delta(folder, data, people)

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"erased {args.erase:,} of {args.people:,} people: {change.rows:,} rows")
    print(
        f"  lifecycle: delete {deleted:.2f} s + purge = {lifecycle:.2f} s "
        f"({purge.snapshots_expired} snapshot(s) expired, {purge.files_removed} files removed, "
        f"{purge.bytes_freed / 1e6:.1f} MB freed)"
    )
    print(f"  raw pyiceberg: delete {raw_deleted:.2f} s + expiry = {raw:.2f} s (old files left in place)")
    print(f"  ratio raw / lifecycle: {raw / lifecycle:.2f} (delete alone {raw_deleted / deleted:.2f})")
    print(f"  data files rewritten: {summary.get('deleted-data-files')} of {holding} holding the people")
    print(
        f"  verification from storage: {stored.rows} rows in {stored.files} files, "
        f"{stored.bytes / 1e6:.1f} MB read, {verified:.2f} s"
    )
    print(
        f"retention, the {partitions} oldest day partitions: lifecycle {dropped:.2f} s (one commit), "
        f"raw delete {raw_dropped:.2f} s, ratio {raw_dropped / dropped:.2f}"
    )
    print(f"  peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
