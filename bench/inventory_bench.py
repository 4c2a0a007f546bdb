"""Object retention planned from S3 Inventory against the same run planned by listing (see bench/README.md).

Two identical versioned buckets of N expired objects on moto's server (over
HTTP).  One dataset is planned by listing its prefix, the other from an
inventory of its bucket (written in AWS's layout); both runs plan, apply
(every candidate of the inventory run confirmed by listing its key alone)
and verify.  Reported per path: requests made to S3 (every API call, counted
on the clients' event hooks) per object, and seconds per phase.

The listing path's bucket holds ``--listing-objects`` (default 10,000): moto
renders each page of ``ListObjectVersions`` by walking the whole bucket, so
listing 100,000 versions costs it time and memory quadratic in the bucket
(hours and >14 GB), where S3 charges per request.  Requests per object do not
depend on the size for either path.

    .venv/bin/python bench/inventory_bench.py [--objects 100000] [--listing-objects 10000] [--batch-size 10000]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "include")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))

from lifecycle import connections
from lifecycle.config import load_config
from lifecycle.retention import Retention, unit_group
from lifecycle.state import StateStore
from tests.config import sample
from tests.support.s3 import aws_connection, moto_process, write_inventory

PREFIX = "inventories/media/all/"


def _config(folder: Path, bucket: str, inventory_bucket: str | None, batch_size: int):
    files = copy.deepcopy(sample.FILES)
    catalog = files["catalog.yaml"]
    catalog["datasets"] = {k: v for k, v in catalog["datasets"].items() if k in ("users", "chat_photos")}
    catalog["systems"]["media"]["bucket"] = bucket
    if inventory_bucket:
        catalog["systems"]["inventories"] = {"type": "s3", "conn_id": "media_s3", "bucket": inventory_bucket}
        catalog["datasets"]["chat_photos"]["inventory"] = {"system": "inventories", "prefix": PREFIX}
    catalog["reports"] = {"path": str(folder / "reports")}
    files["retention.yaml"] = {
        "batch_size": batch_size,
        "max_fraction_per_run": 1.0,
        "rules": [{"name": "photos", "applies_to": {"datasets": ["chat_photos"]}, "keep": "30d"}],
    }
    for name in ("cancellation.yaml", "recipients.yaml", "incidents.yaml"):
        files.pop(name)
    return load_config(sample.write(folder / "config", files))


def _fill(client, bucket: str, objects: int) -> list[dict]:
    """``objects`` one-byte photos; their versions as ``ListObjectVersions`` would give them,
    from what each ``PutObject`` answered (listing the bucket back is quadratic in moto)."""
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def put(i: int) -> dict:
        key = f"chats/{i % 5000}/{i}.jpg"
        answer = client.put_object(Bucket=bucket, Key=key, Body=b"x")
        written = answer["ResponseMetadata"]["HTTPHeaders"].get("date")
        when = parsedate_to_datetime(written) if written else datetime.now(UTC)
        entry = {"Key": key, "VersionId": answer["VersionId"], "ETag": answer["ETag"], "Size": 1}
        return entry | {"IsLatest": True, "LastModified": when}

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(put, range(objects)))


def _run(config, folder: Path, calls: Counter) -> dict:
    state = StateStore(sa.create_engine(f"sqlite:///{folder / 'state.db'}"), dataset_names={"users", "chat_photos"})
    retention = Retention(config, state)
    as_of = datetime.now(UTC) + timedelta(days=31)
    phases = {}
    for phase in ("plan", "apply", "verify"):
        calls.clear()
        started = time.perf_counter()
        if phase == "plan":
            plan = retention.plan("bench-inventory", as_of)
        elif phase == "apply":
            units = retention.gate(plan)[unit_group("media", 0)]
            results = [retention.apply(unit, "bench-inventory", as_of) for unit in units]
        else:
            verified = retention.verify(plan)["chat_photos"]
        phases[phase] = {"seconds": time.perf_counter() - started, "requests": sum(calls.values()), "by": dict(calls)}
    return {
        "deleted_objects": sum(r.get("objects", 0) for r in results),
        "remaining": verified["remaining"],
        "phases": phases,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--listing-objects", type=int, default=10_000, help="objects in the listing path's bucket")
    parser.add_argument("--batch-size", type=int, default=10_000)
    args = parser.parse_args()
    with moto_process() as endpoint:
        os.environ["AIRFLOW_CONN_MEDIA_S3"] = aws_connection(endpoint)
        calls: Counter = Counter()
        connections._boto3_session().events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
        client = connections.s3_client("media_s3")
        tag = uuid.uuid4().hex[:6]
        listed, inventoried, inventory_bucket = f"bench-list-{tag}", f"bench-inv-{tag}", f"bench-invfiles-{tag}"
        started = time.perf_counter()
        sizes = {"listing": min(args.listing_objects, args.objects), "inventory": args.objects}
        _fill(client, listed, sizes["listing"])
        versions = _fill(client, inventoried, sizes["inventory"])
        client.create_bucket(Bucket=inventory_bucket)
        write_inventory(client, inventory_bucket, PREFIX, inventoried, datetime.now(UTC), versions=versions)
        print(
            f"{sizes['listing']:,} and {sizes['inventory']:,} objects in two buckets, and an inventory of the second,"
            f" in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        results = {}
        for name, bucket, inv in (("listing", listed, None), ("inventory", inventoried, inventory_bucket)):
            folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
            results[name] = _run(_config(folder, bucket, inv, args.batch_size), folder, calls)
        for name, r in results.items():
            total = sum(p["requests"] for p in r["phases"].values())
            seconds = sum(p["seconds"] for p in r["phases"].values())
            print(
                f"{name:<9}: {r['deleted_objects']:,} objects deleted, {r['remaining']} remaining; "
                f"{total:,} requests = {total / sizes[name]:.3f} per object; {seconds:.1f}s "
                + ", ".join(f"{p} {v['seconds']:.1f}s/{v['requests']:,} req" for p, v in r["phases"].items())
            )
        print(json.dumps({name: r["phases"] for name, r in results.items()}, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
