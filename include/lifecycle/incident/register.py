"""The incident and its runs in the register (GDPR art. 33(5)), the follow-up rules, and each
incident read back as the breach register lists it (``breach_record``).

A person is new to a run unless an earlier *approved, non-dry* run of the
incident that was to notify found them: dry runs, and runs that recorded the
decision not to notify, claim nobody, so a responder who changes their mind
triggers the incident again with decision ``notify`` (phase ``initial``, or
``update``) and everyone it finds is told; the ledger's ``incident.registered``
entry of that run names the decisions it changes.  A decision not to notify is
refused once a run has told people.  A second approved ``initial``
run is refused, with the count of people still owed a notice and the
``update`` trigger that sends to them (``owed.refusal``); ``update`` needs the
incident in the register.  The delivery table's unique (incident, person)
key is the last guard.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

from lifecycle.clock import iso_utc
from lifecycle.errors import LifecycleError
from lifecycle.incident.documents import category_titles
from lifecycle.incident.form import IncidentForm
from lifecycle.incident.models import Run, facts_json
from lifecycle.incident.owed import approved_runs, owing, refusal, runs_of
from lifecycle.incident.report_delivery import DELIVERED, committed

if TYPE_CHECKING:
    from lifecycle.catalog import Catalog
    from lifecycle.incident.services import Services
    from lifecycle.state import StateStore

log = logging.getLogger(__name__)


def register(services: Services, form: IncidentForm, run_id: str, as_of: datetime, *, dag_id: str | None) -> dict:
    """Enter the incident and this run in the register; a rerun of the run keeps its entry."""
    incidents = services.state.incidents
    existing = incidents.run(run_id)
    if existing is not None:
        if existing.incident_id != form.incident_id:
            raise LifecycleError(
                f"run {run_id} is registered for incident {existing.incident_id}, not {form.incident_id}"
            )
        return {
            "incident_id": form.incident_id,
            "phase": existing.phase,
            "dry_run": existing.dry_run,
            "decision": form.decision,
            "rerun": True,
        }
    _check_phase(services.state, form, run_id)
    decided = _decision(services.state, form, run_id)
    facts = facts_json(form)
    incidents.register(
        incident_id=form.incident_id,
        title=form.title,
        discovered_at=iso_utc(form.discovered_at),
        run_id=run_id,
        phase=form.phase,
        dry_run=form.dry_run,
        as_of=iso_utc(as_of),
        facts=facts,
    )
    services.record(
        "registered",
        {
            "incident": form.incident_id,
            "phase": form.phase,
            "dry_run": form.dry_run,
            "discovered_at": iso_utc(form.discovered_at),
            "facts_sha256": hashlib.sha256(facts.encode()).hexdigest(),
            **decided,
        },
        services.run(run_id),
        dag_id=dag_id,
    )
    log.info(
        "incident %s registered (phase %s, decision %s, dry run %s)",
        form.incident_id,
        form.phase,
        form.decision,
        form.dry_run,
    )
    return {
        "incident_id": form.incident_id,
        "phase": form.phase,
        "dry_run": form.dry_run,
        "decision": form.decision,
        "rerun": False,
    }


def _decision(state: StateStore, form: IncidentForm, run_id: str) -> dict:
    """The run's decision as the ledger keeps it: the reason not to notify, or the earlier
    approved decisions not to notify that this run's ``notify`` changes."""
    if not form.notifies:
        return {"decision": form.decision, "decision_reason": form.decision_reason}
    withheld = [
        run.run_id
        for run in runs_of(state, form.incident_id)
        if run.run_id != run_id and not run.dry_run and not run.notifies and run.approval and run.approval.approved
    ]
    return {"decision": form.decision, **({"changes_decision_of": withheld} if withheld else {})}


def _check_phase(state: StateStore, form: IncidentForm, run_id: str) -> None:
    """An update needs the incident registered; a second approved initial run is refused."""
    notified = notified_runs(state, form.incident_id, except_run=run_id)
    if form.phase == "update" and not state.incidents.exists(form.incident_id):
        raise LifecycleError(
            f"phase 'update': incident {form.incident_id!r} is not in the register; "
            "trigger it with phase 'initial' first"
        )
    if notified and not form.notifies and not form.dry_run:
        raise LifecycleError(
            f"decision 'not_notify': incident {form.incident_id!r} was already notified (run {notified[0]}); "
            "people have been told, so a decision not to notify them can no longer be recorded"
        )
    if form.phase == "initial" and notified and not form.dry_run:
        raise LifecycleError(refusal(state, form.incident_id, notified[0], form.facts()))


def notified_runs(state: StateStore, incident_id: str, *, except_run: str) -> list[str]:
    """Earlier runs of the incident that were approved to send (not dry runs), oldest first."""
    return [run.run_id for run in approved_runs(runs_of(state, incident_id), except_run=except_run)]


def earlier_subjects(state: StateStore, incident_id: str, run_id: str) -> set[str]:
    """People an earlier approved run of the incident found: not new to this run."""
    runs = notified_runs(state, incident_id, except_run=run_id)
    return state.incidents.subjects_of(runs) if runs else set()


def incident_totals(state: StateStore, incident_id: str, run_id: str) -> tuple[int, set[str]]:
    """People affected by the incident so far (earlier notified runs and this one) and their countries."""
    return state.incidents.affected(notified_runs(state, incident_id, except_run=run_id) + [run_id])


# ------------------------------------------------------------ the register read back (art. 33(5))


