"""Lake copies of an erased batch: the rows a step deleted or anonymized in an Iceberg or Delta
table stay in its older snapshots and in files no snapshot needs, until a purge removes them.

Before a batch's lake steps commit, each is recorded *pending purge* in the ledger
(``erasure:<batch>:<dataset>:purge_pending``): the run's logical time as the
deleting commit's, the due time (that + the system's ``purge_after``) and the
people's link values as the deleting call resolved them (two hops: the parent
rows are erased next, and verification must still know what to look for).
``settle`` purges what is due at the run's time (``Purging.purge``), reads every
data file under the table's location for those values
(``StorageVerification.stored``), which must find none (rows an anonymization kept under
their link: none with a field not yet anonymized), and records the counts
(``...:purged``): snapshots expired, files removed, bytes freed, files and bytes
read.  A batch is certified once every purge of it is recorded; until then its
people are *purging*.  A purge is idempotent, so a run killed anywhere is
finished by the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lifecycle.clock import aware_utc, iso_utc
from lifecycle.errors import LifecycleError
from lifecycle.evidence import erasure_batch, erasure_step
from lifecycle.state.ledger import Entry, Record
from lifecycle.stores.contract import Purging, StorageVerification

PENDING, PURGED = "purge_pending", "purged"

#: what a purge record carries into the certificate
COUNTS = ("snapshots_expired", "files_removed", "bytes_freed", "files_read", "bytes_read")


@dataclass(frozen=True)
class PendingPurge:
    batch: str
    dataset: str
    deleted_at: datetime
    due: datetime
    links: dict[str, str]  # {link value: subject}
    anonymized: tuple[str, ...] = ()  # fields the rows keep anonymized under the kept link

    @classmethod
    def of(cls, entry: Entry) -> PendingPurge:
        p = entry.payload
        due, deleted = (datetime.fromisoformat(p[k]) for k in ("due", "deleted_at"))
        return cls(p["batch"], p["dataset"], deleted, due, dict(p["links"]), tuple(p.get("anonymized", ())))


def purge_evidence(entries: dict[str, Entry], batch: str, dataset: str) -> tuple[dict | None, tuple[str, ...]]:
    """A lake step's purge as a certificate shows it (None: not a lake step) and the entries behind it."""
    pending, purged = (entries.get(erasure_step(batch, dataset, what)) for what in (PENDING, PURGED))
    if pending is None:
        return None, ()
    if purged is None:
        return {"state": "pending purge", "due": pending.payload["due"]}, (pending.entry_hash,)
    counts = {k: purged.payload[k] for k in COUNTS}
    return {"state": "purged", "purged_at": purged.recorded_at, **counts}, (pending.entry_hash, purged.entry_hash)


class Purges:
    """The pending purges of erasure batches, recorded and settled through the lake stores."""

    def __init__(self, catalog, state, stores):
        self.catalog, self.state, self.stores = catalog, state, stores

    def lake(self, dataset: str) -> bool:
        store = self.stores.of(dataset)
        return isinstance(store, Purging) and isinstance(store, StorageVerification)

    def expect(
        self,
        batch: str,
        datasets: list[str],
        subjects: list[str],
        as_of: datetime,
        run_id,
        kept: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        """Record each lake dataset of the batch *pending purge*, before its step commits (once).
        ``kept``: datasets whose rows stay under the people's link, anonymized (their fields):
        storage may hold those rows, only not with a field still as it was."""
        recorded = self.state.ledger.keys_with_prefix(erasure_batch(batch))
        records = []
        for dataset in datasets:
            key = erasure_step(batch, dataset, PENDING)
            if key in recorded or not self.lake(dataset):
                continue
            after = self.catalog.systems[self.catalog.dataset(dataset).system].purge_after
            links = self.stores.of(dataset).links.values(dataset, subjects)
            payload = {
                "batch": batch,
                "dataset": dataset,
                "deleted_at": iso_utc(as_of),
                "due": iso_utc(after.after(aware_utc(as_of))),
                "links": links,
                **({"anonymized": list(kept[dataset])} if kept and dataset in kept else {}),
            }
            records.append(Record(f"erasure.{PENDING}", payload, key))
        if records:
            self.state.ledger.append_many(records, run_id=run_id)

    def settle(self, batch: str, as_of: datetime, run_id) -> list[datetime]:
        """Purge and verify the batch's lake datasets due by ``as_of``; the due times of those still pending."""
        entries = {e.idempotency_key: e for e in self.state.ledger.entries_with_prefix(erasure_batch(batch))}
        waiting, failed, as_of = [], [], aware_utc(as_of)
        for entry in entries.values():
            if entry.kind != f"erasure.{PENDING}":
                continue
            pending = PendingPurge.of(entry)
            if erasure_step(batch, pending.dataset, PURGED) in entries:
                continue
            if pending.due > as_of:
                waiting.append(pending.due)
                continue
            done = entries.get(erasure_step(batch, pending.dataset, "done"))
            committed_by = datetime.fromisoformat(done.recorded_at) if done is not None else None
            left = self._purge(pending, as_of, committed_by, run_id)
            if left:
                failed.append(f"{pending.dataset}: {left} row(s) of the batch's people still in storage")
        if failed:
            raise LifecycleError(f"batch {batch}: purge verification failed: " + "; ".join(failed))
        return waiting

    def _purge(self, pending: PendingPurge, as_of: datetime, committed_by: datetime | None, run_id) -> int:
        """Purge one dataset; the people's rows storage still holds (recorded when 0).
        ``committed_by``: when the step's done record was written (wall clock), after its commit."""
        store = self.stores.of(pending.dataset)
        purge = store.purge(pending.dataset, deleted_at=pending.deleted_at, at=as_of, committed_by=committed_by)
        subjects = tuple(sorted(set(pending.links.values())))
        stored = store.stored(pending.dataset, subjects, values=pending.links, anonymized=pending.anonymized)
        if stored.rows:
            return stored.rows
        counts = (purge.snapshots_expired, purge.files_removed, purge.bytes_freed, stored.files, stored.bytes)
        self.state.ledger.append(
            f"erasure.{PURGED}",
            {"batch": pending.batch, "dataset": pending.dataset, **dict(zip(COUNTS, counts, strict=True))},
            run_id=run_id,
            key=erasure_step(pending.batch, pending.dataset, PURGED),
        )
        return 0
