"""One batch's erasure through the store contract: tables (deeper links first) and, beside
them on a thread of their own, objects (neither depends on the other; the table steps wait
on the database, the object steps on S3's listings); then verification, the completion
notice, the subject's own row, deletion requests to the recipients that received data
(``sharing.deletions``), certificates.

Every step records its plan before its change is committed and a done record
after (``StepRecords``), so a killed batch resumes without repeating a step
and its certificates keep their counts.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime

from lifecycle.erasure.certificates import Certificates
from lifecycle.erasure.executor import StepExecutor, Work
from lifecycle.erasure.notices import ErasureNotices
from lifecycle.erasure.purge import Purges
from lifecycle.erasure.records import StepRecords, batch_entries
from lifecycle.erasure.steps import Step, erasure_steps
from lifecycle.errors import LifecycleError
from lifecycle.heap import loaded_objects_frozen
from lifecycle.sharing.deletions import Asked, DeletionRequests, erasure_recipients
from lifecycle.stores.contract import Selection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    """What one batch's erasure hands on (the task's XCom): counts only, never a person's id."""

    batch: str
    subjects: int = 0  # erased and verified
    held: int = 0  # put under legal hold since intake: left out
    certificates: int = 0
    notices: dict = field(default_factory=dict)  # completion notices by outcome
    deletion_requests: dict = field(default_factory=dict)  # to recipients that received data

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> BatchResult:
        return cls(**data)


class BatchErasure:
    def __init__(self, config, state, stores, notices: ErasureNotices, certificates: Certificates):
        self.config, self.catalog, self.state, self.stores = config, config.catalog, state, stores
        self.notices, self.certificates = notices, certificates
        self.purges = Purges(self.catalog, state, stores)

    def erase(self, batch: str, as_of: datetime, *, run_id: str | None = None) -> BatchResult:
        """Erase one batch; steps and notices already recorded are not repeated."""
        with loaded_objects_frozen():
            return self._erase(batch, as_of, run_id)

    def _erase(self, batch: str, as_of: datetime, run_id: str | None) -> BatchResult:
        records = self.state.erasures.erasing(batch)
        subjects = [r.subject_id for r in records]
        if not subjects:
            return BatchResult(batch)
        held = {h.subject_id for h in self.state.holds.active(as_of.date())} & set(subjects)
        if held:
            self.state.erasures.set_state(held, "held", "put under legal hold before erasure", unbatch=True)
            subjects = [s for s in subjects if s not in held]
        tables = StepExecutor(self.catalog, self.stores, StepRecords(self.state.ledger, batch, run_id))
        steps = erasure_steps(self.config, as_of)
        *linked, own_row = steps
        works = [self._work(step, subjects) for step in linked]
        on_tables = [w for w in works if self.catalog.dataset(w.dataset).is_table]
        kept = {w.dataset: tuple(f.column for f in w.fields) for w in on_tables if w.fields and not w.clear_link}
        self.purges.expect(batch, [w.dataset for w in on_tables], subjects, as_of, run_id, kept)
        with ThreadPoolExecutor(1, thread_name_prefix="objects") as pool:
            objects = StepExecutor(self.catalog, self.stores, tables.recorder.sibling())
            erasing = pool.submit(objects.run, [w for w in works if w not in on_tables])
            tables.run(on_tables)
            erasing.result()
        failed = self._failed(tables, works)
        ok = [s for s in subjects if s not in failed]
        notified = self._notify_completed(batch, steps, [r for r in records if r.subject_id in ok], run_id)
        own = [self._work(own_row, ok)]
        tables.run(own)
        failed.update(self._failed(tables, own))
        ok = [s for s in ok if s not in failed]
        recipients = self._ask_recipients(batch, ok, run_id)
        written = self._certify(batch, steps, [r for r in records if r.subject_id in ok], as_of, run_id)
        if failed:
            reasons = sorted(set(failed.values()))
            self.state.erasures.set_state(set(failed), "failed", "; ".join(reasons)[:2000])
            raise LifecycleError(
                f"batch {batch}: {len(failed)} subject(s) failed verification: " + "; ".join(reasons[:5])
            )
        return BatchResult(batch, len(ok), len(held), written, notified, recipients)

    def _certify(self, batch: str, steps: list[Step], records: list, as_of: datetime, run_id) -> int:
        """Certify ``records`` once the batch's lake purges due by ``as_of`` are done and verified;
        while one is not due yet, its people are *purging* (the reason says until when)."""
        waiting = self.purges.settle(batch, as_of, run_id)
        if not waiting:
            return self.certificates.issue(batch, steps, records, run_id)
        until = max(waiting).date().isoformat()
        self.state.erasures.set_state({r.subject_id for r in records}, "purging", f"pending purge until {until}")
        return 0

    def purge_due(self, as_of: datetime, run_id: str | None = None) -> dict:
        """Every batch whose people are *purging*: its purges due by ``as_of``, then its
        certificates once none is left (a rerun after a kill finishes either)."""
        batches: dict[str, list] = {}
        for record in self.state.erasures.in_states("purging"):
            batches.setdefault(record.batch, []).append(record)
        steps = erasure_steps(self.config, as_of)
        certified = pending = 0
        for batch, records in sorted(batches.items()):
            waiting = self.purges.settle(batch, as_of, run_id)
            if waiting:
                pending += len(records)
            else:
                certified += self.certificates.issue(batch, steps, records, run_id)
        return {"batches": len(batches), "certified": certified, "pending_purge": pending}

    def _work(self, step: Step, subjects: list[str]) -> Work:
        """A step for these subjects: every row (object) of theirs; anonymized, every personal field
        with a strategy, the link cleared or kept as the catalog says."""
        selection = Selection(subjects=tuple(subjects))
        if step.action != "anonymize":
            return Work(step.dataset, step.action, selection)
        fields = tuple(f for f in self.catalog.personal_fields(step.dataset) if f.spec.anonymize)
        return Work(step.dataset, "anonymize", selection, fields, clear_link=step.link == "clear", basis=step.basis)

    @staticmethod
    def _failed(executor: StepExecutor, works: list[Work]) -> dict[str, str]:
        """Subjects something identifying still reaches, with the reason."""
        failed: dict[str, str] = {}
        for leftover in executor.verify(works):
            for subject in leftover.subjects:
                failed.setdefault(subject, leftover.reason)
        return failed

    def _ask_recipients(self, batch: str, subjects: list[str], run_id: str | None) -> dict:
        """The verified subjects' deletion requests to every recipient that ever received data
        (``sharing.deletions``), one per recipient and batch, before the certificates mark the
        batch done (so a rerun after a kill still finds the batch and its claims)."""
        recipients = erasure_recipients(self.config, self.state) if subjects else []
        if not recipients:
            return {}
        asked = [Asked(r, tuple(subjects)) for r in recipients]
        requests = DeletionRequests(self.config, self.state, self.notices.notifier)
        return requests.send(f"erasure:{batch}", asked, reason="cancellation", run_id=run_id)

    def _notify_completed(self, batch: str, steps: list[Step], records: list, run_id: str | None) -> dict:
        """Tell the verified subjects, before their own row (and address) goes."""
        if not (self.config.cancellation.notify.completed and records):
            return {}
        entries = batch_entries(self.state.ledger, batch)
        retained = self.certificates.retained(entries, steps, {r.subject_id for r in records})
        return self.notices.completed(records, retained, batch, run_id)
