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


def write_inventory(
    client, bucket: str, prefix: str, source_bucket: str, when, *, rows_per_file: int = 50_000, versions=None
) -> str:
    """An S3 Inventory of every version in ``source_bucket``, as AWS writes one (CSV, gzipped, keys
    URL-encoded, ``manifest.json`` and its MD5 in ``manifest.checksum`` under ``<prefix><YYYY-MM-DDTHH-MMZ>/``);
    returns the dated folder.  ``versions`` (entries as ``ListObjectVersions`` gives them, from what
    each ``PutObject`` answered) stands in for listing the bucket, which moto makes quadratic."""
    import csv
    import gzip
    import hashlib
    import io
    import urllib.parse
    import uuid

    if versions is None:
        pages = list(client.get_paginator("list_object_versions").paginate(Bucket=source_bucket))
        entries = [(e, False) for page in pages for e in page.get("Versions", [])]
        entries += [(e, True) for page in pages for e in page.get("DeleteMarkers", [])]
    else:
        entries = [(e, False) for e in versions]
    rows = []
    for entry, marker in entries:
        rows.append(
            [
                source_bucket,
                urllib.parse.quote_plus(entry["Key"], safe="/"),
                entry.get("VersionId") or "",
                str(entry.get("IsLatest", False)).lower(),
                str(marker).lower(),
                "" if marker else str(entry.get("Size", 0)),
                entry["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "" if marker else entry.get("ETag", "").strip('"'),
                "" if marker else "STANDARD",
            ]
        )
    folder = f"{prefix}{when:%Y-%m-%dT%H-%MZ}/"
    files = []
    for start in range(0, max(len(rows), 1), rows_per_file):
        text = io.StringIO()
        csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows[start : start + rows_per_file])
        data = gzip.compress(text.getvalue().encode())
        key = f"{prefix}data/{uuid.uuid4()}.csv.gz"
        client.put_object(Bucket=bucket, Key=key, Body=data)
        files.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
    manifest = json.dumps(
        {
            "sourceBucket": source_bucket,
            "destinationBucket": f"arn:aws:s3:::{bucket}",
            "version": "2016-11-30",
            "creationTimestamp": str(int(when.timestamp() * 1000)),
            "fileFormat": "CSV",
            "fileSchema": INVENTORY_SCHEMA,
            "files": files,
        }
    ).encode()
    client.put_object(Bucket=bucket, Key=f"{folder}manifest.json", Body=manifest)
    client.put_object(Bucket=bucket, Key=f"{folder}manifest.checksum", Body=hashlib.md5(manifest).hexdigest().encode())
    return folder
