"""The demo's media bucket: tiny placeholder photos in a versioned S3 bucket.

S3 cannot back-date an object, so nothing here pretends to: an object's age
is whatever S3 says.  Some objects get two versions, some a delete marker, as
in a real bucket where users replace or remove photos.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from lifecycle.batching import chunks
from lifecycle.demo.rows import MediaObject

MEDIA_PREFIXES = ("avatars/", "inquiries/", "chats/")


def _jpeg(label: str) -> bytes:
    """A tiny placeholder with JPEG markers (SOI, JFIF, a comment, EOI)."""
    comment = f"MIC demo {label}".encode()
    return (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xfe"
        + (len(comment) + 2).to_bytes(2, "big")
        + comment
        + b"\xff\xd9"
    )


def ensure_versioned_bucket(client, bucket: str) -> None:
    """Create ``bucket`` if missing and switch versioning on."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
            raise
        region = client.meta.region_name
        kwargs = {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        client.create_bucket(Bucket=bucket, **kwargs)
    if client.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


class MediaWriter:
    """Uploads objects with a few threads; ``drain()`` waits (memory stays flat)."""

    def __init__(self, client, bucket: str, workers: int = 8):
        self.client, self.bucket = client, bucket
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-s3")
        self.pending: list[Future] = []
        self.counts = {"s3_objects": 0, "s3_versions": 0, "s3_delete_markers": 0}

    def add(self, objects: Iterable[MediaObject]) -> None:
        for obj in objects:
            self.counts["s3_objects"] += 1
            self.counts["s3_versions"] += obj.versions
            self.counts["s3_delete_markers"] += obj.delete_marker
            self.pending.append(self.pool.submit(self._put, obj))

    def _put(self, obj: MediaObject) -> None:
        for v in range(1, obj.versions + 1):
            self.client.put_object(Bucket=self.bucket, Key=obj.key, Body=_jpeg(f"v{v}"), ContentType="image/jpeg")
        if obj.delete_marker:
            self.client.delete_object(Bucket=self.bucket, Key=obj.key)

    def drain(self) -> None:
        pending, self.pending = self.pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def clear_media(client, bucket: str) -> int:
    """Delete every version and delete marker under the demo's prefixes; returns how many."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError:
        return 0
    removed = 0
    paginator = client.get_paginator("list_object_versions")
    for prefix in MEDIA_PREFIXES:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            batch = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for kind in ("Versions", "DeleteMarkers")
                for v in page.get(kind, [])
            ]
            for part in chunks(batch, 1000):
                client.delete_objects(Bucket=bucket, Delete={"Objects": part, "Quiet": True})
                removed += len(part)
    return removed
