"""Applying one unit, range by range: each range is committed by its store and then recorded,
so a resumed run skips what is done and counts nothing twice.

Deleting keeps rows that rows still in place point at (children went in earlier stages):
a parent is never removed from under a row that stays, whether its foreign key would refuse
or cascade.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace

from lifecycle.catalog import Catalog
from lifecycle.connections import hmac_key
from lifecycle.evidence import partition_mark, retention_batch, retention_dataset_batches, retention_partition_drop
from lifecycle.retention.plan import PartitionPlan, Unit
from lifecycle.retention.selections import Holds, expired, held_pairs
from lifecycle.state import StateStore
from lifecycle.stores.contract import Change, KeyRange, PartitionBatches, Selection, TablePartition, anonymizing

log = logging.getLogger(__package__)  # one logger for the package: the CLI filters it by name


@dataclass(frozen=True)
class BatchRecord:
    """What one applied range did, as the ledger keeps it.  ``locked`` is None where the store
    reported no objects, requests or kept items: then none of the three is recorded."""

    dataset: str
    low: object
    high: object
    rows: int
    seconds: float
    objects: int = 0
    requests: int = 0
    locked: tuple[dict, ...] | None = None  # the store's detail of each locked version

    @classmethod
    def of(cls, dataset: str, key_range: KeyRange, change: Change, seconds: float) -> BatchRecord:
        record = cls(dataset, key_range.low, key_range.high, change.rows, seconds)
        if change.objects or change.kept or change.requests:
            locked = tuple(k.detail for k in change.kept if k.reason == "locked")
            record = replace(record, objects=change.objects, requests=change.requests, locked=locked)
        return record

    def to_json(self) -> dict:
        data = {"dataset": self.dataset, "low": self.low, "high": self.high, "rows": self.rows, "seconds": self.seconds}
        if self.locked is not None:
            data.update(objects=self.objects, requests=self.requests, locked=list(self.locked))
        return data

    @classmethod
    def from_json(cls, data: dict) -> BatchRecord:
        """The record's own fields out of a ledger entry (a drop's entry names its partition too)."""
        own = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        locked = own.get("locked")
        return cls(**own | {"locked": tuple(locked) if locked is not None else None})


@dataclass(frozen=True)
class Applied:
    """One unit's outcome, what its task returns (counts only)."""

    dataset: str
    action: str
    rows: int
    batches: int
    resumed: int
    objects: int = 0
    locked: int = 0

    def to_json(self) -> dict:
        data = asdict(self)
        if not (self.objects or self.locked):
            del data["objects"], data["locked"]
        return data


def unit_selection(unit: Unit, holds: Holds) -> Selection:
    """What the unit's ranges are cut from: the rule's rows, every hold known to the store
    (a delete keeps what rows that stay point at)."""
    return replace(
        expired(unit.action, unit.fields, unit.cutoff_at, holds[unit.dataset]),
        kept_if_referenced=unit.action == "delete",
        held=held_pairs(holds),
        created_not_in=unit.skipped_spans,
    )


def apply_unit(
    unit: Unit,
    *,
    run_id: str,
    holds: Holds,
    store,
    catalog: Catalog,
    state: StateStore,
    dag_id: str | None,
) -> Applied:
    """Apply ``unit`` through ``store``; ranges already recorded for this run are skipped."""
    name, action = unit.dataset, unit.action
    selection = unit_selection(unit, holds)
    fields = [f for f in catalog.personal_fields(name) if f.column in unit.fields]
    key_material = (
        hmac_key(catalog)
        if action == "anonymize" and any(f.spec.anonymize.strategy == "hmac" for f in fields)
        else None
    )
    finished = state.ledger.keys_with_prefix(retention_dataset_batches(run_id, name))
    with Trailing(state) as records:
        done, skipped = drop_partitions(
            name, unit.drops, selection, run_id=run_id, store=store, records=records, finished=finished, dag_id=dag_id
        )
        applied = _apply_ranges(unit, selection, fields, key_material, store, records, finished, run_id, dag_id)
    skipped += applied.resumed
    if skipped:
        log.info("%s: %d batch(es) were already done in an earlier attempt of this run", name, skipped)
    return replace(applied, rows=applied.rows + done, batches=applied.batches + len(unit.drops), resumed=skipped)


class Trailing:
    """Ledger records appended one behind the work: a batch's record is appended by a helper
    thread while the next batch's change runs, so the commit of the record is off the path.
    At most one record is in flight, in order; its failure surfaces at the next record or at
    the end.  A process killed meanwhile loses at most that one batch's record, as one killed
    between a commit and its record always could: the rerun redoes the range and finds nothing.
    ``sync`` waits for what is in flight and appends at once (a mark that must come first).
    Where the ledger is a SQLite file, appends stay in line (one writer at a time)."""

    def __init__(self, state: StateStore):
        self.ledger = state.ledger
        self.inline = state.engine.dialect.name == "sqlite"
        self.pool = None if self.inline else ThreadPoolExecutor(1, thread_name_prefix="ledger")
        self.pending: Future | None = None

    def __enter__(self) -> Trailing:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.wait()
        finally:
            if self.pool is not None:
                self.pool.shutdown()

    def append(self, kind: str, payload: dict, **where) -> None:
        self.wait()
        if self.inline:
            self.ledger.append(kind, payload, **where)
        else:
            self.pending = self.pool.submit(self.ledger.append, kind, payload, **where)

    def sync(self, kind: str, payload: dict, **where):
        self.wait()
        return self.ledger.append(kind, payload, **where)

    def find(self, key: str):
        self.wait()
        return self.ledger.find(key)

    def wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()


