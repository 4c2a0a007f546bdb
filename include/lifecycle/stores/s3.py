"""S3 object storage: the only code in the package that talks to S3.

Erasure in a versioned bucket means removing every version id and every
delete marker, so the store works in versions, never in plain keys.  Deletes
report what happened per version (deleted, or refused and why) instead of
raising half-way, so the caller can ledger every destructive action and
report locked objects as retained rather than retrying them forever.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from botocore.exceptions import BotoCoreError, ClientError

from lifecycle.connections import s3_client
from lifecycle.errors import LifecycleError

# S3's DeleteObjects cap; moto does not enforce it, we do.
MAX_KEYS_PER_DELETE = 1000

# Error codes on listing that no retry will fix.  Throttling and 5xx are left
# to boto3's own retries (configured in lifecycle.connections).
_TERMINAL_CODES = frozenset(
    {"NoSuchBucket", "AccessDenied", "AllAccessDisabled", "InvalidBucketName"}
)


class StoreUnavailable(LifecycleError):
    """The bucket is missing or may not be read: terminal, retrying won't help."""

    def __init__(self, bucket: str, prefix: str, code: str, message: str):
        self.bucket, self.prefix, self.code = bucket, prefix, code
        super().__init__(
            f"s3://{bucket}/{prefix}: cannot list object versions: {code} ({message})"
        )


@dataclass(frozen=True)
class ObjectVersion:
    """One version or delete marker; deleting it needs both key and version id."""

    key: str
    version_id: str  # "null" in a bucket that was never versioned
    last_modified: datetime  # tz-aware UTC
    is_delete_marker: bool
    is_latest: bool
    size: int  # 0 for delete markers


@dataclass(frozen=True)
class ObjectLock:
    """What holds a version in place (S3 Object Lock)."""

    mode: str | None  # "GOVERNANCE" | "COMPLIANCE" | None
    retain_until: datetime | None  # tz-aware UTC
    legal_hold: bool

    def active_at(self, when: datetime) -> bool:
        """Whether a delete at ``when`` would be refused."""
        return self.legal_hold or (
            self.retain_until is not None and self.retain_until > when
        )


@dataclass(frozen=True)
class DeleteError:
    """A version S3 did not delete, with S3's reason (e.g. AccessDenied under lock)."""

    key: str
    version_id: str
    code: str
    message: str


@dataclass
class DeleteOutcome:
    """Every version passed to ``delete_versions`` ends up in exactly one list."""

    deleted: list[ObjectVersion]
    errors: list[DeleteError]
    requests: int  # DeleteObjects calls made


@dataclass(frozen=True)
class Uploaded:
    """One object written by ``upload``: what a manifest records of it."""

    key: str
    size: int
    sha256: str
    parts: int  # 0: one PutObject


