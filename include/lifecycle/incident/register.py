"""The incident and its runs in the register (GDPR art. 33(5)), and the follow-up rules.

A person is new to a run unless an earlier *approved, non-dry* run of the
incident found them: dry runs claim nobody.  A second approved ``initial``
run is refused, with the count of people still owed a notice and the
``update`` trigger that sends to them (``owed.refusal``); ``update`` needs the
incident in the register.  The delivery table's unique (incident, person)
key is the last guard.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from lifecycle.clock import iso_utc
from lifecycle.errors import LifecycleError
from lifecycle.incident.form import IncidentForm
from lifecycle.incident.models import facts_json
from lifecycle.incident.owed import approved_runs, refusal, runs_of

if TYPE_CHECKING:
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
        return {"incident_id": form.incident_id, "phase": existing.phase, "dry_run": existing.dry_run, "rerun": True}
    _check_phase(services.state, form, run_id)
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
        },
        services.run(run_id),
        dag_id=dag_id,
    )
    log.info("incident %s registered (phase %s, dry run %s)", form.incident_id, form.phase, form.dry_run)
    return {"incident_id": form.incident_id, "phase": form.phase, "dry_run": form.dry_run, "rerun": False}


def _check_phase(state: StateStore, form: IncidentForm, run_id: str) -> None:
    """An update needs the incident registered; a second approved initial run is refused."""
    notified = notified_runs(state, form.incident_id, except_run=run_id)
    if form.phase == "update" and not state.incidents.exists(form.incident_id):
        raise LifecycleError(
            f"phase 'update': incident {form.incident_id!r} is not in the register; "
            "trigger it with phase 'initial' first"
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
