"""Verification: count again after the apply tasks; nothing expired may remain but held,
statutory, referenced and locked items.

A dataset whose batches are not all recorded (its apply task failed) is reported as
incomplete, not verified: its task failed the run already.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lifecycle.errors import LifecycleError
from lifecycle.evidence import retention_batch, retention_partition_drop, retention_run
from lifecycle.retention.plan import DatasetPlan, Plan
from lifecycle.retention.selections import Holds, keeping_referenced, rule_selection
from lifecycle.state import StateStore


@dataclass(frozen=True)
class Checked:
    """One dataset's verdict: counted again, or why it was not."""

    error: str | None = None  # could not be planned
    skipped: str | None = None  # "guardrail": nothing was applied
    incomplete: int | None = None  # batches not recorded
    remaining: int = 0  # expired items left that nothing explains
    held: int = 0
    kept: dict[str, int] = field(default_factory=dict)  # the store's kept items by reason
    detached: tuple[str, ...] = ()  # partitions dropped by the plan that still exist (must be none)

    def to_json(self) -> dict:
        if self.error is not None:
            return {"error": self.error}
        if self.skipped is not None:
            return {"skipped": self.skipped}
        if self.incomplete is not None:
            return {"incomplete": self.incomplete}
        found = {"remaining": self.remaining, "held": self.held, **self.kept}
        return {**found, "partitions_left": list(self.detached)} if self.detached else found


def verify_plan(plan: Plan, holds: Holds, stores, state: StateStore, *, dag_id: str | None) -> dict[str, Checked]:
    """Check every dataset of the plan and ledger the verdicts; raise if something expired is left."""
    checked = _checked(plan, holds, stores, state)
    found = _problems(checked)
    state.ledger.append(
        "retention.verify",
        {"datasets": {name: c.to_json() for name, c in checked.items()}, "ok": not found},
        dag_id=dag_id,
        run_id=plan.run_id,
    )
    if found:
        raise LifecycleError("verification failed:\n  " + "\n  ".join(found))
    return checked


def _checked(plan: Plan, holds: Holds, stores, state: StateStore) -> dict[str, Checked]:
    recorded = state.ledger.keys_with_prefix(retention_run(plan.run_id))
    checked = {}
    for d in plan.datasets:
        if d.error:
            checked[d.dataset] = Checked(error=d.error)
        elif d.guardrail == "blocked":
            checked[d.dataset] = Checked(skipped="guardrail")
        else:
            drops = {
                p.name: state.ledger.find(retention_partition_drop(p.run_id or plan.run_id, d.dataset, p.name))
                for p in d.drops
            }
            missing = sum(
                retention_batch(plan.run_id, d.dataset, low, high) not in recorded for low, high, _ in d.ranges
            ) + sum(entry is None for entry in drops.values())
            if missing:
                checked[d.dataset] = Checked(incomplete=missing)
                continue
            dropped = [name for name, entry in drops.items() if entry.kind == "retention.drop_partition"]
            checked[d.dataset] = _count_again(d, holds, stores(d.system), dropped)
    return checked


def _count_again(d: DatasetPlan, holds: Holds, store, dropped: list[str]) -> Checked:
    """Count again; and the partitions the run dropped must be gone (none left detached)."""
    held = holds[d.dataset]
    with store.snapshot():
        left = store.remaining(
            d.dataset,
            keeping_referenced(rule_selection(d, held), holds) if d.action == "delete" else rule_selection(d, held),
        )
        held_left = (
            store.count(d.dataset, rule_selection(d)) - store.count(d.dataset, rule_selection(d, held)) if held else 0
        )
    left_over = [name for name in dropped if store.partition_state(d.dataset, name) != "gone"]
    return Checked(remaining=left.items, held=held_left, kept=dict(left.kept), detached=tuple(left_over))


def _problems(checked: dict[str, Checked]) -> list[str]:
    return [
        f"{name}: {c.remaining} expired item(s) remain that are neither held, "
        "under a statutory floor, referenced nor locked"
        for name, c in checked.items()
        if c.remaining
    ] + [
        f"{name}: partition(s) {', '.join(c.detached)} were dropped by the plan but still exist"
        for name, c in checked.items()
        if c.detached
    ]
