"""A batch's evidence in the ledger: each step's plan before its change is committed,
and its done record after, under ``erasure:<batch>:<dataset>:plan|done``."""

from __future__ import annotations

from lifecycle.evidence import erasure_batch, erasure_step
from lifecycle.state.ledger import Entry, Ledger, Record


def batch_entries(ledger: Ledger, batch: str) -> dict[str, Entry]:
    """The batch's records by key (one query)."""
    return {e.idempotency_key: e for e in ledger.entries_with_prefix(erasure_batch(batch))}


def step_entry(entries: dict[str, Entry], batch: str, dataset: str, what: str) -> Entry | None:
    """A step's ``plan`` or ``done`` record among ``batch_entries``."""
    return entries.get(erasure_step(batch, dataset, what))


class StepRecords:
    """A batch's plan and done records in the ledger, each step's *done* held back to be
    appended with the next step's plan: one commit for the two.

    A crash between a step's commit and the append of its done record leaves
    the step planned and not done, whether or not that record was held: the
    rerun does the step again under the plan recorded, and finds its rows
    and versions gone.  ``flush`` before anything reads the done records.
    """

    def __init__(self, ledger: Ledger, batch: str, run_id: str | None):
        self.ledger, self.batch, self.run_id = ledger, batch, run_id
        self.recorded = ledger.keys_with_prefix(erasure_batch(batch))
        self._held: list[Record] = []

    def done(self, dataset: str) -> bool:
        return erasure_step(self.batch, dataset, "done") in self.recorded

    def plan(self, dataset: str, payload: dict) -> None:
        """Append the step's plan (unless a run before recorded it), with the done records held."""
        key = erasure_step(self.batch, dataset, "plan")
        self._append([] if key in self.recorded else [self._record("plan", dataset, payload)])

    def record_done(self, dataset: str, payload: dict) -> None:
        record = self._record("done", dataset, payload)
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
