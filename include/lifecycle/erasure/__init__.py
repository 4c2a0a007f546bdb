"""Erasure after account cancellation: intake, notices, batched erasure, verification, certificates.

A subject's request is *pending* during its grace period, *withdrawn* if
withdrawn before the grace ends, *held* under a legal hold, *rejected* if the
subject does not exist, *due* once the grace is over (by the run's time),
then *erasing* in a batch, *purging* (lake copies wait for their purge),
*done* or *failed*.  States live in the state
store.  The stages, each a module here:

* ``lifecycle.cancellations`` (below ``erasure`` and ``sharing``) — the app's
  cancellation requests and who has one open (sharing leaves those people out);
* ``intake`` — states and batches (``IntakeResult``);
* ``steps`` — which datasets, in which order, deleted or anonymized;
* ``executor`` — one erasure step through the store contract, recorded in the
  ledger (``records``) before and after its change, then verified (also what a
  person's erase request runs);
* ``batch`` — one batch's steps, verification and evidence (``BatchResult``);
* ``purge`` — a batch's lake copies: pending purge, then purged and verified
  from storage before the batch is certified;
* ``notices`` — the scheduled and completion e-mails, each at most once;
* ``certificates`` and ``report`` — the evidence.

``Erasure`` builds them once for a task and is what the DAG calls.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lifecycle.config import Config
from lifecycle.erasure.batch import BatchErasure, BatchResult
from lifecycle.erasure.certificates import Certificates
from lifecycle.erasure.intake import IntakeResult, take_in
from lifecycle.erasure.notices import ErasureNotices
from lifecycle.erasure.report import overdue, write_report
from lifecycle.erasure.steps import Step, erasure_steps
from lifecycle.errors import LifecycleError
from lifecycle.state import StateStore

__all__ = ["BatchResult", "Erasure", "IntakeResult", "Step"]


class Erasure:
    """The cancellation erasure's stages over one configuration, state store and set of stores."""

    def __init__(
        self,
        config: Config,
        state: StateStore,
        open_store: Callable[[str], object] | None = None,
        mailer: Callable[[], object] | None = None,
    ):
        from lifecycle.stores import Stores

        if config.cancellation is None:
            raise LifecycleError("cancellation.yaml is not configured")
        self.config, self.state = config, state
        self.stores = Stores(config.catalog, open_store)
        self.notices = ErasureNotices(config, state, self.stores, mailer)
        self.certificates = Certificates(config.catalog, state)

    def steps(self) -> list[Step]:
        return erasure_steps(self.config)

    def intake(self, run_id: str, as_of: datetime) -> IntakeResult:
        return take_in(self.config, self.state, self.stores, run_id, as_of)

    def notify_scheduled(self, run_id: str | None = None) -> dict:
        return self.notices.scheduled(run_id)

    def erase(self, batch: str, as_of: datetime, *, run_id: str | None = None) -> BatchResult:
        return BatchErasure(self.config, self.state, self.stores, self.notices, self.certificates).erase(
            batch, as_of, run_id=run_id
        )

    def purge(self, as_of: datetime, *, run_id: str | None = None) -> dict:
        """The lake purges due by ``as_of`` of batches waiting for them, and their certificates."""
        return BatchErasure(self.config, self.state, self.stores, self.notices, self.certificates).purge_due(
            as_of, run_id
        )

    def subject_hash(self, subject: str) -> str:
        return self.certificates.subject_hash(subject)

    def overdue(self, as_of: datetime) -> list[dict]:
        return overdue(self.config, self.state, self.subject_hash, as_of)

    def report(self, run_id: str, as_of: datetime) -> dict:
        return write_report(self.config, self.state, self.subject_hash, run_id, as_of)
