"""Deleting object datasets' keys version by version; a version under Object Lock is kept and
reported with its retain-until date, never retried forever."""

from __future__ import annotations

from datetime import UTC, datetime

from lifecycle.errors import TerminalStoreError, TransientStoreError
from lifecycle.stores.contract import BeforeCommit, Change, Kept, Selection
from lifecycle.stores.s3.failures import TRANSIENT_CODES
from lifecycle.stores.s3.versions import DeleteError, ObjectVersion


class Deletion:
    """``delete`` of ``S3Store`` (objects are not anonymized: it is no ``Anonymizing`` store)."""

    def delete(self, dataset: str, selection: Selection, *, before_commit: BeforeCommit | None = None) -> Change:
        """Delete every version and marker of the selected keys (candidates from an inventory
        confirmed key by key first).

        ``before_commit(versions_per_subject, [])`` is called after the listing
        and before the first delete; if it raises, nothing is deleted.  A
        version S3 refuses to delete is *kept* when its Object Lock holds now
        (S3's clock); any other refusal fails the call after the rest of the
        versions were tried: transient if S3 said so (SlowDown, 5xx), else terminal.
        """
        chosen = self._select(dataset, selection)
        if self._planned_from_inventory(dataset, selection):  # a day old: judge each candidate on S3's word now
            chosen = self._filter(dataset, selection, self.confirm(dataset, chosen))
        self._forget_listings()
        versions = [v for key in sorted(chosen) for v in chosen[key]]
        if before_commit is not None:
            per_subject: dict[str, int] = {}
            for version in versions:
                subject = self.catalog.subject_of_key(dataset, version.key)
                per_subject[subject] = per_subject.get(subject, 0) + 1
            before_commit(per_subject, [])
        outcome = self.delete_versions(versions, dataset=dataset)
        change = Change(rows=len(outcome.deleted), requests=outcome.requests)
        refused = self._keep_locked(dataset, versions, outcome.errors, change)
        emptied = {v.key for v in outcome.deleted} - {e.key for e in outcome.errors}
        change.objects = len(emptied)
        if refused:
            kind = TransientStoreError if any(e.code in TRANSIENT_CODES for e in refused) else TerminalStoreError
            sample = ", ".join(f"{e.key} ({e.code})" for e in refused[:5])
            raise kind(
                self.system,
                dataset,
                f"delete object versions in s3://{self.bucket}",
                f"{len(refused)} version(s) not deleted and not under Object Lock: {sample}",
            )
        return change

    def _keep_locked(
        self, dataset: str, versions: list[ObjectVersion], errors: list[DeleteError], change: Change
    ) -> list[DeleteError]:
        """Versions S3 refused that their Object Lock holds now go to ``change.kept``; the other
        refusals are returned."""
        by_id = {(v.key, v.version_id): v for v in versions}
        refused, now = [], datetime.now(UTC)
        for error in errors:
            version = by_id[(error.key, error.version_id)]
            lock = self.lock(version, dataset=dataset)
            if not lock.active_at(now):
                refused.append(error)
                continue
            detail = {
                "key": version.key,
                "version": version.version_id,
                "mode": lock.mode,
                "legal_hold": lock.legal_hold,
                "retain_until": lock.retain_until.isoformat() if lock.retain_until else None,
            }
            change.kept.append(Kept("locked", self.catalog.subject_of_key(dataset, version.key), detail))
        return refused
