"""A person's access package against a raw baseline, in one run (see bench/README.md).

PostgreSQL holds the demo schema with one person of ``--rows`` rows (default
100,000: access logs, chat messages in ten conversations, favorites) and
another person's rows interleaved with theirs; moto's S3 server (a process of
its own) holds ``--objects`` chat photos of ``--object-kb`` KiB under the
person's prefix (default 2,000 × 512 KiB = 1 GiB).  Each measurement runs in
a fresh child process, so its peak RSS is its own:

* lifecycle: the package step of the ``access`` kind exactly as
  ``carry_out`` runs it before the mail (every table dataset streamed from a
  server-side cursor along the subject path, canonical JSON per row, every
  current object streamed in chunks, deterministic zip in a temporary file,
  signed manifest, multipart upload with SSE);
* raw: one ``SELECT`` per dataset through the same joins (server-side cursor),
  ``json.dumps`` per row into a zip entry, each object read with boto3 and
  written into the zip, the zip uploaded with ``upload_file`` (SSE).

Ratio = raw seconds ÷ lifecycle seconds (the same rows and bytes moved).

    .venv/bin/python bench/access_bench.py [--rows 100000] [--objects 2000] [--object-kb 512] [--repeat 2]

``ACCESS_BENCH_PROFILE=<path>`` writes the lifecycle side's profile (pstats).

Figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "include")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))

from tests.support.s3 import aws_connection, moto_client, moto_process

AS_OF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PERSON, OTHER = 1, 2
FETCH = 5000


def _config(folder: Path, buckets: dict[str, str]):
    from lifecycle.config import load_config

    target = folder / "config"
    shutil.copytree(REPO / "config" / "lifecycle", target)
    catalog = yaml.safe_load((target / "catalog.yaml").read_text())
    for name, bucket in buckets.items():
        catalog["systems"][name]["bucket"] = bucket
    catalog["reports"] = {"path": str(folder / "reports")}
    (target / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False, allow_unicode=True))
    return load_config(target)


def _connections(db: str, endpoint: str, folder: Path) -> None:
    """Every store through an Airflow connection, as a task reaches it."""

    def sql(url: str) -> str:
        return json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": url}})

    from lifecycle import signing

    os.environ["AIRFLOW_CONN_APP_DB"] = sql(db)
    os.environ["AIRFLOW_CONN_MEDIA_S3"] = aws_connection(endpoint)
    os.environ["AIRFLOW_CONN_LIFECYCLE_STATE"] = sql(f"sqlite:///{folder / 'state.db'}")
    os.environ["AIRFLOW_CONN_LIFECYCLE_SIGNING"] = json.dumps(
        {"conn_type": "generic", "password": "bench-signing-key-0123456789"}
    )
    os.environ["AIRFLOW_VAR_LIFECYCLE_HMAC_KEY"] = "bench-hmac-key-0123456789abcdef"
    os.environ["AIRFLOW_CONN_LIFECYCLE_EVIDENCE_SIGNING"] = json.dumps(
        {"conn_type": "generic", "password": signing.generate_text()}  # the Ed25519 key of what is issued
    )


# ------------------------------------------------------------------ children


def child_lifecycle(db: str, endpoint: str, media: str, exports: str) -> dict:
    from lifecycle.rights import SubjectRights, access
    from lifecycle.state import StateStore

    folder = Path(tempfile.mkdtemp(prefix="bench-access-"))
    _connections(db, endpoint, folder)
    config = _config(folder, {"media": media, "exports": exports})
    state = StateStore(sa.create_engine(f"sqlite:///{folder / 'state.db'}"), dataset_names=set(config.catalog.datasets))
    rights = SubjectRights(config, state)
    run = "manual__bench"
    form = rights.parse({"kind": "access", "subject": str(PERSON), "request_id": "BENCH-1"}, run)
    (request_id,) = rights.take_in(form, run, AS_OF)
    request = rights.request(request_id)
    started = time.perf_counter()
    if os.environ.get("ACCESS_BENCH_PROFILE"):  # a path: the package step's profile (pstats) goes there
        import cProfile

        with cProfile.Profile() as profile:
            facts = access._package(rights, request)
        profile.dump_stats(os.environ["ACCESS_BENCH_PROFILE"])
    else:
        facts = access._package(rights, request)
    seconds = time.perf_counter() - started
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "seconds": seconds,
        "records": sum(facts["rows"].values()),
        "objects": sum(o["objects"] for o in facts["objects"].values()),
        "bytes": facts["package"]["size"],
    }


RAW_QUERIES = {
    "users": "SELECT * FROM users WHERE id = :p ORDER BY id",
    "access_logs": "SELECT * FROM access_logs WHERE user_id = :p ORDER BY id",
    "favorites": "SELECT * FROM favorites WHERE user_id = :p ORDER BY id",
    "conversations": "SELECT * FROM conversations WHERE user_id = :p ORDER BY id",
    "chat_messages": "SELECT m.* FROM chat_messages m JOIN conversations c ON m.conversation_id = c.id "
    "WHERE c.user_id = :p ORDER BY m.id",
}


def child_raw(db: str, endpoint: str, media: str, exports: str) -> dict:
    client = moto_client(endpoint)
    engine = sa.create_engine(db)
    started = time.perf_counter()
    records = objects = 0
    with tempfile.TemporaryFile() as file:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as package:
            with engine.connect() as conn:
                for name, query in RAW_QUERIES.items():
                    result = conn.execution_options(stream_results=True, yield_per=FETCH).execute(
                        sa.text(query), {"p": PERSON}
                    )
                    with package.open(f"data/{name}.jsonl", "w", force_zip64=True) as out:
                        for chunk in result.mappings().partitions(FETCH):
                            out.write("".join(json.dumps(dict(r), default=str) + "\n" for r in chunk).encode())
                            records += len(chunk)
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=media, Prefix=f"chats/{PERSON}/"):
                for entry in page.get("Contents", []):
                    body = client.get_object(Bucket=media, Key=entry["Key"])["Body"].read()
                    package.writestr(zipfile.ZipInfo(f"objects/{entry['Key']}"), body, zipfile.ZIP_STORED)
                    objects += 1
        size = file.tell()
        file.seek(0)
        client.upload_fileobj(file, exports, "raw/package.zip", ExtraArgs={"ServerSideEncryption": "AES256"})
    return {"seconds": time.perf_counter() - started, "records": records, "objects": objects, "bytes": size}


def _child(kind: str, db: str, endpoint: str, media: str, exports: str) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--db", db, "--endpoint", endpoint]
    out = subprocess.run(
        [*command, "--media", media, "--exports", exports], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"{kind} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------- parent


def _database(admin_url: str, rows: int) -> str:
    """The demo schema; the person's rows (60 % logs, 30 % messages in ten conversations, 10 %
    favorites) and as many of another person's, their keys interleaved."""
    from lifecycle.demo import schema

    name = f"bench_access_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = sa.make_url(admin_url).set(database=name)
    engine = sa.create_engine(url)
    schema.metadata.create_all(engine)
    logs, messages = rows * 6 // 10, rows * 3 // 10
    favorites = rows - logs - messages - 11  # the user row and ten conversations
    with engine.begin() as conn:
        for uid in (PERSON, OTHER):
            conn.execute(
                schema.users.insert().values(
                    id=uid,
                    account=f"user{uid}",
                    email=f"u{uid}@example.com",
                    name=f"User {uid}",
                    locale="en",
                    tier="gold",
                    created_at=datetime(2025, 1, 1),
                )
            )
        statements = [
            "INSERT INTO access_logs (user_id, ip, action, path, user_agent, logged_at) SELECT 1 + g % 2, "
            "'10.0.' || (g % 250) || '.' || (g % 199), 'view', '/products/' || g || '/view', 'Mozilla/5.0 bench', "
            "timestamp '2026-01-01' + g * interval '1 second' FROM generate_series(1, :logs * 2) g",
            "INSERT INTO conversations (user_id, supplier_id, created_at) SELECT 1 + g % 2, g, timestamp '2026-01-01' "
            "FROM generate_series(1, 20) g",
            "INSERT INTO chat_messages (conversation_id, sender, body, has_attachment, sent_at) SELECT 1 + g % 20, "
            "'buyer', 'hello, is product ' || g || ' still available in blue?', false, "
            "timestamp '2026-01-01' + g * interval '1 second' FROM generate_series(1, :messages * 2) g",
            "INSERT INTO favorites (user_id, product_id, created_at) SELECT 1 + g % 2, g, timestamp '2026-01-01' "
            "FROM generate_series(1, :favorites * 2) g",
        ]
        for statement in statements:
            conn.execute(sa.text(statement), {"logs": logs, "messages": messages, "favorites": favorites})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()
    return url.render_as_string(hide_password=False)


