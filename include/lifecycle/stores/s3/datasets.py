"""Object datasets: a key with all its versions is the unit, expired by its newest version or
marker, owned by the subject its prefix template names.  Listings are grouped by key and,
inside ``snapshot()``, shared by every read of the same scope."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from lifecycle.clock import aware_utc
from lifecycle.stores.contract import ALL, KeyRange, Remaining, Selection
from lifecycle.stores.s3.versions import ObjectVersion


class ObjectDatasets:
    """The contract's reading verbs of ``S3Store``, and the selection of keys its deletes act on."""

    list_budget = 1000  # entries one listing request returns: what listing one subject's prefix costs
    list_concurrency = 8  # subjects' prefixes listed side by side (the system's ``list_concurrency``)
    _snapshot: dict | None = None  # scope -> listing, inside snapshot()

    @contextlib.contextmanager
    def snapshot(self):
        """Reads inside see one listing per dataset and selection scope: a plan counts several
        selections of the same objects, and each listing costs a request per 1,000 entries."""
        self._snapshot = {}
        try:
            yield
        finally:
            self._snapshot = None

    def _forget_listings(self) -> None:
        """After a delete, what a snapshot listed is gone."""
        self._snapshot = {} if self._snapshot is not None else None

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

    def tally(self, dataset: str, selection: Selection, within: Selection = ALL) -> tuple[int, int]:
        """(keys of ``within``, of those the keys ``selection`` takes), from one listing in a snapshot."""
        return self.count(dataset, within), self.count(dataset, selection)

    def units(self, dataset: str, selection: Selection, size: int, *, expected: int | None = None) -> list[KeyRange]:
        """The selected keys in ranges of ``size`` keys (S3 lists keys in this order)."""
        keys = sorted(self._select(dataset, selection))
        return [
            KeyRange(part[0], part[-1], len(part)) for part in (keys[i : i + size] for i in range(0, len(keys), size))
        ]

    def remaining(self, dataset: str, selection: Selection) -> Remaining:
        """Keys still selected that hold a version or marker S3 would let go now; locked versions apart.
        Listed from the bucket, never from an inventory: verification judges what is there now."""
        left = Remaining(0)
        now, locked = datetime.now(UTC), 0
        for key, versions in self._select(dataset, selection, fresh=True).items():
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

    def _select(self, dataset: str, selection: Selection, *, fresh: bool = False) -> dict[str, list[ObjectVersion]]:
        """The keys the selection takes, each with all its versions and markers (from the dataset's
        inventory where it has one, unless ``fresh``)."""
        return self._filter(dataset, selection, self._listing(dataset, selection.subjects, selection.within, fresh))

    def _planned_from_inventory(self, dataset: str, selection: Selection) -> bool:
        return selection.subjects is None and self._inventory_spec(dataset) is not None

    def _filter(
        self, dataset: str, selection: Selection, listing: dict[str, list[ObjectVersion]]
    ) -> dict[str, list[ObjectVersion]]:
        excluded = set(selection.exclude_subjects)
        wanted = set(selection.subjects) if selection.subjects is not None else None
        keys = set(selection.keys) if selection.keys is not None else None
        older = aware_utc(selection.older_than) if selection.older_than else None
        window = tuple(map(aware_utc, selection.created_within)) if selection.created_within else None
        chosen = {}
        for key, versions in listing.items():
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

    def _listing(
        self, dataset: str, subjects: tuple | None, within: KeyRange | None = None, fresh: bool = False
    ) -> dict[str, list[ObjectVersion]]:
        """Every version and marker of the dataset (of ``subjects`` only, if given), by key, listed
        once per scope inside a snapshot; from its inventory for a whole-dataset read, unless ``fresh``."""
        scope = (dataset, subjects, within, fresh)
        if self._snapshot is not None and scope in self._snapshot:
            return self._snapshot[scope]
        groups = None
        if subjects is None and not fresh and self._inventory_spec(dataset) is not None:
            groups = self._from_inventory(dataset, datetime.now(UTC))
            if groups is not None and within is not None:
                groups = {k: v for k, v in groups.items() if within.low <= k <= within.high}
        if groups is None:
            groups = self._list_all(dataset, within) if subjects is None else self._list_subjects(dataset, subjects)
        if self._snapshot is not None:
            self._snapshot[scope] = groups
        return groups

    def _list_all(self, dataset: str, within: KeyRange | None) -> dict[str, list[ObjectVersion]]:
        """The dataset's static prefix; a key range from its bounds' common prefix, stopping past its last key."""
        if within is None:
            return _by_key(self.list_versions(self.catalog.static_prefix(dataset), dataset=dataset))
        common = os.path.commonprefix([within.low, within.high])  # noqa: RUF071  (keys, not paths)
        listed = self.list_versions(common, dataset=dataset, last=within.high)
        return _by_key(v for v in listed if v.key >= within.low)

    def _list_subjects(self, dataset: str, subjects: tuple) -> dict[str, list[ObjectVersion]]:
        """The subjects' keys: the dataset's static prefix is listed once while that stays within
        what listing each subject's prefix would take (``list_budget`` entries a request, the
        subjects' listings ``list_concurrency`` at a time); past that, each subject's prefix."""
        rounds = -(-max(len(subjects), 1) // max(self.list_concurrency, 1))
        wanted, budget = set(subjects), self.list_budget * rounds
        groups: dict[str, list[ObjectVersion]] = {}
        for n, version in enumerate(self.list_versions(self.catalog.static_prefix(dataset), dataset=dataset)):
            if n >= budget:
                return _by_key(
                    self._list_prefixes(dataset, [self.catalog.subject_prefix(dataset, s) for s in subjects])
                )
            if self.catalog.subject_of_key(dataset, version.key) in wanted:
                groups.setdefault(version.key, []).append(version)
        return groups

    def _list_prefixes(self, dataset: str, prefixes: list[str]) -> Iterable[ObjectVersion]:
        """Every version under each prefix, up to ``list_concurrency`` listings side by side (each
        a request per 1,000 entries that waits on S3).  All or nothing: the first listing that
        fails fails the call with its own error, which names its prefix and is classified like
        any listing's; the listings still waiting are cancelled."""
        if self.list_concurrency <= 1 or len(prefixes) <= 1:
            return itertools.chain.from_iterable(self.list_versions(p, dataset=dataset) for p in prefixes)
        with ThreadPoolExecutor(min(self.list_concurrency, len(prefixes)), thread_name_prefix="s3-list") as pool:
            listings = [pool.submit(lambda p: list(self.list_versions(p, dataset=dataset)), p) for p in prefixes]
            try:
                return list(itertools.chain.from_iterable(listing.result() for listing in listings))
            except BaseException:
                for listing in listings:
                    listing.cancel()
                raise


def _by_key(versions: Iterable[ObjectVersion]) -> dict[str, list[ObjectVersion]]:
    groups: dict[str, list[ObjectVersion]] = {}
    for version in versions:
        groups.setdefault(version.key, []).append(version)
    return groups
