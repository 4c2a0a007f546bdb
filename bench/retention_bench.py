"""Retention, plan and apply, against raw baselines in one run (see bench/README.md).

What a user waits for is the plan and the apply phase together: both are timed, and the
end-to-end ratio counts both.

SQL (PostgreSQL): an access-log table of N rows with two secondary indexes,
about half expired, a few held subjects.  The lifecycle's plan and apply phase (the
code the DAG's plan and apply tasks run: key-range batches, each committed and
ledgered) against one raw ``DELETE … WHERE logged_at < cutoff`` on an
identical copy.

S3 (moto's server over HTTP): M expired objects in a versioned bucket.  The
apply phase against a raw list_object_versions + DeleteObjects loop over an
identical bucket.

Partitions (PostgreSQL): a year of logs, P rows (default 10,000,000) partitioned
by month, two-thirds past a 4-month cutoff (which falls at noon, so the boundary
month has expired rows too).  The lifecycle (it drops the eight expired months
whole and deletes the boundary month's expired rows by key range) against one
raw ``DELETE … WHERE logged_at < cutoff`` on an identical partitioned copy; and
the same table unpartitioned (the row path) against the raw DELETE on its copy.  The
partitioned run is also compared with its floor: the bare ``DETACH … CONCURRENTLY`` +
``DROP`` of the same months on the raw copy.

    .venv/bin/python bench/retention_bench.py [--rows 1000000] [--objects 10000] [--batch-size 10000]
    .venv/bin/python bench/retention_bench.py --skip-sql --skip-s3 --partition-rows 1000000 --repeat 1
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "include")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))

from lifecycle.config import load_config
from lifecycle.retention import Retention, unit_group
from lifecycle.state import StateStore
from lifecycle.stores.s3 import S3Store
from lifecycle.stores.sql import SqlStore
from tests.config import sample
from tests.support.s3 import moto_client, moto_process

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
CUTOFF = datetime(2025, 12, 1)  # 6mo before AS_OF
HELD = ["7", "70", "700"]


def _config(folder: Path, batch_size: int, datasets: dict, rules: list):
    files = copy.deepcopy(sample.FILES)
    files["catalog.yaml"]["datasets"] = {k: v for k, v in files["catalog.yaml"]["datasets"].items() if k in datasets}
    files["catalog.yaml"]["reports"] = {"path": str(folder / "reports")}
    files["retention.yaml"] = {"batch_size": batch_size, "max_fraction_per_run": 1.0, "rules": rules}
    for name in ("cancellation.yaml", "recipients.yaml", "incidents.yaml"):
        files.pop(name)
    return load_config(sample.write(folder / "config", files))


def _apply_all(retention: Retention, plan, system: str, workers: int, as_of: datetime = AS_OF) -> float:
    """Run the apply units as the DAG does: stage by stage, the units of a
    stage side by side on ``workers`` workers (the system's pool slots)."""
    groups = retention.gate(plan)
    started = time.perf_counter()
    for stage in range(3):
        units = groups.get(unit_group(system, stage), [])
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda unit: retention.apply(unit, plan.run_id, as_of), units))
    return time.perf_counter() - started