def _apply_ranges(unit, selection, fields, key_material, store, records, finished, run_id, dag_id) -> Applied:
    name, action = unit.dataset, unit.action
    done = skipped = objects = locked = 0
    for i, key_range in enumerate(unit.ranges, 1):
        key = retention_batch(run_id, name, key_range.low, key_range.high)
        if key in finished:
            skipped += 1
            continue
        started = time.monotonic()
        batch = replace(selection, within=key_range)
        if action == "delete":
            change = store.delete(name, batch)
        else:
            change = anonymizing(store, name).anonymize(name, batch, fields, hmac_key=key_material)
        seconds = round(time.monotonic() - started, 3)
        record = BatchRecord.of(name, key_range, change, seconds)
        records.append(f"retention.{action}", record.to_json(), dag_id=dag_id, run_id=run_id, key=key)
        done, objects, locked = done + change.rows, objects + change.objects, locked + len(change.kept)
        log.info(
            "%s: batch %d/%d (keys %s..%s, part %d/%d): %d %sd in %.2fs%s",
            name,
            i,
            len(unit.ranges),
            key_range.low,
            key_range.high,
            unit.part + 1,
            unit.parts,
            change.rows,
            action,
            seconds,
            f"; {len(change.kept)} locked version(s) kept" if change.kept else "",
        )
    return Applied(name, action, done, len(unit.ranges), skipped, objects, locked)


DROPPERS = 2  # partitions dropped side by side: a drop's time is the file system freeing its files


def drop_partitions(
    dataset: str,
    parts: tuple[PartitionPlan, ...],
    selection: Selection,
    *,
    run_id: str,
    store,
    records: Trailing,
    finished: set[str],
    dag_id: str | None,
) -> tuple[int, int]:
    """Drop partitions whole: for each, look again (holds are read when the task runs) for rows
    that must stay, and mark it in the ledger; then drop the marked ones: a lake table's in one
    commit (``PartitionBatches``), a database's detached and dropped up to ``DROPPERS`` at a time
    (detaches take their turn on the parent's lock; the DROPs overlap); record each drop with
    the rows counted at plan.  A partition that now holds a held or still-referenced row is not
    dropped: its selected rows are deleted in one statement instead.  A drop an earlier run
    marked (``part.run_id``) is finished and recorded under that run.  Returns (rows, skipped)."""
    done = skipped = 0
    batched = isinstance(store, PartitionBatches)
    with ThreadPoolExecutor(DROPPERS, thread_name_prefix="drop") as pool:
        going = []
        for part in parts:
            run = part.run_id or run_id
            key = retention_partition_drop(run, dataset, part.name)
            if key in finished or (part.run_id and records.find(key) is not None):
                skipped += 1
                continue
            started = time.monotonic()
            low, high = part.span
            probe = TablePartition(part.name, low, high)
            if part.run_id is None and (keeps := store.partition_keeps(dataset, probe, selection)):
                done += _delete_kept(
                    dataset,
                    part,
                    selection,
                    keeps,
                    started,
                    store=store,
                    records=records,
                    run_id=run_id,
                    key=key,
                    dag_id=dag_id,
                )
                continue
            _mark(records, dataset, part, run, dag_id)
            dropping = None if batched else pool.submit(store.drop_partition, dataset, part.name)
            going.append((part, run, key, started, dropping))
        if batched and going:  # every marked partition in one commit
            store.drop_partitions(dataset, [part.name for part, *_ in going])
        for part, run, key, started, dropping in going:
            if dropping is not None:
                dropping.result()
            record = {**BatchRecord(dataset, part.low, part.high, part.rows, _since(started)).to_json()}
            record |= {"partition": part.name, **_estimated(part)}
            records.append("retention.drop_partition", record, dag_id=dag_id, run_id=run, key=key)
            log.info("%s: partition %s dropped (%s) in %.2fs", dataset, part.name, part.counted, record["seconds"])
            done += part.rows
    return done, skipped


def _mark(records: Trailing, dataset: str, part: PartitionPlan, run: str, dag_id: str | None) -> None:
    """The ledger's word, synced before the drop, that ``run`` drops ``part``: a later run finishes it."""
    mark = {
        "dataset": dataset,
        "partition": part.name,
        "low": part.low,
        "high": part.high,
        "rows": part.rows,
        "run_id": run,
        **_estimated(part),
    }
    marked = partition_mark(dataset, part.name, run)
    records.sync("retention.partition_marked", mark, dag_id=dag_id, run_id=run, key=marked)


def _estimated(part: PartitionPlan) -> dict:
    """What a record adds when its rows are the statistics' estimate (nothing when counted)."""
    return {"estimated": True} if part.estimated else {}


def _delete_kept(dataset, part, selection, keeps, started, *, store, records, run_id, key, dag_id) -> int:
    """A partition that must stay after all: its selected rows deleted in one statement."""
    low, high = part.span
    change = store.delete(dataset, replace(selection, created_not_in=((None, low), (high, None))))
    record = {
        **BatchRecord(dataset, part.low, part.high, change.rows, _since(started)).to_json(),
        "partition": part.name,
    }
    records.append("retention.delete", record, dag_id=dag_id, run_id=run_id, key=key)
    log.warning(
        "%s: partition %s now holds %s: kept, %d expired row(s) deleted", dataset, part.name, keeps, change.rows
    )
    return change.rows


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
