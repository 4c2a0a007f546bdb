"""Making the plan: per dataset a rule covers, the cutoff from the run's time, the statutory
floor, counts of what goes and of what stays and why (``counting``), the partitions that go
whole (``partitioning``), the key ranges, and the apply stage."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from lifecycle.clock import iso_utc
from lifecycle.config import Config
from lifecycle.config.retention import RetentionRule
from lifecycle.errors import LifecycleError, is_transient
from lifecycle.floors import statutory_floors
from lifecycle.retention.counting import count_dataset, log_counted
from lifecycle.retention.partitioning import planned_partitions
from lifecycle.retention.plan import DatasetPlan, Plan
from lifecycle.retention.selections import Holds, held_subjects, keeping_referenced, rule_selection
from lifecycle.retention.shape import stages_of
from lifecycle.state import StateStore
from lifecycle.stores.contract import References, Selection

log = logging.getLogger(__package__)  # one logger for the package: the CLI filters it by name


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
        log_counted(counted)
        return counted

    def _count(self, entry: DatasetPlan, holds: Holds, going: dict[str, Selection]) -> DatasetPlan:
        if entry.error:
            raise LifecycleError(entry.error)
        held = holds.get(entry.dataset, ())
        store = self.stores(entry.system)
        retention = self.config.retention
        rule = next((r for r in retention.rules if r.name == entry.rule), None)
        with store.snapshot():
            acting = going.get(entry.dataset) or rule_selection(entry, held)
            partitions = planned_partitions(
                entry, store, acting, holds, drops=rule is not None and rule.drops_partitions, state=self.state
            )
            return count_dataset(
                entry,
                store,
                held=held,
                acting=acting,
                partitions=partitions,
                batch_size=retention.batch_size,
                max_fraction=retention.max_fraction_per_run,
            )

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
