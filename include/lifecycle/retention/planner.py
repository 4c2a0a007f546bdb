"""Making the plan: per dataset a rule covers, the cutoff from the run's time, the statutory
floor, counts of what goes and of what stays and why, the key ranges, and the apply stage."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from lifecycle.clock import iso_utc, naive_utc
from lifecycle.config import Config
from lifecycle.config.models import RetentionRule
from lifecycle.errors import LifecycleError, is_transient
from lifecycle.evidence import partition_marks, retention_partition_drop
from lifecycle.floors import statutory_floors
from lifecycle.retention.plan import DatasetPlan, PartitionPlan, Plan, Reference
from lifecycle.retention.selections import Holds, held_subjects, keeping_referenced, rule_selection
from lifecycle.retention.shape import stages_of
from lifecycle.state import StateStore
from lifecycle.stores.contract import ALL, Partitions, References, Selection

log = logging.getLogger(__package__)  # one logger for the package: the CLI filters it by name


def _iso(value) -> str | None:
    return iso_utc(value) if value is not None else None


def _spans(spans) -> tuple:
    """Spans of ISO text as a selection's ``created_not_in`` (datetimes)."""
    return tuple((datetime.fromisoformat(low) if low else None, datetime.fromisoformat(high)) for low, high in spans)


class Target(NamedTuple):
    rule: RetentionRule
    dataset: str
    fields: list[str]  # the fields the rule's strategy rewrites


def _own_failure(exc: Exception) -> bool:
    """A dataset's own terminal failure: recorded in its entry while the other datasets go on."""
    return isinstance(exc, LifecycleError) and not is_transient(exc)


