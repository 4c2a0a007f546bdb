"""One way to carry out an erasure step, whatever asked for it (cancellation erasure, a
person's erase request) and whatever store holds the dataset: plan → commit → record → verify.

A ``Work`` is one step as data: the dataset, the action, the rows (a
``Selection``), the fields an anonymization rewrites and whether it clears the
subject link.  ``StepExecutor.apply`` sends it through the store contract's
``delete`` / ``anonymize``; inside the store's transaction, ``before_commit``
hands the rows (or object versions) per subject to ``StepRecords.plan``, which
appends the plan to the ledger before the data commits; the done record
follows with the next plan (``records``).  A step already done is skipped, so
a killed run resumes.  ``verify`` checks what each action promises:

* deleted: no selected row (object version) still reaches its person;
* anonymized, link cleared: no selected row reaches the person any more, and
  the rows the plan rewrote hold their fields' anonymized values;
* anonymized, link kept (and the subject's own row): every selected row that
  reaches the person holds its fields' anonymized values.

A store answers these through the contract only; reads of one verification
share the store's ``snapshot()``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace

from lifecycle.catalog import PersonalField
from lifecycle.connections import hmac_key
from lifecycle.erasure.records import StepDone, StepPlan, StepRecords
from lifecycle.errors import LifecycleError
from lifecycle.stores.contract import Change, Selection, anonymizing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Work:
    """One erasure step as the executor takes it."""

    dataset: str
    action: str  # delete | anonymize
    selection: Selection  # the rows or objects it changes (by subjects, floors, references)
    fields: tuple[PersonalField, ...] = ()  # anonymize: the fields rewritten
    clear_link: bool = False  # anonymize: also clear the subject link (the row then reaches nobody)
    basis: str | None = None  # why anonymized rows are kept (a statutory floor), for the plan record


@dataclass(frozen=True)
class Leftover:
    """What verification found still there, and whose it is."""

    dataset: str
    count: int
    what: str
    subjects: tuple[str, ...]

    @property
    def reason(self) -> str:
        return f"{self.dataset}: {self.count} {self.what}"


class StepExecutor:
    """Erasure steps of one batch through the store contract, each recorded by ``recorder``."""

    def __init__(self, catalog, stores, recorder: StepRecords, *, label: str = ""):
        self.catalog, self.stores, self.recorder, self.label = catalog, stores, recorder, label

    def apply(self, work: Work) -> Change | None:
        """Plan in the ledger before the change commits, done record after; None: done before
        (or nobody to erase)."""
        if work.selection.subjects is None:
            raise LifecycleError(f"{work.dataset}: an erasure step selects its rows by subjects, none were given")
        if not work.selection.subjects or self.recorder.done(work.dataset):
            return None
        store = self.stores.of(work.dataset)
        table = self.catalog.dataset(work.dataset).is_table

        def plan(counts: dict, keys: list) -> None:
            if table:
                self.recorder.plan(StepPlan(work.dataset, work.action, rows=counts, keys=tuple(keys), basis=work.basis))
            else:
                versions = {s: n for s, n in counts.items() if s is not None and n}
                self.recorder.plan(StepPlan(work.dataset, "delete", versions=versions))

        if work.action == "delete":
            change = store.delete(work.dataset, work.selection, before_commit=plan)
        else:
            change = anonymizing(store, work.dataset).anonymize(
                work.dataset,
                work.selection,
                list(work.fields),
                hmac_key=self._key(work.fields),
                unlink=work.clear_link,
                before_commit=plan,
            )
        self.recorder.record_done(_done(work, table, change))
        what = "row(s)" if table else "object version(s) and marker(s)"
        log.info("%s%s: %s %d %s", self.label, work.dataset, work.action, change.rows, what)
        return change

    def run(self, works: list[Work]) -> None:
        """Each step in order, then every record appended."""
        for work in works:
            self.apply(work)
        self.recorder.flush()

    def flush(self) -> None:
        self.recorder.flush()

    def _key(self, fields) -> bytes | None:
        keyed = any(f.spec.anonymize and f.spec.anonymize.strategy == "hmac" for f in fields)
        return hmac_key(self.catalog) if keyed else None

    def verify(self, works: list[Work]) -> list[Leftover]:
        """What each step's action promises, checked again (see the module docstring)."""
        found: list[Leftover] = []
        with reading(self.stores, [w.dataset for w in works]):
            for work in works:
                if work.selection.subjects != ():
                    found += self._check(work)
        return found

    def _check(self, work: Work) -> list[Leftover]:
        store = self.stores.of(work.dataset)
        if not self.catalog.dataset(work.dataset).is_table:
            left = store.remaining(work.dataset, work.selection).by_subject
            return _per_subject(work.dataset, left, "object version(s) remain")
        columns = tuple(f.column for f in work.fields)
        if work.action == "anonymize" and not work.clear_link:
            pending = replace(work.selection, pending_anonymization=columns)
            left = store.count_by_subject(work.dataset, pending)
            return _per_subject(work.dataset, left, "row(s) reaching the subject still hold personal values")
        found = _per_subject(
            work.dataset, store.count_by_subject(work.dataset, work.selection), "row(s) still reach the subject"
        )
        plan = self.recorder.plan_of(work.dataset) if work.action == "anonymize" else None
        if plan is not None and plan.keys and columns:
            n = store.count(work.dataset, Selection(keys=plan.keys, pending_anonymization=columns))
            if n:
                subjects = tuple(work.selection.subjects or ())
                found.append(Leftover(work.dataset, n, "anonymized row(s) still hold personal values", subjects))
        return found


@contextlib.contextmanager
def reading(stores, datasets: list[str]):
    """Inside, the reads of these datasets' stores share each store's ``snapshot()``."""
    with contextlib.ExitStack() as reads:
        for store in {id(s): s for s in (stores.of(name) for name in datasets)}.values():
            reads.enter_context(store.snapshot())
        yield


def _per_subject(dataset: str, counts: dict[str, int], what: str) -> list[Leftover]:
    return [Leftover(dataset, n, what, (subject,)) for subject, n in counts.items() if n]


def _done(work: Work, table: bool, change: Change) -> StepDone:
    """The done record: rows changed, or versions deleted and, per subject, the Object Lock that kept the rest."""
    if table:
        return StepDone(work.dataset, work.action, rows=change.rows)
    locked: dict[str, list] = {}
    for kept in change.kept:
        lock = {k: kept.detail.get(k) for k in ("mode", "legal_hold", "retain_until")}
        locked.setdefault(kept.subject, []).append(lock)
    return StepDone(work.dataset, "delete", versions=change.rows, locked=locked)