def _objects(client, bucket: str, count: int, kib: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def put(n: int) -> None:
        client.put_object(Bucket=bucket, Key=f"chats/{PERSON}/photo-{n:05d}.jpg", Body=os.urandom(kib * 1024))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))


def _empty(client, bucket: str) -> None:
    listed = client.list_object_versions(Bucket=bucket)
    for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []):
        client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


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
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--objects", type=int, default=2_000)
    parser.add_argument("--object-kb", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side; the median ratio is reported")
    parser.add_argument("--child", choices=["lifecycle", "raw"], help=argparse.SUPPRESS)
    for hidden in ("--db", "--endpoint", "--media", "--exports"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = child_lifecycle if args.child == "lifecycle" else child_raw
        result = run(args.db, args.endpoint, args.media, args.exports)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0

    db = None
    with moto_process() as endpoint:
        try:
            client = moto_client(endpoint)
            db = _database(args.postgres, args.rows)
            media, exports = f"bench-media-{uuid.uuid4().hex[:6]}", f"bench-exports-{uuid.uuid4().hex[:6]}"
            _objects(client, media, args.objects, args.object_kb)
            client.create_bucket(Bucket=exports)
            client.put_bucket_versioning(Bucket=exports, VersioningConfiguration={"Status": "Enabled"})
            results: dict[str, list[dict]] = {"lifecycle": [], "raw": []}
            for n in range(args.repeat):
                for kind in ("raw", "lifecycle") if n % 2 else ("lifecycle", "raw"):
                    r = _child(kind, db, endpoint, media, exports)
                    results[kind].append(r)
                    print(
                        f"{kind:<9} {r['records']:,} rows, {r['objects']:,} objects, zip {r['bytes'] / 2**20:,.0f} MiB "
                        f"in {r['seconds']:.1f}s, peak RSS {r['peak_rss_mb']:.0f} MB",
                        flush=True,
                    )
                    _empty(client, exports)  # free moto's memory
            ratios = [
                raw["seconds"] / mine["seconds"] for mine, raw in zip(results["lifecycle"], results["raw"], strict=True)
            ]
            peak = max(r["peak_rss_mb"] for r in results["lifecycle"])
            raw_peak = max(r["peak_rss_mb"] for r in results["raw"])
            print(
                f"\nratio (raw seconds ÷ lifecycle seconds): median {statistics.median(ratios):.2f} "
                f"({', '.join(f'{x:.2f}' for x in ratios)}) (target >= 0.5)"
            )
            print(f"peak RSS, lifecycle: {peak:.0f} MB (target < 300 MB); raw: {raw_peak:.0f} MB")
        finally:
            if db:
                _drop(args.postgres, db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
