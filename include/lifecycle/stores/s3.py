"""The S3 adapter of the store contract (boto3): object datasets, versions, documents.

Erasure in a versioned bucket means removing every version id and every
delete marker, so the store works in versions, never in plain keys.  An
object dataset's unit is a key (all its versions): a key is expired when its
newest version or marker is, and it belongs to the subject its prefix
template names.  Deletes report what happened per version instead of raising
half-way: a version under Object Lock (judged by S3's own clock, the wall
clock) is *kept* and reported with its retain-until date, never retried
forever; any other refusal fails the call, terminal or transient as
``classify`` decides (throttling, 5xx and lost connections are transient).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from lifecycle.clock import aware_utc
from lifecycle.connections import s3_client
from lifecycle.errors import TerminalStoreError, TransientStoreError, store_failures
from lifecycle.stores.contract import ALL, BeforeCommit, Change, Kept, KeyRange, Remaining, Selection

# S3's DeleteObjects cap; moto does not enforce it, we do.
MAX_KEYS_PER_DELETE = 1000

# Error codes a retry may get past; any 5xx too.
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "RequestLimitExceeded",
        "OperationAborted",
    }
)


def transient(exc: BaseException) -> bool:
    """Whether an S3 failure may pass on retry: throttling, 5xx, a lost or refused connection."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return _code(exc) in _TRANSIENT_CODES or status >= 500
    return isinstance(exc, (BotoConnectionError, HTTPClientError, ConnectionError, TimeoutError))


def _describe(exc: BaseException) -> str:
    """S3's error code and message (they name buckets and keys, never an object's content)."""
    message = exc.response.get("Error", {}).get("Message", "") if isinstance(exc, ClientError) else str(exc)
    return f"{_code(exc)} ({message})"[:500]


