"""Counting one dataset's plan: what its rule takes, what stays and why, and its key ranges.

Each expired row is counted once.  One pass over the table counts its rows and, of those, the
rows past the effective cutoff (``tally``); the held rows are counted through the subject link
(an index where the schema has one), the rows under a statutory floor over the band between the
two cutoffs, and the rows kept because rows that stay point at them by one pass where the
dataset is referenced at all.  What the run takes is the difference, exact, so the guardrail
decides on the same numbers as before.  The key ranges are cut from the expired, not held rows
without those counts again (``units`` with ``expected``: on PostgreSQL from a sample of pages);
what each range deletes is counted by its own delete, and the report sums those.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from lifecycle.retention.plan import DatasetPlan, PartitionPlan, Reference
from lifecycle.retention.selections import rule_selection
from lifecycle.stores.contract import ALL, Selection

log = logging.getLogger(__package__)  # one logger for the package: the CLI filters it by name


def _spans(spans) -> tuple:
    """Spans of ISO text as a selection's ``created_not_in`` (datetimes)."""
    return tuple((datetime.fromisoformat(low) if low else None, datetime.fromisoformat(high)) for low, high in spans)


def count_dataset(
    entry: DatasetPlan,
    store,
    *,
    held: tuple[str, ...],
    acting: Selection,
    partitions: tuple[PartitionPlan, ...],
    batch_size: int,
    max_fraction: float,
) -> DatasetPlan:
    """``entry`` with its counts, key ranges and guardrail verdict.  A partition dropped whole
    was counted once, by the partition plan: the other counts leave its span out."""
    entry = replace(entry, partitions=partitions)
    dropped = sum(p.rows for p in entry.drops if p.run_id is None)
    skip = _spans(entry.dropped_spans)

    def outside(selection: Selection) -> Selection:
        return replace(selection, created_not_in=skip)

    name = entry.dataset
    total, eligible = store.tally(name, outside(rule_selection(entry)), outside(ALL))
    under_floor = 0
    if entry.cutoff != entry.effective_cutoff:  # the band between the floor's cutoff and the rule's
        band = rule_selection(entry, older_than=entry.cutoff_at)
        under_floor = store.count(name, replace(band, created_not_in=((None, entry.effective_cutoff_at), *skip)))
    held_rows = store.count(name, outside(replace(rule_selection(entry), subjects=held))) if held else 0
    referenced = store.kept_by_references(name, outside(acting)) if acting.kept_if_referenced else 0
    act = eligible - held_rows - referenced + dropped
    ranges = store.units(name, outside(rule_selection(entry, held)), batch_size, expected=eligible - held_rows)
    total += dropped
    fraction = round(act / total, 6) if total else 0.0
    return replace(
        entry,
        total=total,
        candidates=eligible + dropped + under_floor,
        under_floor=under_floor,
        held=held_rows,
        referenced=referenced,
        references=references(entry, store, acting) if referenced else [],
        to_delete=act if entry.action == "delete" else 0,
        to_anonymize=act if entry.action != "delete" else 0,
        fraction=fraction,
        guardrail="blocked" if fraction > max_fraction else "ok",
        ranges=tuple(tuple(r.as_list()) for r in ranges),
    )


def references(entry: DatasetPlan, store, acting: Selection) -> list[Reference]:
    """Which datasets keep this dataset's expired rows, and how many each (a row may count twice)."""
    found = []
    for ref in store.references(entry.dataset):
        rows = store.referenced(entry.dataset, acting, ref) if ref.protects else 0
        if rows:
            found.append(
                Reference(
                    dataset=ref.dataset,
                    columns=list(ref.columns),
                    on_delete=ref.on_delete,
                    subject_link=ref.link,
                    rows=rows,
                )
            )
            log.warning(
                "plan: %s: %d expired row(s) kept: referenced by rows of %s (%s) that stay",
                entry.dataset,
                rows,
                ref.dataset,
                ", ".join(ref.columns),
            )
    return found


def log_counted(counted: DatasetPlan) -> None:
    log.info(
        "plan: %s (%s, %s after %s): %d candidates, %d under floor, %d held, %d kept as referenced, "
        "%d to %s of %d (%.1f%%) in %d range(s)",
        counted.dataset,
        counted.rule,
        counted.action,
        counted.keep,
        counted.candidates,
        counted.under_floor,
        counted.held,
        counted.referenced,
        counted.to_act,
        counted.action,
        counted.total,
        100 * counted.fraction,
        len(counted.ranges),
    )
