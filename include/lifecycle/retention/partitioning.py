"""Which partitions of a deleting dataset's table go whole in a run, and the drops earlier runs
marked and did not finish."""

from __future__ import annotations

import logging
from dataclasses import replace

from lifecycle.clock import iso_utc, naive_utc
from lifecycle.evidence import partition_marks, retention_partition_drop
from lifecycle.retention.plan import DatasetPlan, PartitionPlan
from lifecycle.retention.selections import Holds, keeping_referenced
from lifecycle.state import StateStore
from lifecycle.stores.contract import PartitionEstimates, Partitions, Selection, TablePartition

log = logging.getLogger(__package__)  # one logger for the package: the CLI filters it by name


def _iso(value) -> str | None:
    return iso_utc(value) if value is not None else None


def planned_partitions(
    entry: DatasetPlan, store, acting: Selection, holds: Holds, *, drops: bool, state: StateStore
) -> tuple[PartitionPlan, ...]:
    """The table's partitions that reach back before the effective cutoff: those wholly before
    it that hold nothing held or still referenced go whole (their rows counted here, once, or
    read from current statistics);
    the boundary partition and kept ones go row by row.  Then the drops earlier runs marked
    and did not finish.  ``drops``: the rule lets partitions go whole."""
    if entry.action != "delete" or not drops or not isinstance(store, Partitions):
        return ()
    cutoff = naive_utc(entry.effective_cutoff_at)
    delete = keeping_referenced(acting, holds, acting.going_with)
    planned = []
    for part in store.partitions(entry.dataset):
        if part.low is not None and part.low >= cutoff:
            continue
        plan = PartitionPlan(part.name, _iso(part.low), _iso(part.high))
        if part.state != "attached":
            planned.append(replace(plan, why=f"{part.state}, not by the lifecycle: left as it is"))
        elif part.high is None or part.high > cutoff:
            planned.append(replace(plan, why="reaches past the cutoff: its expired rows go row by row"))
        elif keeps := store.partition_keeps(entry.dataset, part, delete):
            planned.append(replace(plan, why=f"holds {keeps}: its other expired rows go row by row"))
        else:
            rows, estimated = _rows(store, entry.dataset, part)
            why = "wholly before the cutoff, nothing in it held or still referenced: dropped whole"
            planned.append(replace(plan, rows=rows, estimated=estimated, go=True, why=why))
    for part in planned:
        counted = f" ({part.counted})" if part.go else ""
        log.info("plan: %s: partition %s%s: %s", entry.dataset, part.name, counted, part.why)
    return tuple(planned) + unfinished_drops(entry, store, state)


def _rows(store, dataset: str, part: TablePartition) -> tuple[int, bool]:
    """A partition's rows and whether they are an estimate: from the database's statistics where
    they are current for it (no scan of a partition about to go), else counted."""
    if isinstance(store, PartitionEstimates):
        estimate = store.partition_rows_estimate(dataset, part)
        if estimate is not None:
            return estimate, True
    return store.partition_rows(dataset, part), False


def unfinished_drops(entry: DatasetPlan, store, state: StateStore) -> tuple[PartitionPlan, ...]:
    """Drops an earlier run marked but did not record: the table may be left detached, which
    would keep personal data out of every later selection; this run finishes them."""
    marks = state.ledger.entries_with_prefix(partition_marks(entry.dataset))
    recorded = state.ledger.keys_among(
        [retention_partition_drop(m.payload["run_id"], entry.dataset, m.payload["partition"]) for m in marks]
    )
    closed = {  # a partition is dropped once: a drop recorded by any run closes every mark of it
        m.payload["partition"]
        for m in marks
        if retention_partition_drop(m.payload["run_id"], entry.dataset, m.payload["partition"]) in recorded
    }
    found = []
    for mark in marks:
        run, name = mark.payload["run_id"], mark.payload["partition"]
        if name in closed:
            continue
        state_now = store.partition_state(entry.dataset, name)
        if state_now == "attached":
            continue  # never detached: this run's own plan judges it again
        why = (
            f"marked for dropping by run {run} and left {state_now}: dropped now"
            if state_now != "gone"
            else f"dropped by run {run}, which did not record it: recorded now"
        )
        log.warning("plan: %s: partition %s: %s", entry.dataset, name, why)
        low, high, rows = mark.payload["low"], mark.payload["high"], mark.payload["rows"]
        found.append(PartitionPlan(name, low, high, rows, True, why, run, mark.payload.get("estimated", False)))
    return tuple(found)