def _code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "Unknown")
    return type(exc).__name__


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
        return self.legal_hold or (self.retain_until is not None and self.retain_until > when)


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
    """Object datasets of one bucket (the store contract), and whole documents in it."""

    list_budget = 1000  # entries one listing request returns: what listing one subject's prefix costs

    def __init__(self, client, bucket: str, catalog=None, system: str | None = None):
        self.client = client
        self.bucket = bucket
        self.catalog = catalog
        self.system = system or bucket
        self._snapshot: dict | None = None

    @classmethod
    def from_connection(cls, conn_id: str, bucket: str, catalog=None, system: str | None = None) -> S3Store:
        """A store whose credentials and endpoint come from an Airflow connection."""
        return cls(s3_client(conn_id), bucket, catalog, system)

    def _failures(self, dataset: str | None, purpose: str):
        return store_failures(
            self.system,
            dataset,
            f"{purpose} in s3://{self.bucket}",
            catching=(ClientError, BotoCoreError, OSError),
            transient=transient,
            describe=_describe,
        )

    # ------------------------------------------------------------- versions

    def list_versions(
        self, prefix: str, *, older_than: datetime | None = None, dataset: str | None = None, last: str | None = None
    ) -> Iterator[ObjectVersion]:
        """Every version and delete marker under ``prefix``, optionally only those last
        modified before ``older_than`` (tz-aware); with ``last``, the listing stops past that key."""
        if older_than is not None and older_than.tzinfo is None:
            raise ValueError(f"older_than must be timezone-aware, got {older_than!r}")
        with self._failures(dataset, f"list object versions under {prefix!r}"):
            pages = self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                entries = itertools.chain(
                    (_version(e, is_delete_marker=False) for e in page.get("Versions", [])),
                    (_version(e, is_delete_marker=True) for e in page.get("DeleteMarkers", [])),
                )
                for version in entries:
                    if (older_than is None or version.last_modified < older_than) and (
                        last is None or version.key <= last
                    ):
                        yield version
                if last is not None and page.get("NextKeyMarker", "") > last:
                    return

    def delete_versions(self, versions: Iterable[ObjectVersion], *, dataset: str | None = None) -> DeleteOutcome:
        """Delete exactly these versions and markers, at most ``MAX_KEYS_PER_DELETE`` per request.

        Not quiet mode: the outcome is built from the versions S3 says it
        deleted, so a version missing from the response is an error, never
        silently dropped (moto's errors also carry no version id, which quiet
        mode would need).  A request that fails as a whole raises (classified).
        """
        outcome = DeleteOutcome(deleted=[], errors=[], requests=0)
        versions = iter(versions)
        while chunk := list(itertools.islice(versions, MAX_KEYS_PER_DELETE)):
            outcome.requests += 1
            with self._failures(dataset, f"delete {len(chunk)} object version(s)"):
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": v.key, "VersionId": v.version_id} for v in chunk], "Quiet": False},
                )
            _account(chunk, response, outcome)
        return outcome

    def lock(self, version: ObjectVersion, *, dataset: str | None = None) -> ObjectLock:
        """The Object Lock on one version (from ``head_object``: moto has no
        ``get_object_retention``).  Delete markers are never locked."""
        if version.is_delete_marker:
            return ObjectLock(mode=None, retain_until=None, legal_hold=False)
        with self._failures(dataset, "read an object version's lock"):
            head = self.client.head_object(Bucket=self.bucket, Key=version.key, VersionId=version.version_id)
        retain_until = head.get("ObjectLockRetainUntilDate")
        return ObjectLock(
            mode=head.get("ObjectLockMode"),
            retain_until=retain_until.astimezone(UTC) if retain_until else None,
            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
        )

    # ------------------------------------------------------- object datasets

    @contextlib.contextmanager
    def snapshot(self):
        """Reads inside see one listing per dataset and selection scope: a plan counts several
        selections of the same objects, and each listing costs a request per 1,000 entries."""
        self._snapshot = {}
        try:
            yield
        finally:
            self._snapshot = None

    def _listing(
        self, dataset: str, subjects: tuple | None, within: KeyRange | None = None
    ) -> dict[str, list[ObjectVersion]]:
        """Every version and marker of the dataset (of ``subjects`` only, if given), by key.

        With subjects, the dataset's static prefix is listed once while that
        stays within what listing each subject's prefix would cost
        (``list_budget`` entries a request); past that, each subject's prefix.
        """
        scope = (dataset, subjects, within)
        if self._snapshot is not None and scope in self._snapshot:
            return self._snapshot[scope]
        groups = self._list(dataset, subjects, within)
        if self._snapshot is not None:
            self._snapshot[scope] = groups
        return groups

    def _list(self, dataset: str, subjects: tuple | None, within: KeyRange | None) -> dict[str, list[ObjectVersion]]:
        static = self.catalog.static_prefix(dataset)
        groups: dict[str, list[ObjectVersion]] = {}
        if subjects is None:
            if within is None:
                listed = self.list_versions(static, dataset=dataset)
            else:  # every key of the range shares the bounds' common prefix
                common = os.path.commonprefix([within.low, within.high])  # noqa: RUF071  (keys, not paths)
                listed = self.list_versions(common, dataset=dataset, last=within.high)
            for version in listed:
                if within is None or version.key >= within.low:
                    groups.setdefault(version.key, []).append(version)
            return groups
        wanted, budget = set(subjects), self.list_budget * max(len(subjects), 1)
        for n, version in enumerate(self.list_versions(static, dataset=dataset)):
            if n >= budget:
                groups = {}
                for subject in subjects:
                    for found in self.list_versions(self.catalog.subject_prefix(dataset, subject), dataset=dataset):
                        groups.setdefault(found.key, []).append(found)
                return groups
            if self.catalog.subject_of_key(dataset, version.key) in wanted:
                groups.setdefault(version.key, []).append(version)
        return groups

    def _select(self, dataset: str, selection: Selection) -> dict[str, list[ObjectVersion]]:
        """The keys the selection takes, each with all its versions and markers."""
        excluded = set(selection.exclude_subjects)
        wanted = set(selection.subjects) if selection.subjects is not None else None
        keys = set(selection.keys) if selection.keys is not None else None
        older = aware_utc(selection.older_than) if selection.older_than else None
        window = tuple(map(aware_utc, selection.created_within)) if selection.created_within else None
        chosen = {}
        for key, versions in self._listing(dataset, selection.subjects, selection.within).items():
            subject = self.catalog.subject_of_key(dataset, key)
            if (wanted is not None and subject not in wanted) or (excluded and subject in excluded):
                continue
            if selection.within is not None and not selection.within.low <= key <= selection.within.high:
                continue
            if keys is not None and key not in keys:
                continue
            if older is not None and not max(v.last_modified for v in versions) < older:
                continue
            if window is not None and not any(
                window[0] <= v.last_modified <= window[1] for v in versions if not v.is_delete_marker
            ):
                continue
            chosen[key] = versions
        return chosen

    def count(self, dataset: str, selection: Selection = ALL) -> int:
        return len(self._select(dataset, selection))

    def count_by_subject(self, dataset: str, selection: Selection = ALL) -> dict[str, int]:
        """Selected keys per subject."""
        counts: dict[str, int] = {}
        for key in self._select(dataset, selection):
            subject = self.catalog.subject_of_key(dataset, key)
            if subject is not None:
                counts[subject] = counts.get(subject, 0) + 1
        return counts

    def units(self, dataset: str, selection: Selection, size: int) -> list[KeyRange]:
        """The selected keys in ranges of ``size`` keys (S3 lists keys in this order)."""
        keys = sorted(self._select(dataset, selection))
        return [
            KeyRange(part[0], part[-1], len(part)) for part in (keys[i : i + size] for i in range(0, len(keys), size))
        ]

    def delete(self, dataset: str, selection: Selection, *, before_commit: BeforeCommit | None = None) -> Change:
        """Delete every version and marker of the selected keys.

        ``before_commit(versions_per_subject, [])`` is called after the listing
        and before the first delete; if it raises, nothing is deleted.  A
        version S3 refuses to delete is *kept* when its Object Lock holds now
        (S3's clock); any other refusal fails the call after the rest of the
        versions were tried: transient if S3 said so (SlowDown, 5xx), else terminal.
        """
        chosen = self._select(dataset, selection)
        self._snapshot = {} if self._snapshot is not None else None  # what a snapshot listed is gone now
        versions = [v for key in sorted(chosen) for v in chosen[key]]
        if before_commit is not None:
            per_subject: dict[str, int] = {}
            for version in versions:
                subject = self.catalog.subject_of_key(dataset, version.key)
                per_subject[subject] = per_subject.get(subject, 0) + 1
            before_commit(per_subject, [])
        outcome = self.delete_versions(versions, dataset=dataset)
        change = Change(rows=len(outcome.deleted), requests=outcome.requests)
        by_id = {(v.key, v.version_id): v for v in versions}
        refused, now = [], datetime.now(UTC)
        for error in outcome.errors:
            version = by_id[(error.key, error.version_id)]
            lock = self.lock(version, dataset=dataset)
            if lock.active_at(now):
                change.kept.append(
                    Kept(
                        "locked",
                        self.catalog.subject_of_key(dataset, version.key),
                        {
                            "key": version.key,
                            "version": version.version_id,
                            "mode": lock.mode,
                            "legal_hold": lock.legal_hold,
                            "retain_until": lock.retain_until.isoformat() if lock.retain_until else None,
                        },
                    )
                )
            else:
                refused.append(error)
        emptied = {v.key for v in outcome.deleted} - {e.key for e in outcome.errors}
        change.objects = len(emptied)
        if refused:
            kind = TransientStoreError if any(e.code in _TRANSIENT_CODES for e in refused) else TerminalStoreError
            sample = ", ".join(f"{e.key} ({e.code})" for e in refused[:5])
            raise kind(
                self.system,
                dataset,
                f"delete object versions in s3://{self.bucket}",
                f"{len(refused)} version(s) not deleted and not under Object Lock: {sample}",
            )
        return change

    def anonymize(
        self,
        dataset: str,
        selection: Selection,
        fields: list,
        *,
        hmac_key: bytes | None = None,
        unlink: bool = False,
        before_commit: BeforeCommit | None = None,
    ) -> Change:
        raise TerminalStoreError(
            self.system,
            dataset,
            "anonymize objects",
            "objects cannot be anonymized; use action: delete for object datasets",
        )

    def remaining(self, dataset: str, selection: Selection) -> Remaining:
        """Keys still selected that hold a version or marker S3 would let go now; locked versions apart."""
        left = Remaining(0)
        now, locked = datetime.now(UTC), 0
        for key, versions in self._select(dataset, selection).items():
            free = [v for v in versions if not self.lock(v, dataset=dataset).active_at(now)]
            locked += len(versions) - len(free)
            if free:
                left.items += 1
                if selection.subjects is not None:
                    subject = self.catalog.subject_of_key(dataset, key)
                    left.by_subject[subject] = left.by_subject.get(subject, 0) + len(free)
        if locked:
            left.kept["locked"] = locked
        return left

    # ------------------------------------------------------------- documents

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
        with self._failures(None, f"write {key!r}"):
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
            if _code(exc.__cause__) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def keys(self, prefix: str) -> list[str]:
        """Current keys under ``prefix`` (latest versions that are not delete markers)."""
        found = []
        with self._failures(None, f"list keys under {prefix!r}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                found += [entry["Key"] for entry in page.get("Contents", [])]
        return found


def _version(entry: dict, *, is_delete_marker: bool) -> ObjectVersion:
    return ObjectVersion(
        key=entry["Key"],
        version_id=entry.get("VersionId") or "null",
        last_modified=entry["LastModified"].astimezone(UTC),
        is_delete_marker=is_delete_marker,
        is_latest=entry.get("IsLatest", False),
        size=entry.get("Size", 0),
    )


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
