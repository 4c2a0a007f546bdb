"""The run's figures in the register and the ledger, after every path: sent, dry run, rejected, failed.

The figures count the people the run still owes a notice (``owed``: never
claimed, e.g. after a kill) and those the whole incident owes
(``owed_in_incident``); a run that ends owing people fails its ``finish``
after recording them, so that the run is not green while people are untold.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from lifecycle.errors import LifecycleError
from lifecycle.incident.approval import record_approval
from lifecycle.incident.owed import owing, run_delivery
from lifecycle.incident.report_delivery import summary as delivered_reports

if TYPE_CHECKING:
    from lifecycle.incident.models import Approval, Run
    from lifecycle.incident.services import Services


def delivery_figures(services: Services, run: Run) -> dict:
    """How many people were affected, notified, mailed, owed, and put on the lists so far;
    ``owed_in_incident``: people the incident's approved runs still owe a notice (all runs)."""
    scope, lists = run.scope, run.figures.lists
    delivered = run_delivery(services.state, run)
    return {
        "affected": scope.affected if scope else 0,
        "newly_notified": scope.new if scope else 0,
        "carried_owed": scope.owed if scope else 0,
        "carried_released": scope.released if scope else 0,
        "emails_sent": delivered["sent"],
        "owed": delivered["owed"],
        "owed_in_incident": owing(services.state, run.incident_id).owed,
        "undeliverable": delivered["undeliverable"],
        "deferred": delivered["deferred"],
        "uncertain": delivered["uncertain"],
        "letters": lists.letters if lists else 0,
        "telephone": lists.telephone if lists else 0,
        "no_contact": lists.no_contact if lists else 0,
    }


def finish(services: Services, run_id: str, approval: Approval | None) -> dict:
    """Record the decision (when the approval task made one) and the run's summary; returns the summary."""
    run = services.run(run_id)
    if approval and not run.approval:
        record_approval(services, run_id, approval)
        run = services.run(run_id)
    obligations = run.obligations
    outcome = "dry run" if run.dry_run else run.approval.decision if run.approval else "not approved"
    published = obligations.announcement.published if obligations and obligations.announcement else None
    reports = services.catalog.model.reports
    summary = {
        "incident_id": run.incident_id,
        "phase": run.phase,
        "outcome": outcome,
        "decision": run.form.decision,
        **({"decision_reason": run.form.decision_reason} if not run.notifies else {}),
        **delivery_figures(services, run),
        "announcement": published.url if published else None,
        "regulators": [r.id for r in obligations.matched] if obligations else [],
        "reports_delivered": delivered_reports(services, run),  # regulator -> at, deadline, late, channels
        "documents": reports.path or reports.system,
        "folder": services.documents(run).folder,
    }
    services.save(run_id, figures=replace(run.figures, final=summary))
    services.state.incidents.touch(run.incident_id)
    services.record("figures", {**summary, "documents": None}, run)
    if summary["owed"] and outcome == "approved":
        raise LifecycleError(
            f"incident {run.incident_id}: {summary['owed']} people this run was to e-mail were never sent their "
            f"notice ({summary['owed_in_incident']} owed in the incident); recorded in the register. Clear this "
            "run's failed send tasks, or trigger the incident with phase 'update': either sends to them, once each"
        )
    return summary
