"""Object versions and delete markers: listing them, deleting exactly them, reading their locks.

Erasure in a versioned bucket means removing every version id and every
delete marker, so the store works in versions, never in plain keys.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

# S3's DeleteObjects cap; moto does not enforce it, we do.
MAX_KEYS_PER_DELETE = 1000


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


class Versions:
    """``list_versions``, ``delete_versions`` and ``lock`` of ``S3Store``."""

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
