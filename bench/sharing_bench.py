"""Sharing extract against a raw baseline, in one run (see bench/README.md).

PostgreSQL holds ``access_logs`` tables of 100,000 and N (default 1,000,000)
rows; moto's S3 server runs in its own process.  Each measurement runs in a
fresh child process, so its peak RSS is its own:

* lifecycle: ``Sharing.extract`` exactly as the DAG's extract task runs it
  (server-side cursor, chunks, per-row keyed-hash pseudonym, cancellation
  filter, jsonl, SHA-256, multipart upload with SSE requested);
* raw: a server-side cursor, ``json.dumps`` per row, and one ``put_object``
  per 16 MiB of lines (the plainest loop that moves the same rows to S3).

Ratio = lifecycle rows/s ÷ raw rows/s at N rows (median of ``--repeat``).

    .venv/bin/python bench/sharing_bench.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "include")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))

from tests.support.s3 import moto_client, moto_process

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
PART = 16 * 1024 * 1024
FETCH = 5000


def _config(folder: Path, bucket: str):
    from lifecycle.config import load_config
    from tests.config import sample

    files = copy.deepcopy(sample.FILES)
    catalog = files["catalog.yaml"]
    catalog["datasets"] = {k: v for k, v in catalog["datasets"].items() if k in ("users", "access_logs")}
    catalog["systems"]["drop"]["bucket"] = bucket
    catalog["reports"] = {"path": str(folder / "reports")}
    files["retention.yaml"] = {"rules": []}
    files.pop("cancellation.yaml")
    files.pop("incidents.yaml")
    files["recipients.yaml"] = {
        "recipients": [
            {
                "id": "bench",
                "name": "Bench Ltd.",
                "contact": "b@bench.example",
                "role": "processor",
                "legal_basis": "entrusted_processing",
                "purpose": "benchmark",
                "agreement": {"id": "B-1", "type": "confidentiality", "signed": "2026-01-01", "expires": "2027-01-01"},
                "share": {"access_logs": ["ip", "path", "logged_at"]},
                "delivery": {"system": "drop", "prefix": "bench/{ds}/", "format": "jsonl", "fetch_rows": FETCH},
            }
        ]
    }
    return load_config(sample.write(folder / "config", files))


# ------------------------------------------------------------------ children


def child_lifecycle(db: str, endpoint: str, bucket: str) -> dict:
    from lifecycle.sharing.service import Interval, Sharing
    from lifecycle.state import StateStore
    from lifecycle.stores.s3 import S3Store
    from lifecycle.stores.sql import SqlStore

    folder = Path(tempfile.mkdtemp(prefix="bench-sharing-"))
    config = _config(folder, bucket)
    engine = sa.create_engine(db)
    state = StateStore(sa.create_engine(f"sqlite:///{folder / 'state.db'}"), dataset_names=set(config.catalog.datasets))
    s3 = S3Store(moto_client(endpoint), bucket, config.catalog, "drop")
    sharing = Sharing(
        config,
        state,
        "bench",
        open_store=lambda system: s3 if system == "drop" else SqlStore(engine, config.catalog, system),
        hmac_key=lambda: b"bench-hmac-key-0123456789abcdef",
    )
    started = time.perf_counter()
    result = sharing.extract("access_logs", Interval(AS_OF, AS_OF))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": result["records"], "bytes": result["size"], "parts": result["parts"]}


def child_raw(db: str, endpoint: str, bucket: str) -> dict:
    client = moto_client(endpoint)
    engine = sa.create_engine(db)
    started = time.perf_counter()
    records, size, part, buffer = 0, 0, 0, []
    buffered = 0
    query = sa.text("SELECT user_id, ip, path, logged_at FROM access_logs ORDER BY id")
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=FETCH).execute(query)
        for chunk in result.partitions(FETCH):
            for user_id, ip, path, logged_at in chunk:
                line = (
                    json.dumps({"user_id": user_id, "ip": ip, "path": path, "logged_at": logged_at.isoformat()}) + "\n"
                )
                buffer.append(line)
                buffered += len(line)
                records += 1
            if buffered >= PART:
                body = "".join(buffer).encode()
                client.put_object(Bucket=bucket, Key=f"raw/part-{part:05d}.jsonl", Body=body)
                part, size, buffer, buffered = part + 1, size + len(body), [], 0
    if buffer:
        body = "".join(buffer).encode()
        client.put_object(Bucket=bucket, Key=f"raw/part-{part:05d}.jsonl", Body=body)
        size += len(body)
    return {"seconds": time.perf_counter() - started, "records": records, "bytes": size, "parts": part + 1}


def _child(kind: str, db: str, endpoint: str, bucket: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--db", db, "--endpoint", endpoint, "--bucket", bucket],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"{kind} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------- parent


def _database(admin_url: str, rows: int) -> str:
    name = f"bench_sharing_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = sa.make_url(admin_url).set(database=name)
    engine = sa.create_engine(url)
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
                "timestamp '2025-01-01' FROM generate_series(1, 10000) g"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TABLE access_logs (id integer PRIMARY KEY, user_id integer REFERENCES users(id), "
                "ip varchar(45), path varchar(200), logged_at timestamp)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO access_logs SELECT g, g % 10000 + 1, '10.' || (g % 250) || '.' || (g % 199) || '.' || (g % 97), "
                "'/products/' || (g % 50000) || '/view', timestamp '2026-01-01' + g * interval '1 second' "
                "FROM generate_series(1, :n) g"
            ),
            {"n": rows},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()
    return url.render_as_string(hide_password=False)


def _drop(admin_url: str, db: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {sa.make_url(db).database}"))
    admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("LIFECYCLE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="the smaller size memory is compared at")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement at --rows; the median ratio is reported"
    )
    parser.add_argument("--child", choices=["lifecycle", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (child_lifecycle if args.child == "lifecycle" else child_raw)(args.db, args.endpoint, args.bucket)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0

    databases = {}
    with moto_process() as endpoint:
        try:
            client = moto_client(endpoint)
            for size in (args.small, args.rows):
                databases[size] = _database(args.postgres, size)
            results: dict[tuple[str, int], list[dict]] = {}
            for size in (args.small, args.rows):
                for n in range(args.repeat if size == args.rows else 1):
                    for kind in ("raw", "lifecycle") if n % 2 else ("lifecycle", "raw"):
                        bucket = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
                        client.create_bucket(Bucket=bucket)
                        r = _child(kind, databases[size], endpoint, bucket)
                        results.setdefault((kind, size), []).append(r)
                        print(
                            f"{kind:<9} {size:>9,} rows: {r['records']:,} records, {r['bytes'] / 2**20:,.1f} MiB in "
                            f"{r['seconds']:.2f}s = {r['records'] / r['seconds']:,.0f} rows/s, {r['parts']} part(s), "
                            f"peak RSS {r['peak_rss_mb']:.0f} MB",
                            flush=True,
                        )
                        for page in client.get_paginator("list_objects_v2").paginate(
                            Bucket=bucket
                        ):  # free moto's memory
                            for o in page.get("Contents", []):
                                client.delete_object(Bucket=bucket, Key=o["Key"])
            ratios = [
                (mine["records"] / mine["seconds"]) / (raw["records"] / raw["seconds"])
                for mine, raw in zip(results[("lifecycle", args.rows)], results[("raw", args.rows)])
            ]
            peak = {
                size: max(r["peak_rss_mb"] for r in results[("lifecycle", size)]) for size in (args.small, args.rows)
            }
            raw_peak = {size: max(r["peak_rss_mb"] for r in results[("raw", size)]) for size in (args.small, args.rows)}
            print(
                f"\nratio at {args.rows:,} rows (lifecycle rows/s ÷ raw rows/s): median {statistics.median(ratios):.2f} "
                f"({', '.join(f'{x:.2f}' for x in ratios)}) (target >= 0.5)"
            )
            print(
                f"peak RSS, lifecycle: {peak[args.small]:.0f} MB at {args.small:,} rows, {peak[args.rows]:.0f} MB at {args.rows:,} rows "
                f"(target < 300 MB, not growing); raw: {raw_peak[args.small]:.0f} / {raw_peak[args.rows]:.0f} MB"
            )
        finally:
            for db in databases.values():
                _drop(args.postgres, db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