def bench_sql(admin_url: str, rows: int, batch_size: int, workers: int, layout: str) -> dict:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine = sa.create_engine(sa.make_url(admin_url).set(database=name))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE users (id integer PRIMARY KEY, email varchar(255), name varchar(100), "
                    "password_hash varchar(128), tier varchar(20), created_at timestamp)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO users SELECT g, 'u' || g || '@example.com', 'User ' || g, NULL, 'gold', "
                    "'2020-01-01' FROM generate_series(1, 1000) g"
                )
            )
            for table in ("access_logs", "access_logs_raw"):
                conn.execute(
                    sa.text(
                        f"CREATE TABLE {table} (id bigint PRIMARY KEY, user_id integer, ip varchar(45), "
                        "path varchar(200), logged_at timestamp)"
                    )
                )
                # a year of logs, about half older than the 6-month cutoff.  "ordered": ids grow
                # with time as in an append-only log; "interleaved": ages scattered over the ids
                age = (
                    "(:n - g) * (31536000.0 / :n) * interval '1 second'"
                    if layout == "ordered"
                    else "(g % 365) * interval '1 day' + (g % 86400) * interval '1 second'"
                )
                conn.execute(
                    sa.text(
                        f"INSERT INTO {table} SELECT g, 1 + (g % 1000), '10.0.' || (g % 250) || '.' || (g % 200), '/p/' || g, "
                        f"timestamp '2026-06-01' - {age} FROM generate_series(1, :n) g"
                    ),
                    {"n": rows},
                )
                conn.execute(sa.text(f"CREATE INDEX {table}_logged_at ON {table} (logged_at)"))
                conn.execute(sa.text(f"CREATE INDEX {table}_user_id ON {table} (user_id)"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))

        folder = Path(tempfile.mkdtemp(prefix="bench-sql-"))
        config = _config(
            folder,
            batch_size,
            {"users", "access_logs"},
            [{"name": "logs-6mo", "applies_to": {"datasets": ["access_logs"]}, "keep": "6mo"}],
        )
        state = StateStore(engine, dataset_names={"users", "access_logs"})
        for subject in HELD:
            state.holds.add(subject, reason="benchmark hold", today=AS_OF.date())
        retention = Retention(config, state, open_store=lambda system: SqlStore(engine, config.catalog, system))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("CHECKPOINT"))
        started = time.perf_counter()
        plan = retention.plan(f"bench-{name}", AS_OF)
        plan_seconds = time.perf_counter() - started
        planned = plan.dataset("access_logs")

        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("CHECKPOINT"))
        dag_seconds = _apply_all(retention, plan, "app_db", workers)

        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("CHECKPOINT"))
        started = time.perf_counter()
        with engine.begin() as conn:
            raw_rows = conn.execute(sa.text("DELETE FROM access_logs_raw WHERE logged_at < :c"), {"c": CUTOFF}).rowcount
        raw_seconds = time.perf_counter() - started
        done = _deleted(state, plan.run_id)
        return {
            "rows": rows,
            "batch_size": batch_size,
            "batches": len(planned.ranges),
            "held": planned.held,
            "workers": workers,
            "plan_seconds": plan_seconds,
            "dag_rows": done,
            "dag_seconds": dag_seconds,
            "raw_rows": raw_rows,
            "raw_seconds": raw_seconds,
            "ratio": (done / dag_seconds) / (raw_rows / raw_seconds),
            "end_to_end": (done / (plan_seconds + dag_seconds)) / (raw_rows / raw_seconds),
        }
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def _deleted(state: StateStore, run_id: str) -> int:
    """Rows the run deleted, as its ledger records them (each range's and each drop's own count)."""
    kinds = ("retention.delete", "retention.drop_partition")
    return sum(e.payload["rows"] for e in state.ledger.entries(run_id=run_id) if e.kind in kinds)


