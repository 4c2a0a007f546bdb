"""Owed notices: people an approved run found and did not reach, counted until a run tells them.

A person whom an approved, non-dry run of an incident was to e-mail (new to
the incident, with an address) and who holds no delivery row for the
incident is *owed* a notice: the run was killed, or failed, before it claimed
them.  The next run of the incident with phase ``update`` carries them
(``resolve``: ``owed``) and sends to them with the newly affected, each once:
the delivery table's key is the guard.  A person whose row is ``uncertain``
(or ``sending``, left by a killed run) may or may not have had the mail: they
are not sent again unless the form's ``resend_uncertain`` (with
``resend_reason``) releases them; the release is ledgered with the rows it
deleted (``incident.released``).  ``Owing`` is what every reader shows: the
register's figures, the Privacy view, the regulator report and
``lifecycle_deadlines``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lifecycle.incident.models import Run

if TYPE_CHECKING:
    from lifecycle.incident.services import Services
    from lifecycle.state import StateStore

log = logging.getLogger(__name__)


def approved_runs(runs: list[Run], *, except_run: str | None = None) -> list[Run]:
    """The runs approved to send notices (not dry runs, decision ``notify``), oldest first.  A run
    that recorded the decision not to notify tells nobody: its people are new to a later run."""
    return [
        run
        for run in runs
        if run.run_id != except_run
        and not run.dry_run
        and run.notifies
        and run.approval is not None
        and run.approval.approved
    ]


def runs_of(state: StateStore, incident_id: str) -> list[Run]:
    return [Run.from_row(row) for row in state.incidents.runs_of(incident_id)]


def runs_by_incident(state: StateStore) -> dict[str, list[Run]]:
    """Every run of the register by incident, each incident's oldest first."""
    found: dict[str, list[Run]] = {}
    for row in state.incidents.all_runs():
        run = Run.from_row(row)
        found.setdefault(run.incident_id, []).append(run)
    return found


@dataclass(frozen=True)
class Owing:
    """What an incident still owes people: ids stay in the state store, counts leave it."""

    incident_id: str
    owed: int  # no delivery row: never claimed
    uncertain: int  # a row in doubt: sent again only when released
    since: str | None  # the logical time of the oldest approved run: when the notices were due

    @property
    def open(self) -> bool:
        return self.owed > 0


def owing(state: StateStore, incident_id: str, runs: list[Run] | None = None) -> Owing:
    approved = approved_runs(runs if runs is not None else runs_of(state, incident_id))
    if not approved:
        return Owing(incident_id, 0, 0, None)
    owed = state.incidents.owed_count(incident_id, [r.run_id for r in approved])
    return Owing(incident_id, owed, state.incidents.in_doubt_count(incident_id), approved[0].as_of.isoformat())


def owing_incidents(state: StateStore) -> list[Owing]:
    """Every incident of the register that owes people a notice, oldest debt first."""
    found = [owing(state, incident, runs) for incident, runs in runs_by_incident(state).items()]
    return sorted((o for o in found if o.open), key=lambda o: (o.since or "", o.incident_id))


def run_delivery(state: StateStore, run: Run) -> dict[str, int]:
    """A run's notices: sent, owed, uncertain, undeliverable, deferred (owed only where the run was
    approved to notify)."""
    counts = state.incidents.run_delivery(run.incident_id, run.run_id)
    if run.dry_run or not run.notifies or not (run.approval and run.approval.approved):
        counts["owed"] = 0  # it was not to send
    return counts


def carried(state: StateStore, run: Run) -> tuple[set[str], set[str]]:
    """What an ``update`` run takes over from the incident's earlier approved runs: the people
    owed a notice (with an address and never claimed; without one, on no list because their
    run never wrote its lists), and those in doubt when its form releases them (else none)."""
    if run.phase != "update":
        return set(), set()
    earlier = approved_runs(runs_of(state, run.incident_id), except_run=run.run_id)
    if not earlier:
        return set(), set()
    owed = set(state.incidents.owed(run.incident_id, [r.run_id for r in earlier]))
    for n, unlisted in enumerate(earlier):  # a run that never wrote its lists, and no later run did
        if unlisted.figures.lists is None and all(r.figures.lists is None for r in earlier[n + 1 :]):
            owed |= set(state.incidents.not_emailed(unlisted.run_id))
    released = (
        set(state.incidents.in_doubt(run.incident_id, except_run=run.run_id)) if run.form.resend_uncertain else set()
    )
    return owed, released


def refusal(state: StateStore, incident_id: str, first_run: str, facts: dict) -> str:
    """Why a second approved ``initial`` run is refused, and the one command that finishes the incident."""
    status = owing(state, incident_id)
    text = f"incident {incident_id!r} was already notified (run {first_run})"
    if not (status.owed or status.uncertain):
        return text + "; use phase 'update' to notify newly affected people"
    conf = {**facts, "phase": "update", "dry_run": False, "resend_uncertain": False, "resend_reason": None}
    return (
        f"{text}, and {status.owed} people are still owed its notice ({status.uncertain} uncertain: sent again "
        "only with resend_uncertain and a resend_reason). Finish it with phase 'update', which sends to them and to "
        "anyone newly affected, once each: airflow dags trigger incident_notification --conf "
        + shlex.quote(json.dumps(conf, sort_keys=True, ensure_ascii=False))
    )


def release_uncertain(services: Services, run: Run) -> int:
    """Before the first mail of an approved update run whose form asks for it: delete the delivery
    rows in doubt of the people the run carried, after ledgering what they held and why."""
    if not run.form.resend_uncertain:
        return 0
    incidents = services.state.incidents
    people = incidents.carried(run.run_id)
    rows = [list(row) for row in incidents.doubtful(run.incident_id, people, except_run=run.run_id)]
    payload = {
        "incident": run.incident_id,
        "reason": run.form.resend_reason,
        "released": len(rows),
        "rows_sha256": hashlib.sha256(json.dumps(rows).encode()).hexdigest(),
    }
    services.record("released", payload, run)  # once: a rerun finds the first entry, then deletes the same rows
    released = incidents.release(run.incident_id, people, except_run=run.run_id)
    if released:
        log.warning("incident %s: %d notice(s) in doubt released for sending again", run.incident_id, released)
    return released