class Planner:
    """Plans a run from the configuration, the legal holds of its day and counts in the stores."""

    def __init__(self, config: Config, state: StateStore, stores):
        self.config = config
        self.catalog = config.catalog
        self.state = state
        self.stores = stores

    def targets(self) -> list[Target]:
        """Every dataset a rule covers, in catalog order."""
        return [
            Target(rule, dataset, [f.column for f in fields if f.spec.anonymize])
            for rule in self.config.retention.rules
            for dataset, fields in self.catalog.rule_targets(
                rule.applies_to.categories, rule.applies_to.datasets, rule.action
            ).items()
        ]

    def plan(self, run_id: str, as_of: datetime) -> Plan:
        retention = self.config.retention
        entries = [self._entry(target, as_of) for target in self.targets()]
        holds = held_subjects(self.state, self.catalog, as_of.date())
        going, errors = self._going(entries, holds)
        entries = [self._counted(replace(e, error=errors.get(e.dataset, e.error)), holds, going) for e in entries]
        return Plan(
            run_id,
            iso_utc(as_of),
            retention.batch_size,
            retention.max_fraction_per_run,
            tuple(self._staged(entries, going)),
        )

    def _entry(self, target: Target, as_of: datetime) -> DatasetPlan:
        rule, dataset = target.rule, target.dataset
        system = self.catalog.dataset(dataset).system
        cutoff = rule.keep.before(as_of)
        floor_cutoff, floor = self._floor(dataset, as_of)
        return DatasetPlan(
            dataset=dataset,
            system=system,
            store=self.catalog.systems[system].type,
            rule=rule.name,
            action=rule.action,
            keep=str(rule.keep),
            cutoff=iso_utc(cutoff),
            effective_cutoff=iso_utc(min(cutoff, floor_cutoff) if floor_cutoff else cutoff),
            floor=floor.name if floor else None,
            basis=floor.basis if floor else None,
            floor_cutoff=iso_utc(floor_cutoff) if floor_cutoff else None,
            fields=tuple(target.fields) if rule.action == "anonymize" else (),
        )

    def _floor(self, dataset: str, as_of: datetime):
        """The statutory minimum over ``dataset`` whose cutoff is earliest (the longest)."""
        floors = statutory_floors(self.config, dataset, as_of)
        return (floors[0].cutoff, floors[0]) if floors else (None, None)

    def _going(self, entries: list[DatasetPlan], holds: Holds) -> tuple[dict[str, Selection], dict[str, str]]:
        """Each deleting table dataset's selection in this run, keeping rows that rows staying
        behind still point at; the rows of other deleting datasets that go too do not count
        as staying (children first), which nests their own selections.  Also the datasets
        whose selection could not be built, with the reason."""
        deleting = {
            e.dataset: e for e in entries if e.action == "delete" and isinstance(self.stores(e.system), References)
        }
        built: dict[str, Selection] = {}

        def build(name: str, seen: tuple) -> Selection:
            if name in built:
                return built[name]
            entry = deleting[name]
            children = tuple(
                (ref.dataset, build(ref.dataset, seen + (name,)))
                for ref in self.stores(entry.system).references(name)
                if ref.protects and ref.dataset in deleting and ref.dataset not in seen + (name,)
            )
            built[name] = keeping_referenced(rule_selection(entry, holds.get(name, ())), holds, children)
            return built[name]

        errors = {}
        for name in deleting:
            try:
                build(name, ())
            except Exception as exc:
                if not _own_failure(exc):
                    raise
                errors[name] = str(exc)
        return built, errors

    def _counted(self, entry: DatasetPlan, holds: Holds, going: dict[str, Selection]) -> DatasetPlan:
        """The entry with its counts and guardrail verdict, or with the error that kept it from them."""
        try:
            counted = self._count(entry, holds, going)
        except Exception as exc:
            if not _own_failure(exc):
                raise
            log.error(
                "plan: %s cannot be planned; its apply unit will fail, the other datasets go on: %s",
                entry.dataset,
                exc,
            )
            return replace(entry, error=str(exc))
        log.info(
            "plan: %s (%s, %s after %s): %d candidates, %d under floor, %d held, %d kept as referenced, "
            "%d to %s of %d (%.1f%%)",
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
        )
        return counted

    def _count(self, entry: DatasetPlan, holds: Holds, going: dict[str, Selection]) -> DatasetPlan:
        if entry.error:
            raise LifecycleError(entry.error)
        held = holds.get(entry.dataset, ())
        store = self.stores(entry.system)
        with store.snapshot():
            acting = going.get(entry.dataset) or rule_selection(entry, held)
            entry = replace(entry, partitions=self._partitions(entry, store, acting, holds))
            # a partition dropped whole was counted once (every row of it expired, none held):
            # the other counts leave it out instead of scanning it again
            dropped = sum(p.rows for p in entry.drops if p.run_id is None)
            skip = _spans(entry.dropped_spans)

            def count(selection: Selection = ALL) -> int:
                return store.count(entry.dataset, replace(selection, created_not_in=skip)) + dropped

            total = count()
            candidates = count(rule_selection(entry, older_than=entry.cutoff_at))
            eligible = candidates if entry.cutoff == entry.effective_cutoff else count(rule_selection(entry))
            not_held = count(rule_selection(entry, held)) if held else eligible
            ranges = store.units(entry.dataset, replace(acting, created_not_in=skip), self.config.retention.batch_size)
        act = sum(r.rows for r in ranges) + dropped
        referenced = not_held - act
        fraction = round(act / total, 6) if total else 0.0
        return replace(
            entry,
            total=total,
            candidates=candidates,
            under_floor=candidates - eligible,
            held=eligible - not_held,
            referenced=referenced,
            references=self._references(entry, store, acting) if referenced else [],
            to_delete=act if entry.action == "delete" else 0,
            to_anonymize=act if entry.action != "delete" else 0,
            fraction=fraction,
            guardrail="blocked" if fraction > self.config.retention.max_fraction_per_run else "ok",
            ranges=tuple(tuple(r.as_list()) for r in ranges),
        )

    def _partitions(self, entry: DatasetPlan, store, acting: Selection, holds: Holds) -> tuple[PartitionPlan, ...]:
        """The table's partitions that reach back before the effective cutoff: those wholly before
        it that hold nothing held or still referenced go whole (their rows counted here, once);
        the boundary partition and kept ones go row by row.  Then the drops earlier runs marked
        and did not finish."""
        rule = next((r for r in self.config.retention.rules if r.name == entry.rule), None)
        if entry.action != "delete" or rule is None or not rule.drops_partitions or not isinstance(store, Partitions):
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
                rows = store.partition_rows(entry.dataset, part)
                why = "wholly before the cutoff, nothing in it held or still referenced: dropped whole"
                planned.append(replace(plan, rows=rows, go=True, why=why))
        for part in planned:
            counted = f" ({part.rows:,} rows)" if part.go else ""
            log.info("plan: %s: partition %s%s: %s", entry.dataset, part.name, counted, part.why)
        return tuple(planned) + self._unfinished(entry, store)

    def _unfinished(self, entry: DatasetPlan, store) -> tuple[PartitionPlan, ...]:
        """Drops an earlier run marked but did not record: the table may be left detached, which
        would keep personal data out of every later selection; this run finishes them."""
        marks = self.state.ledger.entries_with_prefix(partition_marks(entry.dataset))
        recorded = self.state.ledger.keys_among(
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
            state = store.partition_state(entry.dataset, name)
            if state == "attached":
                continue  # never detached: this run's own plan judges it again
            why = (
                f"marked for dropping by run {run} and left {state}: dropped now"
                if state != "gone"
                else f"dropped by run {run}, which did not record it: recorded now"
            )
            log.warning("plan: %s: partition %s: %s", entry.dataset, name, why)
            found.append(
                PartitionPlan(name, mark.payload["low"], mark.payload["high"], mark.payload["rows"], True, why, run)
            )
        return tuple(found)

    def _references(self, entry: DatasetPlan, store, acting: Selection) -> list[Reference]:
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

    def _staged(self, entries: list[DatasetPlan], going: dict[str, Selection]) -> list[DatasetPlan]:
        """Each deleting dataset in a stage after the deleting datasets whose rows point at it.

        A system has as many stages as its longest chain of subject links has datasets
        (``stages_of``: the DAG's shape comes from the configuration); foreign keys that chain
        deeper than that fail the datasets above the chain's limit, not the run.
        """
        edges = [(child, name) for name, chosen in going.items() for child, _ in chosen.going_with]
        stage = {e.dataset: 0 for e in entries}
        for _ in range(len(stage)):
            for child, parent in edges:
                stage[parent] = max(stage[parent], stage[child] + 1)
        staged = []
        for entry in entries:
            limit = stages_of(self.config, entry.system)
            error = entry.error
            if stage[entry.dataset] >= limit and not error:
                error = (
                    f"foreign keys chain more than {limit} deleting datasets of system {entry.system!r} "
                    f"up to {entry.dataset}, more than its subject links do; give the datasets at the "
                    "bottom of the chain rules that expire them earlier, or split the rules"
                )
            staged.append(replace(entry, stage=min(stage[entry.dataset], limit - 1), error=error))
        return staged