PARTITION_AS_OF = datetime(2026, 6, 1, 12, tzinfo=UTC)  # keep 4mo: cutoff 2026-02-01 12:00
PARTITION_CUTOFF = datetime(2026, 2, 1, 12)
MONTHS = [datetime(2025 + (5 + m) // 12, (5 + m) % 12 + 1, 1) for m in range(13)]  # 2025-06-01 .. 2026-06-01


def _log_table(conn, table: str, rows: int, partitioned: bool) -> None:
    """``rows`` logs spread evenly over the year before PARTITION_AS_OF's day, ids growing with time."""
    key = "PRIMARY KEY (id, logged_at)" if partitioned else "PRIMARY KEY (id)"
    conn.execute(
        sa.text(
            f"CREATE TABLE {table} (id bigint NOT NULL, user_id integer, ip varchar(45), path varchar(200), "
            f"logged_at timestamp NOT NULL, {key}){' PARTITION BY RANGE (logged_at)' if partitioned else ''}"
        )
    )
    if partitioned:
        for low, high in itertools.pairwise(MONTHS):
            conn.execute(
                sa.text(
                    f"CREATE TABLE {table}_{low:%Y_%m} PARTITION OF {table} "
                    f"FOR VALUES FROM ('{low:%Y-%m-%d}') TO ('{high:%Y-%m-%d}')"
                )
            )
        conn.execute(
            sa.text(
                f"CREATE TABLE {table}_later PARTITION OF {table} FOR VALUES FROM ('{MONTHS[-1]:%Y-%m-%d}') TO (MAXVALUE)"
            )
        )
    conn.execute(
        sa.text(
            # the held subjects (7, 70, 700) signed up in the boundary month: their rows keep no month whole
            f"INSERT INTO {table} SELECT g, CASE WHEN at < '2026-02-01' AND (g % 1000) IN (6, 69, 699) THEN 1 "
            "ELSE 1 + (g % 1000) END, '10.0.' || (g % 250) || '.' || (g % 200), '/p/' || g, at FROM "
            "(SELECT g, timestamp '2025-06-01' + (g - 1) * (31536000.0 / :n) * interval '1 second' AS at "
            "FROM generate_series(1, :n) g) AS generated"
        ),
        {"n": rows},
    )
    conn.execute(sa.text(f"CREATE INDEX {table}_logged_at ON {table} (logged_at)"))
    conn.execute(sa.text(f"CREATE INDEX {table}_user_id ON {table} (user_id)"))


def _bare_drops(engine, table: str, partitions: list[str], workers: int) -> float | None:
    """The statements alone, as a floor: ``DETACH … CONCURRENTLY`` of the raw copy's partitions
    that the lifecycle dropped (their files as large as before: a DELETE shrinks none), one after
    another, each then dropped with ``workers`` DROPs at a time.  None when nothing was dropped."""
    if not partitions:
        return None

    def run(statement: str) -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(statement))

    names = [table + name.split(".")[-1].removeprefix("access_logs") for name in partitions]
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        dropping = []
        for name in names:
            run(f"ALTER TABLE {table} DETACH PARTITION {name} CONCURRENTLY")
            dropping.append(pool.submit(run, f"DROP TABLE {name}"))
        for future in dropping:
            future.result()
    return time.perf_counter() - started


def bench_partitions(admin_url: str, rows: int, batch_size: int, workers: int) -> list[dict]:
    """The partitioned table and the same table unpartitioned, each against the raw DELETE on its copy."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine = sa.create_engine(sa.make_url(admin_url).set(database=name))
    results = []
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE users (id integer PRIMARY KEY, email varchar(255), name varchar(100), "
                    "password_hash varchar(128), tier varchar(20), created_at timestamp)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO users SELECT g, 'u' || g || '@example.com', 'User ' || g, NULL, 'gold', "
                    "'2020-01-01' FROM generate_series(1, 1000) g"
                )
            )
        for partitioned in (True, False):
            with engine.begin() as conn:
                for table in ("access_logs", "access_logs_raw"):
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
                    _log_table(conn, table, rows, partitioned)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE"))
            folder = Path(tempfile.mkdtemp(prefix="bench-part-"))
            config = _config(
                folder,
                batch_size,
                {"users", "access_logs"},
                [{"name": "logs-4mo", "applies_to": {"datasets": ["access_logs"]}, "keep": "4mo"}],
            )
            state = StateStore(engine, dataset_names={"users", "access_logs"})
            for subject in HELD:
                state.holds.add(subject, reason="benchmark hold", today=PARTITION_AS_OF.date())
            retention = Retention(
                config, state, open_store=lambda system, c=config: SqlStore(engine, c.catalog, system)
            )
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("CHECKPOINT"))
            started = time.perf_counter()
            plan = retention.plan(f"bench-{name}-{partitioned}", PARTITION_AS_OF)
            plan_seconds = time.perf_counter() - started
            planned = plan.dataset("access_logs")
            for part in planned.partitions:
                print(f"     partition {part.name}{f' ({part.counted})' if part.go else ''}: {part.why}")
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("CHECKPOINT"))
            dag_seconds = _apply_all(retention, plan, "app_db", workers, PARTITION_AS_OF)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("CHECKPOINT"))
            started = time.perf_counter()
            with engine.begin() as conn:
                raw_rows = conn.execute(
                    sa.text("DELETE FROM access_logs_raw WHERE logged_at < :c"), {"c": PARTITION_CUTOFF}
                ).rowcount
            raw_seconds = time.perf_counter() - started
            bare_seconds = _bare_drops(engine, "access_logs_raw", [part.name for part in planned.drops], workers)
            verified = retention.verify(plan)["access_logs"]
            timings = {}
            for entry in state.ledger.entries(run_id=plan.run_id):
                if entry.kind in ("retention.delete", "retention.drop_partition"):
                    timings[entry.kind] = timings.get(entry.kind, 0.0) + entry.payload["seconds"]
            print("     seconds recorded per kind (summed over workers):", timings)
            done = _deleted(state, plan.run_id)
            results.append(
                {
                    "table": "partitioned by month" if partitioned else "unpartitioned",
                    "rows": rows,
                    "expired": raw_rows,
                    "dropped": len(planned.drops),
                    "batches": len(planned.ranges),
                    "held": planned.held,
                    "plan_seconds": plan_seconds,
                    "dag_rows": done,
                    "estimated": any(part.estimated for part in planned.drops),
                    "dag_seconds": dag_seconds,
                    "raw_rows": raw_rows,
                    "raw_seconds": raw_seconds,
                    "remaining": verified["remaining"],
                    "ratio": (done / dag_seconds) / (raw_rows / raw_seconds),
                    "end_to_end": (done / (plan_seconds + dag_seconds)) / (raw_rows / raw_seconds),
                    "bare_seconds": bare_seconds,
                }
            )
        return results
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def bench_s3(objects: int, batch_size: int) -> dict:
    with moto_process() as endpoint:
        client = moto_client(endpoint)
        buckets = {"dag": f"bench-dag-{uuid.uuid4().hex[:6]}", "raw": f"bench-raw-{uuid.uuid4().hex[:6]}"}
        for bucket in buckets.values():
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda i, b=bucket: client.put_object(Bucket=b, Key=f"chats/{i % 500}/{i}.jpg", Body=b"x"),
                        range(objects),
                    )
                )

        folder = Path(tempfile.mkdtemp(prefix="bench-s3-"))
        config = _config(
            folder,
            batch_size,
            {"users", "chat_photos"},
            [{"name": "photos", "applies_to": {"datasets": ["chat_photos"]}, "keep": "30d"}],
        )
        state = StateStore(sa.create_engine(f"sqlite:///{folder / 'state.db'}"), dataset_names={"users", "chat_photos"})
        as_of = datetime.now(UTC) + timedelta(days=31)
        retention = Retention(
            config, state, open_store=lambda system: S3Store(client, buckets["dag"], config.catalog, system)
        )
        plan = retention.plan("bench-s3", as_of)
        units = retention.gate(plan)[unit_group("media", 0)]
        started = time.perf_counter()
        results = [retention.apply(unit, "bench-s3", as_of) for unit in units]
        dag_seconds = time.perf_counter() - started
        result = {"versions": sum(r["rows"] for r in results), "objects": sum(r.get("objects", 0) for r in results)}

        started = time.perf_counter()
        deleted = 0
        batch = []
        for page in client.get_paginator("list_object_versions").paginate(Bucket=buckets["raw"]):
            batch += [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
        for i in range(0, len(batch), 1000):
            response = client.delete_objects(
                Bucket=buckets["raw"], Delete={"Objects": batch[i : i + 1000], "Quiet": True}
            )
            deleted += len(batch[i : i + 1000]) - len(response.get("Errors", []))
        raw_seconds = time.perf_counter() - started
        return {
            "objects": objects,
            "dag_versions": result["versions"],
            "dag_seconds": dag_seconds,
            "raw_versions": deleted,
            "raw_seconds": raw_seconds,
            "ratio": (result["versions"] / dag_seconds) / (deleted / raw_seconds),
        }


def _floor(r: dict) -> float:
    """The bare DETACH + DROP of the dropped months against the lifecycle's plan + apply."""
    return r["bare_seconds"] / (r["plan_seconds"] + r["dag_seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("LIFECYCLE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="apply units side by side (the DAG's mapped tasks; default 2 = cores here)",
    )
    parser.add_argument(
        "--layout",
        choices=["ordered", "interleaved"],
        default="ordered",
        help="ordered: ids grow with time, as in a log (default); interleaved: ages scattered",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median ratio is reported")
    parser.add_argument(
        "--partition-rows",
        type=int,
        default=10_000_000,
        help="rows of the partitioned (and unpartitioned) year of logs (default 10,000,000)",
    )
    parser.add_argument("--skip-partitions", action="store_true")
    parser.add_argument("--skip-sql", action="store_true")
    parser.add_argument("--skip-s3", action="store_true")
    args = parser.parse_args()
    if not args.skip_sql:
        runs = [
            bench_sql(args.postgres, args.rows, args.batch_size, args.workers, args.layout) for _ in range(args.repeat)
        ]
        for r in runs:
            print(
                f"SQL  {r['rows']:,} rows ({args.layout}), batch {r['batch_size']:,} ({r['batches']} batches, "
                f"{r['workers']} worker(s)), {r['held']} held rows kept"
            )
            print(f"     plan:        {r['plan_seconds']:.2f}s")
            print(
                f"     apply phase: {r['dag_rows']:,} rows in {r['dag_seconds']:.2f}s = {r['dag_rows'] / r['dag_seconds']:,.0f} rows/s"
            )
            print(
                f"     raw DELETE:  {r['raw_rows']:,} rows in {r['raw_seconds']:.2f}s = {r['raw_rows'] / r['raw_seconds']:,.0f} rows/s"
            )
            print(f"     ratio {r['end_to_end']:.2f} plan + apply ({r['ratio']:.2f} apply phase alone)")
        print(
            f"SQL  median ratio over {len(runs)} run(s), plan + apply: "
            f"{statistics.median(r['end_to_end'] for r in runs):.2f} (target >= 0.7)"
        )
    if not args.skip_partitions:
        runs = [
            bench_partitions(args.postgres, args.partition_rows, args.batch_size, args.workers)
            for _ in range(args.repeat)
        ]
        for results in runs:
            for r in results:
                print(
                    f"PART {r['rows']:,} rows {r['table']}, {r['expired']:,} expired; {r['dropped']} partition(s) "
                    f"dropped, {r['batches']} batch(es), {r['held']} held rows kept; plan {r['plan_seconds']:.2f}s"
                )
                print(
                    f"     apply phase: {'~' if r['estimated'] else ''}{r['dag_rows']:,} rows in {r['dag_seconds']:.2f}s = "
                    f"{r['dag_rows'] / r['dag_seconds']:,.0f} rows/s (verified: {r['remaining']} remaining)"
                    f"{'; ~: dropped partitions rows from the statistics (estimate)' if r['estimated'] else ''}"
                )
                print(
                    f"     raw DELETE:  {r['raw_rows']:,} rows in {r['raw_seconds']:.2f}s = "
                    f"{r['raw_rows'] / r['raw_seconds']:,.0f} rows/s"
                )
                print(f"     ratio {r['end_to_end']:.2f} plan + apply ({r['ratio']:.2f} apply phase alone)")
                if r["bare_seconds"] is not None:
                    print(
                        f"     the statements alone (DETACH CONCURRENTLY + DROP of the same {r['dropped']} partitions, "
                        f"{args.workers} connection(s)): {r['bare_seconds']:.2f}s = "
                        f"{r['raw_seconds'] / r['bare_seconds']:.1f}x the raw DELETE; plan + apply = "
                        f"{_floor(r):.2f} of that floor"
                    )
        ratios = [results[0]["end_to_end"] for results in runs]
        print(f"PART {runs[0][0]['table']}: median ratio {statistics.median(ratios):.2f} plan + apply")
        floors = [_floor(results[0]) for results in runs if results[0]["bare_seconds"]]
        if floors:
            print(f"PART {runs[0][0]['table']}: median {statistics.median(floors):.2f} of the floor (target >= 0.8)")
        ratios = [results[1]["end_to_end"] for results in runs]
        print(f"PART {runs[0][1]['table']}: median ratio {statistics.median(ratios):.2f} plan + apply (target >= 0.7)")
    if not args.skip_s3:
        runs = [bench_s3(args.objects, args.batch_size) for _ in range(args.repeat)]
        for r in runs:
            print(f"S3   {r['objects']:,} expired objects (versioned bucket, moto server over HTTP)")
            print(
                f"     apply phase: {r['dag_versions']:,} versions in {r['dag_seconds']:.2f}s = {r['dag_versions'] / r['dag_seconds']:,.0f}/s"
            )
            print(
                f"     raw loop:    {r['raw_versions']:,} versions in {r['raw_seconds']:.2f}s = {r['raw_versions'] / r['raw_seconds']:,.0f}/s"
            )
            print(f"     ratio {r['ratio']:.2f}")
        print(
            f"S3   median ratio over {len(runs)} run(s): {statistics.median(r['ratio'] for r in runs):.2f} (target >= 0.8)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
