"""A batch's evidence in the ledger: each step's plan before its change is committed,
and its done record after, under ``erasure:<batch>:<dataset>:plan|done``.

``StepPlan`` and ``StepDone`` are those records as types; their JSON (the
ledger payloads, hashed into the chain) is written and read here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lifecycle.evidence import erasure_batch, erasure_step
from lifecycle.state.ledger import Entry, Ledger, Record


@dataclass(frozen=True)
class StepPlan:
    """What a step removes, per subject: rows of a table (with the keys of rows an
    anonymizing step rewrites, for verification), or object versions and markers."""

    dataset: str
    action: str  # delete | anonymize
    rows: dict[str, int] | None = None  # table steps
    keys: tuple = ()
    basis: str | None = None  # why an anonymized dataset is kept
    versions: dict[str, int] | None = None  # object steps

    @property
    def empty(self) -> bool:
        """Nothing to change: no rows, no keys, no versions."""
        return not (self.rows or self.keys or self.versions)

    def payload(self) -> dict:
        if self.versions is not None:
            return {"action": self.action, "versions": self.versions}
        return {"action": self.action, "rows": self.rows, "keys": list(self.keys), "basis": self.basis}

    @classmethod
    def of(cls, entry: Entry) -> StepPlan:
        p = entry.payload
        return cls(
            p["dataset"], p["action"], p.get("rows"), tuple(p.get("keys") or ()), p.get("basis"), p.get("versions")
        )


@dataclass(frozen=True)
class StepDone:
    """What a step did: rows changed, or versions deleted and those Object Lock kept (per subject)."""

    dataset: str
    action: str
    rows: int | None = None
    versions: int | None = None
    locked: dict[str, list[dict]] = field(default_factory=dict)

    def payload(self) -> dict:
        if self.versions is not None:
            return {"action": self.action, "versions": self.versions, "locked": self.locked}
        return {"action": self.action, "rows": self.rows}

    @classmethod
    def of(cls, entry: Entry) -> StepDone:
        p = entry.payload
        return cls(
            p["dataset"],
            p["action"],
            p.get("rows") if "versions" not in p else None,
            p.get("versions"),
            p.get("locked") or {},
        )


@dataclass(frozen=True)
class StepEvidence:
    """A step's two records as the ledger holds them (either may be missing)."""

    plan: StepPlan | None
    done: StepDone | None
    hashes: tuple[str, ...]  # the entries that back them
    completed_at: str | None  # when the done record was recorded


def batch_entries(ledger: Ledger, batch: str) -> dict[str, Entry]:
    """The batch's records by key (one query)."""
    return {e.idempotency_key: e for e in ledger.entries_with_prefix(erasure_batch(batch))}


def step_evidence(entries: dict[str, Entry], batch: str, dataset: str) -> StepEvidence:
    """One step's plan and done records among ``batch_entries``."""
    plan, done = (entries.get(erasure_step(batch, dataset, what)) for what in ("plan", "done"))
    return StepEvidence(
        StepPlan.of(plan) if plan else None,
        StepDone.of(done) if done else None,
        tuple(e.entry_hash for e in (plan, done) if e),
        done.recorded_at if done else None,
    )


def step_plans(entries: dict[str, Entry]) -> dict[str, StepPlan]:
    """Every step plan of a batch, by dataset."""
    return {e.payload["dataset"]: StepPlan.of(e) for e in entries.values() if e.kind == "erasure.plan"}


class StepRecords:
    """A batch's plan and done records in the ledger, each step's *done* held back to be
    appended with the next step's plan: one commit for the two.

    A crash between a step's commit and the append of its done record leaves
    the step planned and not done, whether or not that record was held: the
    rerun does the step again under the plan recorded, and finds its rows
    and versions gone.  ``flush`` before anything reads the done records.
    """

    def __init__(self, ledger: Ledger, batch: str, run_id: str | None, recorded: set[str] | None = None):
        self.ledger, self.batch, self.run_id = ledger, batch, run_id
        self.recorded = set(recorded) if recorded is not None else ledger.keys_with_prefix(erasure_batch(batch))
        self._held: list[Record] = []
        self._plans: dict[str, StepPlan] = {}  # recorded by this process, or read back once

    def sibling(self) -> StepRecords:
        """A recorder of the same batch for another thread: what is recorded so far, its own held records."""
        return StepRecords(self.ledger, self.batch, self.run_id, self.recorded)

    def done(self, dataset: str) -> bool:
        return erasure_step(self.batch, dataset, "done") in self.recorded

    def plan(self, plan: StepPlan) -> None:
        """Append the step's plan (unless a run before recorded it), with the done records held.
        A plan of nothing is held too: no change waits on it, so it goes with the next append."""
        key = erasure_step(self.batch, plan.dataset, "plan")
        self._plans.setdefault(plan.dataset, plan)
        if key in self.recorded:
            self._append([])
        elif plan.empty:
            self._held.append(self._record("plan", plan.dataset, plan.payload()))
            self.recorded.add(key)
        else:
            self._append([self._record("plan", plan.dataset, plan.payload())])

    def plan_of(self, dataset: str) -> StepPlan | None:
        """The step's plan: as this process recorded it, else as the ledger holds it (read once)."""
        if dataset not in self._plans and erasure_step(self.batch, dataset, "plan") in self.recorded:
            self.flush()
            for name, found in step_plans(batch_entries(self.ledger, self.batch)).items():
                self._plans.setdefault(name, found)
        return self._plans.get(dataset)

    def record_done(self, done: StepDone) -> None:
        record = self._record("done", done.dataset, done.payload())
        self._held.append(record)
        self.recorded.add(record.key)

    def _record(self, what: str, dataset: str, payload: dict) -> Record:
        """``erasure.<what>`` of a step, under ``erasure:<batch>:<dataset>:<what>``, naming both."""
        return Record(
            f"erasure.{what}",
            {"batch": self.batch, "dataset": dataset, **payload},
            erasure_step(self.batch, dataset, what),
        )

    def flush(self) -> None:
        self._append([])

    def _append(self, records: list[Record]) -> None:
        records, self._held = self._held + records, []
        if records:
            self.ledger.append_many(records, run_id=self.run_id)
            self.recorded.update(r.key for r in records)
