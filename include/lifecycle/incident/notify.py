"""Incident notification: the DAG's steps, one method each, over one configuration and state store.

Each step reads the run from the register, does its stage and returns what
goes into XCom: ids, counts and batch numbers, never addresses or names.

register → resolve → obligations → preview (a dry run ends here) → approval
(and the release of notices in doubt an update's form asks for, ``owed``) → send_batch per batch → contact_lists → announce → regulator_reports →
deliver_reports → finish.  The stages live in their own modules (``register``,
``resolve``, ``obligations``, ``preview``, ``approval``, ``send``, ``lists``,
``announce``, ``regulator_reports``, ``report_delivery``, ``finish``); the facts they hand each
other are the typed documents of ``models``.  Time comes from the run
(``as_of``) and the form's ``discovered_at``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from lifecycle.errors import LifecycleError
from lifecycle.incident import (
    announce,
    approval,
    finish,
    lists,
    obligations,
    owed,
    preview,
    register,
    regulator_reports,
    report_delivery,
    resolve,
    send,
)
from lifecycle.incident.documents import notice_context
from lifecycle.incident.form import IncidentForm
from lifecycle.incident.models import Approval, Scope
from lifecycle.incident.services import Services
from lifecycle.notifier import Notifier
from lifecycle.stores import Stores

if TYPE_CHECKING:
    from lifecycle.config import Config
    from lifecycle.runtime import RunContext
    from lifecycle.state import StateStore


class IncidentNotification:
    """What the DAG file, the conformance runner, the benchmark and the tests call: one method per step."""

    def __init__(
        self,
        config: Config,
        state: StateStore,
        open_store: Callable[[str], object] | None = None,
        mailer: Callable[[], object] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        *,
        stores: Stores | None = None,
    ):
        if config.incidents is None:
            raise LifecycleError("incidents.yaml is not configured")
        self.catalog = config.catalog
        self.services = Services(
            incidents=config.incidents,
            mail=config.notifications,
            catalog=config.catalog,
            state=state,
            stores=stores if stores is not None else Stores(config.catalog, open_store),
            notifier=Notifier(config.notifications, mailer, sleep, rates=state.send_rates, rate_scope="incident"),
        )

    @classmethod
    def of(cls, ctx: RunContext) -> IncidentNotification:
        """The running task's: its configuration, state store and stores, used as they are."""
        return cls(ctx.config, ctx.state, stores=ctx.stores)

    def form(self, run_id: str) -> IncidentForm:
        return self.services.run(run_id).form

    def notice_context(self, form: IncidentForm, scope: Scope) -> dict:
        return notice_context(self.catalog, self.services.mail, form, scope)

    def register(self, form: IncidentForm, run_id: str, as_of: datetime, *, dag_id: str | None = None) -> dict:
        return register.register(self.services, form, run_id, as_of, dag_id=dag_id)

    def resolve(self, run_id: str) -> dict:
        return resolve.resolve(self.services, run_id)

    def batches(self, run_id: str) -> list[int]:
        """The run's mail batches: none when it recorded the decision not to notify."""
        run = self.services.run(run_id)
        return list(range(run.scope.batches)) if run.notifies else []

    def obligations(self, run_id: str) -> dict:
        return obligations.obligations(self.services, run_id)

    def preview(self, run_id: str) -> dict:
        return preview.preview(self.services, run_id)

    def record_approval(self, run_id: str, decision: str, *, by: str | None, how: str) -> Approval:
        return approval.record_approval(self.services, run_id, Approval(decision, by=by, how=how))

    def plan_sends(self, run_id: str, answer: dict | None) -> list[int]:
        """Record the approval task's answer (this step runs only when it let it) and name the batches."""
        decided = approval.record_approval(self.services, run_id, approval.approval_to_send(answer))
        run = self.services.run(run_id)
        if decided.approved and not run.dry_run:
            owed.release_uncertain(self.services, run)  # only what the form asks, once, ledgered
        return self.batches(run_id)

    def send_batch(self, run_id: str, batch: int) -> dict:
        return send.send_batch(self.services, run_id, batch)

    def contact_lists(self, run_id: str) -> dict:
        return lists.contact_lists(self.services, run_id)

    def announce(self, run_id: str) -> dict:
        return announce.announce(self.services, run_id)

    def regulator_reports(self, run_id: str) -> dict:
        return regulator_reports.regulator_reports(self.services, run_id)

    def deliver_reports(self, run_id: str) -> dict:
        return report_delivery.deliver_reports(self.services, run_id)

    def finish(self, run_id: str, answer: dict | None = None, approve_states: Callable[[], dict] | None = None) -> dict:
        """Record the figures after every path; ``answer`` and ``approve_states`` tell what the approval task did."""
        return finish.finish(self.services, run_id, approval.approval_at_finish(run_id, answer, approve_states))