class S3Store:
    """Versions, deletes, locks, documents and streamed uploads in one bucket."""

    def __init__(self, client, bucket: str):
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_connection(cls, conn_id: str, bucket: str) -> S3Store:
        """A store whose credentials and endpoint come from an Airflow connection."""
        return cls(s3_client(conn_id), bucket)

    def list_versions(
        self, prefix: str, *, older_than: datetime | None = None
    ) -> Iterator[ObjectVersion]:
        """Every version and delete marker under ``prefix``, optionally only
        those last modified before ``older_than`` (tz-aware)."""
        if older_than is not None and older_than.tzinfo is None:
            raise ValueError(f"older_than must be timezone-aware, got {older_than!r}")
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        try:
            for page in pages:
                entries = itertools.chain(
                    (_version(e, is_delete_marker=False) for e in page.get("Versions", [])),
                    (_version(e, is_delete_marker=True) for e in page.get("DeleteMarkers", [])),
                )
                for version in entries:
                    if older_than is None or version.last_modified < older_than:
                        yield version
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in _TERMINAL_CODES:
                raise StoreUnavailable(
                    self.bucket, prefix, error["Code"], error.get("Message", "")
                ) from exc
            raise

    def delete_versions(self, versions: Iterable[ObjectVersion]) -> DeleteOutcome:
        """Delete exactly these versions and markers, at most
        ``MAX_KEYS_PER_DELETE`` per request.

        Not quiet mode: the outcome is built from the versions S3 says it
        deleted, so a version missing from the response is an error, never
        silently dropped (moto's errors also carry no version id, which quiet
        mode would need).  A failed request stops the run; its versions and
        all later ones are reported as errors with that request's error code.
        """
        outcome = DeleteOutcome(deleted=[], errors=[], requests=0)
        versions = iter(versions)
        while chunk := list(itertools.islice(versions, MAX_KEYS_PER_DELETE)):
            outcome.requests += 1
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={
                        "Objects": [
                            {"Key": v.key, "VersionId": v.version_id} for v in chunk
                        ],
                        "Quiet": False,
                    },
                )
            except (ClientError, BotoCoreError) as exc:
                code, message = _describe(exc)
                outcome.errors.extend(
                    DeleteError(v.key, v.version_id, code, message)
                    for v in itertools.chain(chunk, versions)
                )
                break
            _account(chunk, response, outcome)
        return outcome

    def lock(self, version: ObjectVersion) -> ObjectLock:
        """The Object Lock on one version (from ``head_object``: moto has no
        ``get_object_retention``).  Delete markers are never locked."""
        if version.is_delete_marker:
            return ObjectLock(mode=None, retain_until=None, legal_hold=False)
        head = self.client.head_object(
            Bucket=self.bucket, Key=version.key, VersionId=version.version_id
        )
        retain_until = head.get("ObjectLockRetainUntilDate")
        return ObjectLock(
            mode=head.get("ObjectLockMode"),
            retain_until=retain_until.astimezone(timezone.utc) if retain_until else None,
            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
        )

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> str:
        """Store a document (report, manifest); returns its version id or "null"."""
        response = self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
        )
        return response.get("VersionId") or "null"

    def get_bytes(self, key: str) -> bytes:
        """The latest version's content."""
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def upload(self, key: str, chunks: Iterable[bytes], *, content_type: str, encryption: str | None = None,
               kms_key_id: str | None = None, part_size: int = 16 * 1024 * 1024) -> Uploaded:
        """Write ``chunks`` to ``key`` without holding more than one part in memory.

        Small content is one PutObject; past ``part_size`` (at least 5 MiB, S3's
        floor for every part but the last) a multipart upload, aborted if
        anything fails so no partial object or orphaned parts remain.
        ``encryption`` (``AES256`` or ``aws:kms``) is requested on the object.
        """
        extra = {"ContentType": content_type}
        if encryption:
            extra["ServerSideEncryption"] = encryption
        if kms_key_id:
            extra["SSEKMSKeyId"] = kms_key_id
        digest, size, buffer = hashlib.sha256(), 0, bytearray()
        upload_id, parts = None, []
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buffer += chunk
                if len(buffer) >= part_size:
                    if upload_id is None:
                        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)["UploadId"]
                    parts.append(self._part(key, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if upload_id is None:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(buffer), **extra)
                return Uploaded(key, size, digest.hexdigest(), 0)
            if buffer:
                parts.append(self._part(key, upload_id, len(parts) + 1, bytes(buffer)))
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException as exc:
            if upload_id is not None:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in _TERMINAL_CODES:
                error = exc.response["Error"]
                raise LifecycleError(f"s3://{self.bucket}/{key}: cannot write: {error['Code']} ({error.get('Message', '')})") from exc
            raise
        return Uploaded(key, size, digest.hexdigest(), len(parts))

    def _part(self, key: str, upload_id: str, number: int, body: bytes) -> dict:
        response = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": response["ETag"]}

    def digest(self, key: str, *, chunk_size: int = 1024 * 1024) -> tuple[int, str]:
        """Size and SHA-256 of the latest version, read in chunks."""
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        sha, size = hashlib.sha256(), 0
        for chunk in body.iter_chunks(chunk_size):
            sha.update(chunk)
            size += len(chunk)
        return size, sha.hexdigest()

    def head(self, key: str) -> dict | None:
        """The object's metadata (size, encryption, …), or None when there is no such key."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def keys(self, prefix: str) -> list[str]:
        """Current keys under ``prefix`` (latest versions that are not delete markers)."""
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found += [entry["Key"] for entry in page.get("Contents", [])]
        return found


def _version(entry: dict, *, is_delete_marker: bool) -> ObjectVersion:
    return ObjectVersion(
        key=entry["Key"],
        version_id=entry.get("VersionId") or "null",
        last_modified=entry["LastModified"].astimezone(timezone.utc),
        is_delete_marker=is_delete_marker,
        is_latest=entry.get("IsLatest", False),
        size=entry.get("Size", 0),
    )


def _describe(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return error.get("Code", "Unknown"), error.get("Message", str(exc))
    return type(exc).__name__, str(exc)


def _account(chunk: list[ObjectVersion], response: dict, outcome: DeleteOutcome) -> None:
    """Split one request's versions into deleted and errors from its response.

    An error is matched by key and version id, or by key alone when it carries
    no version id (moto).
    """
    deleted = {(d["Key"], d.get("VersionId") or "null") for d in response.get("Deleted", [])}
    reasons: dict[tuple[str, str | None], tuple[str, str]] = {}
    for error in response.get("Errors", []):
        reason = (error.get("Code", "Unknown"), error.get("Message", ""))
        reasons[(error["Key"], error.get("VersionId"))] = reason
        reasons.setdefault((error["Key"], None), reason)
    for v in chunk:
        if (v.key, v.version_id) in deleted:
            outcome.deleted.append(v)
            continue
        code, message = reasons.get(
            (v.key, v.version_id),
            reasons.get((v.key, None), ("NotInResponse", "not reported deleted by DeleteObjects")),
        )
        outcome.errors.append(DeleteError(v.key, v.version_id, code, message))
