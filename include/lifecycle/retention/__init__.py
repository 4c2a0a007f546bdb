"""Retention expiry: plan, guardrail, apply in batches, verify, report.

The stages live in their own modules and hand each other typed facts (``plan``): the plan
is recorded in the ledger once per run, so a rerun works from the same plan; each applied
batch is recorded under a key of the run and its range (``keys``), so a resumed run skips
what is done and counts nothing twice.  Only ids, ranges and counts leave the package.
Every store is reached through the store contract (``lifecycle.stores.contract``).

``Retention`` is what the DAG's tasks, the CLI and the benchmarks call; its arguments and
results are the JSON that travels through XCom.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lifecycle.config import Config
from lifecycle.errors import LifecycleError
from lifecycle.evidence import retention_failure, retention_plan
from lifecycle.retention import guardrail
from lifecycle.retention.apply import apply_unit
from lifecycle.retention.plan import DatasetPlan, Plan, Unit, UnplannedUnit, unit_from_json
from lifecycle.retention.planner import Planner, Target
from lifecycle.retention.report import write_report
from lifecycle.retention.selections import held_subjects
from lifecycle.retention.shape import retention_systems, stages_of, unit_group
from lifecycle.retention.verify import verify_plan
from lifecycle.state import StateStore

if TYPE_CHECKING:
    from lifecycle.runtime import RunContext
    from lifecycle.stores import Stores

__all__ = [
    "DatasetPlan",
    "Plan",
    "Retention",
    "Target",
    "Unit",
    "UnplannedUnit",
    "retention_systems",
    "stages_of",
    "unit_group",
]

log = logging.getLogger(__name__)


class Retention:
    """Retention over one configuration, its stores and the state store."""

    def __init__(self, config: Config, state: StateStore, open_store=None, *, stores: Stores | None = None):
        from lifecycle.stores import Stores

        self.config = config
        self.catalog = config.catalog
        self.state = state
        self.stores = stores if stores is not None else Stores(self.catalog, open_store)
        self.planner = Planner(config, state, self.stores)

    @classmethod
    def of(cls, ctx: RunContext) -> Retention:
        """The running task's: its configuration, state store and stores, used as they are."""
        return cls(ctx.config, ctx.state, stores=ctx.stores)

    def targets(self) -> list[Target]:
        return self.planner.targets()

    def recorded_plan(self, run_id: str) -> Plan | None:
        """The plan this run recorded (with the datasets its guardrail override let through
        marked ``overridden``), or None when it made none."""
        entry = self.state.ledger.find(retention_plan(run_id))
        return guardrail.overridden(Plan.from_json(entry.payload), self.state) if entry else None

    def plan(self, run_id: str, as_of: datetime, *, dag_id: str | None = None, record: bool = True) -> Plan:
        """The run's plan: recorded once, returned as recorded on a rerun
        (``record=False``: a preview that leaves no trace)."""
        recorded = self.recorded_plan(run_id) if record else None
        if recorded:
            log.info("plan: reusing the plan recorded for run %s", run_id)
            return recorded
        plan = self.planner.plan(run_id, as_of)
        if record:
            self.state.ledger.append(
                "retention.plan", plan.to_json(), dag_id=dag_id, run_id=run_id, key=retention_plan(run_id)
            )
        return plan

    def record_failure(self, run_id: str, step: str, reason: str, *, dag_id: str | None = None) -> None:
        """A step that stopped the run before it could act (preflight, plan), for the report."""
        self.state.ledger.append(
            "retention.failed",
            {"step": step, "reason": reason},
            dag_id=dag_id,
            run_id=run_id,
            key=retention_failure(run_id, step),
        )

    def gate(
        self, plan: Plan, *, override: bool = False, reason: str = "", dag_id: str | None = None
    ) -> dict[str, list[dict]]:
        """Stop the run if a dataset would lose more than ``max_fraction_per_run``,
        unless this run overrides it with a reason; return the work units."""
        guardrail.gate(plan, self.state, override=override, reason=reason, dag_id=dag_id)
        return self.units(plan)

    def units(self, plan: Plan, partitions: int | None = None) -> dict[str, list[dict]]:
        """The work units per ``unit_group``, as XCom carries them."""
        groups = guardrail.units(plan, self.config, partitions or self.config.retention.max_partitions_per_dataset)
        return {group: [unit.to_json() for unit in units] for group, units in groups.items()}

    def apply(self, unit: dict, run_id: str, as_of: datetime, *, dag_id: str | None = None) -> dict:
        """Apply one unit (as ``units`` made it); ranges already recorded for this run are skipped."""
        work = unit_from_json(unit)
        if isinstance(work, UnplannedUnit):
            raise LifecycleError(f"retention of {work.dataset} could not be planned: {work.error}")
        return apply_unit(
            work,
            run_id=run_id,
            store=self.stores.of(work.dataset),
            holds=held_subjects(self.state, self.catalog, as_of.date()),
            catalog=self.catalog,
            state=self.state,
            dag_id=dag_id,
        ).to_json()

    def verify(self, plan: Plan, *, dag_id: str | None = None) -> dict:
        """Count again: nothing expired may remain but held, statutory, referenced and locked items."""
        holds = held_subjects(self.state, self.catalog, datetime.fromisoformat(plan.as_of).date())
        checked = verify_plan(plan, holds, self.stores, self.state, dag_id=dag_id)
        return {name: c.to_json() for name, c in checked.items()}

    def report(
        self,
        run_id: str,
        *,
        as_of: datetime,
        failed_steps: list[str] = (),
        dag_id: str | None = None,
        finished: datetime | None = None,
    ) -> dict:
        """The retention report, written whatever happened to the run."""
        return write_report(
            self.config,
            self.state,
            run_id,
            self.recorded_plan(run_id),
            as_of=as_of,
            failed_steps=failed_steps,
            generated_at=finished or datetime.now(UTC),
            dag_id=dag_id,
        )