def breach_record(state: StateStore, catalog: Catalog, runs: list[Run], as_of: datetime) -> dict:
    """One incident as the breach register lists it (GDPR art. 33(5)), from its runs (oldest first):
    the facts, effects and remedies of its latest decided run, the people affected and their notices,
    the decision and its reason, and each regulator's report with its deadline met, missed or open at
    ``as_of``.  Counts and the responders' own words only: nobody is named."""
    real = [r for r in runs if not r.dry_run]
    shown = ([r for r in real if r.approval] or runs)[-1]
    form = shown.form
    counted = [r.run_id for r in real if r.scope] or [r.run_id for r in runs if r.scope][-1:]
    affected, countries = state.incidents.affected(counted) if counted else (0, set())
    categories = sorted({c for r in runs if r.scope for c in r.scope.categories} or set(form.affected_categories))
    return {
        "incident_id": shown.incident_id,
        "title": form.title,
        "facts": {
            "cause": form.cause,
            "discovered_at": iso_utc(form.discovered_at),
            "recorded_at": iso_utc(runs[0].as_of),
            "occurred_from": iso_utc(form.occurred_from) if form.occurred_from else None,
            "occurred_to": iso_utc(form.occurred_to) if form.occurred_to else None,
            "categories": category_titles(catalog, categories),
            "datasets": sorted(
                {d for r in runs if r.scope for d, n in r.scope.datasets.items() if n} or set(form.affected_datasets)
            ),
            "countries": sorted(countries),
        },
        "effects": form.impact,
        "remedies": {"measures_taken": form.measures_taken, "remedies": form.remedies, "precautions": form.precautions},
        "decision": _decided(runs),
        "people": {"affected": affected, **_notices(state, runs)},
        "regulators": _regulators(state, runs, as_of),
    }


def _decided(runs: list[Run]) -> dict:
    """The decision in force (the latest approved run's: notify or not_notify, with the reason), or
    ``undecided`` with why (dry runs only, an approval pending, rejected), and every real run's decision."""
    real = [r for r in runs if not r.dry_run]
    approved = [r for r in real if r.approval and r.approval.approved]
    history = [
        {
            "run_id": r.run_id,
            "as_of": iso_utc(r.as_of),
            "phase": r.phase,
            "decision": r.form.decision,
            "reason": r.form.decision_reason,
            "approval": r.approval.decision if r.approval else "pending",
            "approved_by": r.approval.by if r.approval else None,
        }
        for r in real
    ]
    if approved:
        last = approved[-1]
        return {"decision": last.form.decision, "reason": last.form.decision_reason, "run_id": last.run_id} | {
            "status": "approved",
            "history": history,
        }
    status = "dry run only" if not real else real[-1].approval.decision if real[-1].approval else "pending"
    return {"decision": "undecided", "reason": None, "run_id": None, "status": status, "history": history}


def _notices(state: StateStore, runs: list[Run]) -> dict:
    """The incident's notices: sent, owed, in doubt, not delivered, and the people put on the work lists."""
    statuses: Counter = Counter()
    for run in runs:
        statuses.update(state.incidents.delivery_counts(run.run_id))
    debt = owing(state, runs[0].incident_id, runs)
    told = approved_runs(runs)
    lists = [r.figures.lists for r in told if r.figures.lists]
    decision = _decided(runs)["decision"]
    return {
        "notified": statuses["sent"],
        "owed": debt.owed,
        "uncertain": debt.uncertain,
        "undeliverable": statuses["undeliverable"],
        "deferred": statuses["deferred"],
        "letters": sum(lst.letters for lst in lists),
        "telephone": sum(lst.telephone for lst in lists),
        "no_contact": sum(lst.no_contact for lst in lists),
        "notices": "open"
        if debt.owed
        else "done"
        if told
        else "not_notified"
        if decision == "not_notify"
        else decision,
    }


def _regulators(state: StateStore, runs: list[Run], as_of: datetime) -> list[dict]:
    """Each regulator the incident's runs committed it to, by id: its deadline (the earliest), the
    first delivery of its report, and the deadline ``met``, ``missed`` (delivered late, or not
    delivered by ``as_of``), ``open`` (not delivered, still ahead) or ``unknown`` (delivered before
    deliveries were recorded)."""
    due: dict[str, tuple[datetime, str, str]] = {}
    for _run, _approved, regulator in committed(runs):
        if regulator.id not in due or regulator.deadline < due[regulator.id][0]:
            due[regulator.id] = (regulator.deadline, regulator.name, regulator.deadline_after_discovery)
    rows = [d for run in runs for d in state.incidents.regulator_deliveries(run.run_id) if d.status in DELIVERED]
    found = []
    for regulator_id, (deadline, name, after) in sorted(due.items()):
        mine = sorted(
            (d for d in rows if d.regulator_id == regulator_id), key=lambda d: (d.delivered_at or "", d.run_id)
        )
        first = mine[0] if mine else None
        if first is None:
            status = "missed" if deadline < as_of else "open"
        elif first.status == "before_delivery":
            status = "unknown"
        else:
            status = "missed" if first.late else "met"
        found.append(
            {
                "id": regulator_id,
                "name": name,
                "deadline": iso_utc(deadline),
                "deadline_after_discovery": after,
                "delivered": first is not None,
                "delivered_at": first.delivered_at if first else None,
                "channels": sorted({d.channel for d in mine}),
                "deadline_status": status,
            }
        )
    return found
