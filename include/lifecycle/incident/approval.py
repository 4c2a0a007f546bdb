"""The approval of a run: the approval task's answer as the register keeps it, and the check before sending.

``approval: required`` uses the standard provider's ``ApprovalOperator``;
under ``dag.test()`` it leaves no answer in XCom, so the task after it takes
"ran at all" as approved, and ``finish`` takes a successful approval task
without an answer as a rejection (Reject, or no answer in time).
``approval: none`` answers ``{"auto": True}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from lifecycle.errors import LifecycleError
from lifecycle.incident.models import Approval, Run

if TYPE_CHECKING:
    from lifecycle.incident.services import Services

DECISIONS = ("approved", "rejected")


def approval_from_answer(answer: dict | None) -> Approval | None:
    """The approval task's answer (``chosen_options``, ``responded_by_user``); None when there was none."""
    if not answer:
        return None
    if answer.get("auto"):
        return Approval("approved", by=None, how="incidents.yaml approval: none")
    user = answer.get("responded_by_user") or {}
    chosen = (answer.get("chosen_options") or ["Reject"])[0]
    return Approval(
        "approved" if chosen == "Approve" else "rejected", by=user.get("name") or user.get("id"), how="approval task"
    )


def approval_to_send(answer: dict | None) -> Approval:
    """The decision of the task after the approval: it runs only when the approval let it."""
    return approval_from_answer(answer) or Approval("approved", by=None, how="approval task")


def approval_at_finish(run_id: str, answer: dict | None, approve_states: Callable[[], dict] | None) -> Approval | None:
    """The decision ``finish`` records; ``approve_states`` asks Airflow for the approval task's state in the run."""
    approval = approval_from_answer(answer)
    if approval is None and approve_states is not None:
        states = approve_states()
        if "success" in json.dumps(states.get(run_id, states), default=str):  # it skipped what follows: rejected
            return Approval("rejected", by=None, how="approval task: Reject, or no answer within approval_timeout")
    return approval


def record_approval(services: Services, run_id: str, approval: Approval) -> Approval:
    """Keep the run's first decision; a later one (a rerun) returns the recorded one."""
    if approval.decision not in DECISIONS:
        raise LifecycleError(f"approval decision {approval.decision!r}: expected approved or rejected")
    run = services.run(run_id)
    if run.approval:
        return run.approval
    services.save(run_id, approval=approval)
    services.record("approval", {"incident": run.incident_id, **approval.to_dict()}, run)
    return approval


def may_send(run: Run) -> None:
    """Refuse to send, list, announce or report for a dry run or a run not approved."""
    if run.dry_run:
        raise LifecycleError(f"run {run.run_id} is a dry run: nothing is sent")
    if not (run.approval and run.approval.approved):
        decision = run.approval.decision if run.approval else "no decision"
        raise LifecycleError(f"run {run.run_id} is not approved ({decision}): nothing is sent")


def may_notify(run: Run) -> None:
    """Refuse to mail people for a run that may not send (``may_send``) or recorded the decision not to notify."""
    may_send(run)
    if not run.notifies:
        raise LifecycleError(
            f"run {run.run_id} recorded the decision not to notify ({run.form.decision_reason}): no notice is sent; "
            "trigger the incident again with decision 'notify' to tell the people affected"
        )
