"""Whole documents in the bucket (reports, manifests, announcements, lists of subjects): the
``Documents`` ability, and streamed uploads that never hold more than one part in memory."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from lifecycle.errors import TerminalStoreError
from lifecycle.stores.s3.failures import error_code


@dataclass(frozen=True)
class Uploaded:
    """One object written by ``upload``: what a manifest records of it."""

    key: str
    size: int
    sha256: str
    parts: int  # 0: one PutObject


class DocumentObjects:
    """``put_bytes``, ``get_bytes``, ``upload``, ``digest``, ``head`` and ``keys`` of ``S3Store``."""

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> str:
        """Store a document (report, manifest); returns its version id or "null"."""
        with self._failures(None, f"write {key!r}"):
            response = self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return response.get("VersionId") or "null"

    def get_bytes(self, key: str) -> bytes:
        """The latest version's content."""
        with self._failures(None, f"read {key!r}"):
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def upload(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str,
        encryption: str | None = None,
        kms_key_id: str | None = None,
        part_size: int = 16 * 1024 * 1024,
    ) -> Uploaded:
        """Write ``chunks`` to ``key`` without holding more than one part in memory.

        Small content is one PutObject; past ``part_size`` (at least 5 MiB, S3's
        floor for every part but the last) a multipart upload, aborted if
        anything fails so no partial object or orphaned parts remain.  A
        process killed mid-upload cannot abort its own: the next upload of the
        key aborts the unfinished ones first, so their parts do not stay.
        ``encryption`` (``AES256`` or ``aws:kms``) is requested on the object.
        """
        extra = {"ContentType": content_type}
        if encryption:
            extra["ServerSideEncryption"] = encryption
        if kms_key_id:
            extra["SSEKMSKeyId"] = kms_key_id
        digest, size, buffer = hashlib.sha256(), 0, bytearray()
        upload_id, parts = None, []
        with self._failures(None, f"write {key!r}"):
            self._abort_unfinished(key)
            try:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    buffer += chunk
                    if len(buffer) >= part_size:
                        if upload_id is None:
                            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)[
                                "UploadId"
                            ]
                        parts.append(self._part(key, upload_id, len(parts) + 1, bytes(buffer)))
                        buffer.clear()
                if upload_id is None:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(buffer), **extra)
                    return Uploaded(key, size, digest.hexdigest(), 0)
                if buffer:
                    parts.append(self._part(key, upload_id, len(parts) + 1, bytes(buffer)))
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except BaseException:
                if upload_id is not None:
                    with contextlib.suppress(ClientError, BotoCoreError):
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                raise
        return Uploaded(key, size, digest.hexdigest(), len(parts))

    def _abort_unfinished(self, key: str) -> None:
        """Abort the multipart uploads of ``key`` a killed process left open."""
        listed = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key).get("Uploads", [])
        for upload in listed:
            if upload["Key"] == key:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])

    def _part(self, key: str, upload_id: str, number: int, body: bytes) -> dict:
        response = self.client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def digest(self, key: str, *, chunk_size: int = 1024 * 1024) -> tuple[int, str]:
        """Size and SHA-256 of the latest version, read in chunks."""
        sha, size = hashlib.sha256(), 0
        with self._failures(None, f"read {key!r}"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(chunk_size):
                sha.update(chunk)
                size += len(chunk)
        return size, sha.hexdigest()

    def head(self, key: str) -> dict | None:
        """The object's metadata (size, encryption, …), or None when there is no such key."""
        try:
            with self._failures(None, f"read {key!r}"):
                return self.client.head_object(Bucket=self.bucket, Key=key)
        except TerminalStoreError as exc:
            if error_code(exc.__cause__) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def keys(self, prefix: str) -> list[str]:
        """Current keys under ``prefix`` (latest versions that are not delete markers)."""
        found = []
        with self._failures(None, f"list keys under {prefix!r}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                found += [entry["Key"] for entry in page.get("Contents", [])]
        return found
