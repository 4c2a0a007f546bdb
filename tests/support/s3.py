"""A real S3 endpoint for tests: moto in server mode over HTTP on loopback.

Server mode rather than ``mock_aws`` so the code under test goes through
the same path as production: an Airflow connection, a boto3 client, HTTP.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto on 127.0.0.1 at a free port; yields its endpoint URL.

    Werkzeug's access log (one line per request) is muted while it runs, so a
    failing test's captured log shows the test, not thousands of PUTs.
    """
    from moto.server import ThreadedMotoServer

    access_log = logging.getLogger("werkzeug")
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        access_log.setLevel(level)


@contextmanager
def moto_process() -> Iterator[str]:
    """moto's server in a process of its own, as S3 is a service of its own; yields its endpoint URL.

    For measurements: a server thread inside the measuring process would share
    that process's interpreter lock and garbage collections (a full pass over
    everything the process loaded) with it.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's server did not answer on {endpoint}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.kill()
        server.wait(10)


def moto_client(endpoint_url: str):
    """A boto3 S3 client to the moto server at ``endpoint_url`` (moto accepts any credentials)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def aws_connection(endpoint_url: str, region_name: str = "us-east-1") -> str:
    """The value of an ``AIRFLOW_CONN_<ID>`` variable for an aws connection
    to ``endpoint_url`` (JSON form; moto accepts any credentials)."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint_url, "region_name": region_name},
        }
    )


INVENTORY_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"
PARQUET_SCHEMA = (
    "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); "
    "optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; "
    "optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); "
    "optional binary storage_class (UTF8);}"
)


def write_inventory(
    client,
    bucket: str,
    prefix: str,
    source_bucket: str,
    when,
    *,
    rows_per_file: int = 50_000,
    versions=None,
    file_format: str = "CSV",
) -> str:
    """An S3 Inventory of every version in ``source_bucket``, as AWS writes one (``manifest.json``
    and its MD5 in ``manifest.checksum`` under ``<prefix><YYYY-MM-DDTHH-MMZ>/``, the files under
    ``<prefix>data/``: gzipped CSV with keys URL-encoded, or Parquet with typed columns in snake
    case); returns the dated folder.  ``versions`` (entries as ``ListObjectVersions`` gives them,
    from what each ``PutObject`` answered) stands in for listing the bucket, which moto makes quadratic."""
    import hashlib
    import uuid

    if versions is None:
        pages = list(client.get_paginator("list_object_versions").paginate(Bucket=source_bucket))
        entries = [(e, False) for page in pages for e in page.get("Versions", [])]
        entries += [(e, True) for page in pages for e in page.get("DeleteMarkers", [])]
    else:
        entries = [(e, False) for e in versions]
    rows = [
        {
            "bucket": source_bucket,
            "key": entry["Key"],
            "version_id": entry.get("VersionId") or None,
            "is_latest": bool(entry.get("IsLatest", False)),
            "is_delete_marker": marker,
            "size": None if marker else entry.get("Size", 0),
            "last_modified_date": entry["LastModified"].replace(microsecond=0),
            "e_tag": None if marker else entry.get("ETag", "").strip('"'),
            "storage_class": None if marker else "STANDARD",
        }
        for entry, marker in entries
    ]
    folder = f"{prefix}{when:%Y-%m-%dT%H-%MZ}/"
    files = []
    write = _parquet_file if file_format == "Parquet" else _csv_file
    for start in range(0, max(len(rows), 1), rows_per_file):
        data, suffix = write(rows[start : start + rows_per_file])
        key = f"{prefix}data/{uuid.uuid4()}.{suffix}"
        client.put_object(Bucket=bucket, Key=key, Body=data)
        files.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
    manifest = json.dumps(
        {
            "sourceBucket": source_bucket,
            "destinationBucket": f"arn:aws:s3:::{bucket}",
            "version": "2016-11-30",
            "creationTimestamp": str(int(when.timestamp() * 1000)),
            "fileFormat": file_format,
            "fileSchema": PARQUET_SCHEMA if file_format == "Parquet" else INVENTORY_SCHEMA,
            "files": files,
        }
    ).encode()
    client.put_object(Bucket=bucket, Key=f"{folder}manifest.json", Body=manifest)
    client.put_object(Bucket=bucket, Key=f"{folder}manifest.checksum", Body=hashlib.md5(manifest).hexdigest().encode())
    return folder


def _csv_file(rows: list[dict]) -> tuple[bytes, str]:
    import csv
    import gzip
    import io
    import urllib.parse

    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for row in rows:
        writer.writerow(
            [
                row["bucket"],
                urllib.parse.quote_plus(row["key"], safe="/"),
                row["version_id"] or "",
                str(row["is_latest"]).lower(),
                str(row["is_delete_marker"]).lower(),
                "" if row["size"] is None else str(row["size"]),
                row["last_modified_date"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                row["e_tag"] or "",
                row["storage_class"] or "",
            ]
        )
    return gzip.compress(text.getvalue().encode()), "csv.gz"


def _parquet_file(rows: list[dict]) -> tuple[bytes, str]:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("bucket", pa.string()),
            ("key", pa.string()),
            ("version_id", pa.string()),
            ("is_latest", pa.bool_()),
            ("is_delete_marker", pa.bool_()),
            ("size", pa.int64()),
            ("last_modified_date", pa.timestamp("ms", tz="UTC")),
            ("e_tag", pa.string()),
            ("storage_class", pa.string()),
        ]
    )
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out)
    return out.getvalue(), "parquet"
