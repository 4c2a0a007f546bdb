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
from datetime import datetime

from lifecycle.connections import hmac_key
from lifecycle.erasure.certificates import Certificates
from lifecycle.erasure.notices import ErasureNotices
from lifecycle.erasure.records import StepDone, StepPlan, StepRecords, batch_entries, step_plans
from lifecycle.erasure.steps import Step, erasure_steps
from lifecycle.errors import LifecycleError
from lifecycle.heap import loaded_objects_frozen
from lifecycle.sharing.deletions import Asked, DeletionRequests, erasure_recipients
from lifecycle.stores.contract import Selection

log = logging.getLogger(__name__)


class BatchErasure:
    def __init__(self, config, state, stores, notices: ErasureNotices, certificates: Certificates):
        self.config, self.catalog, self.state, self.stores = config, config.catalog, state, stores
        self.notices, self.certificates = notices, certificates

    def erase(self, batch: str, as_of: datetime, *, run_id: str | None = None) -> dict:
        """Erase one batch; steps and notices already recorded are not repeated."""
        with loaded_objects_frozen():
            return self._erase(batch, as_of, run_id)

    def _erase(self, batch: str, as_of: datetime, run_id: str | None) -> dict:
        records = self.state.erasures.erasing(batch)
        subjects = [r.subject_id for r in records]
        if not subjects:
            return {"batch": batch, "subjects": 0}
        held = {h.subject_id for h in self.state.holds.active(as_of.date())} & set(subjects)
        if held:
            self.state.erasures.set_state(held, "held", "put under legal hold before erasure", unbatch=True)
            subjects = [s for s in subjects if s not in held]
        recorder = StepRecords(self.state.ledger, batch, run_id)
        steps = erasure_steps(self.config)
        *linked, own_row = steps
        tables = [s for s in linked if self.catalog.dataset(s.dataset).is_table]
        objects = [s for s in linked if s not in tables]
        with ThreadPoolExecutor(1, thread_name_prefix="objects") as pool:
            erasing = pool.submit(self._erase_objects, StepRecords(self.state.ledger, batch, run_id), objects, subjects)
            for step in tables:
                self._apply(recorder, step, subjects)
            recorder.flush()
            erasing.result()
        failed = self._verify(batch, linked, subjects)
        ok = [s for s in subjects if s not in failed]
        notified = self._notify_completed(batch, steps, [r for r in records if r.subject_id in ok], run_id)
        self._apply(recorder, own_row, ok)
        recorder.flush()
        failed.update(self._verify(batch, [own_row], ok))
        ok = [s for s in ok if s not in failed]
        recipients = self._ask_recipients(batch, ok, run_id)
        written = self.certificates.issue(batch, steps, [r for r in records if r.subject_id in ok], run_id)
        if failed:
            reasons = sorted(set(failed.values()))
            self.state.erasures.set_state(set(failed), "failed", "; ".join(reasons)[:2000])
            raise LifecycleError(
                f"batch {batch}: {len(failed)} subject(s) failed verification: " + "; ".join(reasons[:5])
            )
        done = {"batch": batch, "subjects": len(ok), "held": len(held), "certificates": written, "notices": notified}
        return {**done, "deletion_requests": recipients} if recipients else done

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

    def _apply(self, recorder: StepRecords, step: Step, subjects: list[str]) -> None:
        """Record what a table step removes per subject before it is committed, then record that it did.

        The DELETE (or the anonymizing UPDATE) runs in a transaction that
        reports the rows per subject (``before_commit``); the plan is appended
        to the ledger, and only then is the data transaction committed.  A
        crash before the plan rolls the step back; after it, the rerun reuses the plan.
        """
        if not subjects or recorder.done(step.dataset):
            return
        store = self.stores.of(step.dataset)
        selection = Selection(subjects=tuple(subjects))

        def plan(counts: dict, keys: list) -> None:
            recorder.plan(StepPlan(step.dataset, step.action, rows=counts, keys=tuple(keys), basis=step.basis))

        if step.action == "delete":
            change = store.delete(step.dataset, selection, before_commit=plan)
        else:
            fields = [f for f in self.catalog.personal_fields(step.dataset) if f.spec.anonymize]
            key = hmac_key(self.catalog) if any(f.spec.anonymize.strategy == "hmac" for f in fields) else None
            change = store.anonymize(step.dataset, selection, fields, hmac_key=key, unlink=True, before_commit=plan)
        recorder.record_done(StepDone(step.dataset, step.action, rows=change.rows))
        log.info("%s: %s %d row(s) of %d subject(s)", step.dataset, step.action + "d", change.rows, len(subjects))

    def _erase_objects(self, recorder: StepRecords, steps: list[Step], subjects: list[str]) -> None:
        """Delete every version and marker under the subjects' prefixes, dataset by dataset:
        the plan (versions per subject) in the ledger first, then the deletes, then
        what was deleted and what Object Lock kept.  Runs beside the table steps, with a
        recorder of its own (a recorder holds its done records back for its next plan)."""
        for step in steps:
            if not subjects or recorder.done(step.dataset):
                continue

            def plan(counts: dict, _keys, dataset=step.dataset) -> None:
                versions = {s: n for s, n in counts.items() if s is not None and n}
                recorder.plan(StepPlan(dataset, "delete", versions=versions))

            change = self.stores.of(step.dataset).delete(
                step.dataset, Selection(subjects=tuple(subjects)), before_commit=plan
            )
            locked: dict[str, list] = {}
            for kept in change.kept:
                lock = {k: kept.detail.get(k) for k in ("mode", "legal_hold", "retain_until")}
                locked.setdefault(kept.subject, []).append(lock)
            recorder.record_done(StepDone(step.dataset, "delete", versions=change.rows, locked=locked))
            log.info(
                "%s: deleted %d object version(s) and marker(s); %d locked", step.dataset, change.rows, len(change.kept)
            )
        recorder.flush()

    def _verify(self, batch: str, steps: list[Step], subjects: list[str]) -> dict[str, str]:
        """Subjects something identifying still reaches, with the reason."""
        failed: dict[str, str] = {}
        if not subjects:
            return failed
        plans = step_plans(batch_entries(self.state.ledger, batch))
        mine = Selection(subjects=tuple(subjects))
        for step in steps:
            store = self.stores.of(step.dataset)
            if not self.catalog.dataset(step.dataset).is_table:
                for subject, n in store.remaining(step.dataset, mine).by_subject.items():
                    failed[subject] = f"{step.dataset}: {n} object version(s) remain"
                continue
            for subject, n in store.count_by_subject(step.dataset, mine).items():
                failed[subject] = f"{step.dataset}: {n} row(s) still reach the subject"
            keys = plans[step.dataset].keys if step.dataset in plans else ()
            fields = tuple(f.column for f in self.catalog.personal_fields(step.dataset) if f.spec.anonymize)
            if keys and fields:
                left = store.count(step.dataset, Selection(keys=tuple(keys), pending_anonymization=fields))
                for subject in subjects if left else ():
                    failed.setdefault(subject, f"{step.dataset}: {left} anonymized row(s) still hold personal values")
        return failed
