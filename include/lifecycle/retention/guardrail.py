"""The guardrail between plan and apply, and the work units it lets through.

A dataset that would lose more than ``max_fraction_per_run`` stops the whole run before
anything changes, unless this run overrides it with a reason; both go to the ledger.
"""

from __future__ import annotations

import dataclasses
import logging

from lifecycle.config import Config
from lifecycle.errors import LifecycleError
from lifecycle.evidence import retention_guardrail, retention_override
from lifecycle.retention.plan import DatasetPlan, Plan, Unit, UnplannedUnit
from lifecycle.retention.shape import retention_systems, stages_of, unit_group
from lifecycle.state import StateStore
from lifecycle.stores.contract import KeyRange

log = logging.getLogger(__package__)  # one logger for the package: the CLI filters it by name


def gate(plan: Plan, state: StateStore, *, override: bool, reason: str, dag_id: str | None) -> None:
    """Raise if a dataset would lose more than the limit and this run does not override it."""
    blocked = [d for d in plan.datasets if d.guardrail in ("blocked", "overridden")]
    if not blocked:
        return
    events = [{"dataset": d.dataset, "fraction": d.fraction, "to_remove": d.to_act, "total": d.total} for d in blocked]
    if not override:
        state.ledger.append(
            "retention.guardrail",
            {"blocked": events, "limit": plan.max_fraction},
            dag_id=dag_id,
            run_id=plan.run_id,
            key=retention_guardrail(plan.run_id),
        )
        raise LifecycleError(_refusal(plan, blocked))
    if len(reason.strip()) < 10:
        raise LifecycleError("override_guardrail is set, so override_reason must say why (at least 10 characters)")
    state.ledger.append(
        "retention.guardrail_override",
        {"datasets": events, "limit": plan.max_fraction, "reason": reason.strip()},
        dag_id=dag_id,
        run_id=plan.run_id,
        key=retention_override(plan.run_id),
    )
    for d in blocked:
        log.warning("guardrail overridden for %s (%.1f%%): %s", d.dataset, 100 * d.fraction, reason.strip())


def overridden(plan: Plan, state: StateStore) -> Plan:
    """The plan as this run's override left it: the datasets it let through are
    ``overridden``, so verification counts them again and the report says so.  The plan
    is recorded before the guardrail runs; the override is its own ledger entry."""
    entry = state.ledger.find(retention_override(plan.run_id))
    if entry is None:
        return plan
    through = {event["dataset"] for event in entry.payload["datasets"]}
    datasets = tuple(
        dataclasses.replace(d, guardrail="overridden") if d.dataset in through and d.guardrail == "blocked" else d
        for d in plan.datasets
    )
    return dataclasses.replace(plan, datasets=datasets)


def _refusal(plan: Plan, blocked: list[DatasetPlan]) -> str:
    lines = [
        f"{d.dataset}: {d.to_act:,} of {d.total:,} rows ({100 * d.fraction:.1f}%) is more than "
        f"max_fraction_per_run {100 * plan.max_fraction:g}%"
        for d in blocked
    ]
    return (
        "guardrail stopped the run before any change:\n  "
        + "\n  ".join(lines)
        + "\nIf this is intended, trigger the run with override_guardrail=true and an override_reason."
    )


def units(plan: Plan, config: Config, partitions: int) -> dict[str, list[Unit | UnplannedUnit]]:
    """Work units per (system, stage): a dataset's key ranges in up to ``partitions``
    contiguous groups; a dataset that could not be planned gets one unit that fails
    (its own task, not the others)."""
    groups: dict[str, list[Unit | UnplannedUnit]] = {
        unit_group(s, i): [] for s in retention_systems(config) for i in range(stages_of(config, s))
    }
    for d in plan.datasets:
        group = groups[unit_group(d.system, d.stage)]
        if d.error:
            group.append(UnplannedUnit(d.dataset, d.error))
        elif d.to_act or d.drops:
            group.extend(_parts(d, partitions))
    return groups


def _parts(d: DatasetPlan, partitions: int) -> list[Unit]:
    """The ranges in up to ``partitions`` contiguous parts, and the partitions that go whole in a
    part of their own before them, so that the drops (the file system freeing whole tables) run
    beside the row path of the boundary partition rather than ahead of it in one task."""
    ranges = min(partitions, len(d.ranges))
    size = -(-len(d.ranges) // ranges) if ranges else 0
    work = [((), d.ranges[part * size : (part + 1) * size]) for part in range(ranges)]
    if d.drops or not work:
        work.insert(0, (d.drops, ()))
    return [
        Unit(
            dataset=d.dataset,
            action=d.action,
            cutoff=d.effective_cutoff,
            fields=d.fields,
            part=part,
            parts=len(work),
            ranges=tuple(KeyRange(*r) for r in chosen),
            drops=drops,
            skip=d.dropped_spans,
        )
        for part, (drops, chosen) in enumerate(work)
    ]
