"""Incidents as the register holds them: per incident and run the form's facts and decision
(notify, or not to notify and why), the people by reach (counts), the obligations and deadlines, the previews and the delivery progress:
per run the notices sent, owed (an approved run found the person, nobody claimed their
notice), uncertain (a kill left it in doubt) and undeliverable.

Counts only; the letter and telephone lists are named, never read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lifecycle.clock import aware_utc
from lifecycle.incident.models import Run
from lifecycle.incident.owed import owing, run_delivery
from lifecycle.reports import safe_name

CONTACT_LISTS = ("letters.csv", "telephone.csv")


def run_folder(incident_id: str, run_id: str) -> str:
    """Where an incident run's documents are (as ``incident.documents.Documents`` writes them)."""
    return f"incidents/{safe_name(incident_id)}/{safe_name(run_id)}/"


@dataclass(frozen=True)
class Deadline:
    regulator: str
    name: str
    deadline: str
    seconds_left: int  # negative: past
    met_if_notified_now: bool


@dataclass(frozen=True)
class IncidentSummary:
    incident_id: str
    title: str
    discovered_at: str
    runs: int
    latest_run: str | None
    dry_run: bool | None
    decision: str | None  # approved | rejected | None (not decided yet)
    deadlines: list[Deadline]
    delivery: dict[str, int]  # the latest approved run's delivery rows by status
    letters: int
    telephone: int
    open: bool  # no approved run has finished yet, a regulator's deadline is still ahead, or people are owed
    owed: int = 0  # people the incident's approved runs still owe a notice
    uncertain: int = 0  # notices in doubt (a kill): not sent again unless released
    notice: str = "notify"  # the latest run's decision: notify | not_notify (the people are not told)


def _deadlines(run: Run | None, now: datetime) -> list[Deadline]:
    if run is None or run.obligations is None:
        return []
    return [
        Deadline(r.id, r.name, r.deadline.isoformat(), int((r.deadline - now).total_seconds()), r.met_if_notified_now)
        for r in run.obligations.matched
    ]


def summarize(state, incident: dict, now: datetime) -> IncidentSummary:
    runs = [Run.from_row(row) for row in state.incidents.runs_of(incident["incident_id"])]
    latest = runs[-1] if runs else None
    real = [r for r in runs if not r.dry_run]
    notified = next((r for r in reversed(real) if r.approval and r.approval.approved), None)
    shown = notified or latest
    deadlines = _deadlines(shown, now)
    finished = notified is not None and notified.figures.final is not None
    lists = notified.figures.lists if notified else None
    debt = owing(state, incident["incident_id"], runs)
    return IncidentSummary(
        incident_id=incident["incident_id"],
        title=incident["title"],
        discovered_at=incident["discovered_at"],
        runs=len(runs),
        latest_run=latest.run_id if latest else None,
        dry_run=latest.dry_run if latest else None,
        decision=latest.approval.decision if latest and latest.approval else None,
        deadlines=deadlines,
        delivery=state.incidents.delivery_counts(notified.run_id) if notified else {},
        letters=lists.letters if lists else 0,
        telephone=lists.telephone if lists else 0,
        open=not finished or debt.open or any(d.seconds_left > 0 for d in deadlines),
        owed=debt.owed,
        uncertain=debt.uncertain,
        notice=latest.form.decision if latest else "notify",
    )


def incident_summaries(state, now: datetime, limit: int = 100) -> list[IncidentSummary]:
    now = aware_utc(now)
    return [summarize(state, incident, now) for incident in state.incidents.incidents(limit)]


@dataclass(frozen=True)
class RunLine:
    """One run of an incident as its page lists it, with its notices."""

    run_id: str
    phase: str
    dry_run: bool
    decision: str | None
    delivery: dict[str, int]  # sent, owed, uncertain, undeliverable, deferred
    notice: str = "notify"  # the form's decision: notify | not_notify
    notice_reason: str | None = None  # why not notify


@dataclass(frozen=True)
class RunView:
    incident_id: str
    title: str
    run: Run
    runs: list[RunLine]  # every run of the incident, oldest first
    deadlines: list[Deadline]
    delivery: dict[str, int]
    documents: list[str]  # keys under the run's folder, contact lists included (the page decides)
    previews: dict[str, str]  # label -> key of each locale's e-mail and of the announcement

    @property
    def folder(self) -> str:
        return run_folder(self.incident_id, self.run.run_id)


def run_view(state, sink, incident_id: str, run_id: str, locales: list[str], now: datetime) -> RunView | None:
    """One run of one incident, or None when the register has no such run of that incident."""
    row = state.incidents.run(run_id)
    if row is None or row.incident_id != incident_id:
        return None
    run = Run.from_row(row)
    title = next((i["title"] for i in state.incidents.incidents(1000) if i["incident_id"] == incident_id), incident_id)
    folder = run_folder(incident_id, run_id)
    keys = sink.keys(folder)
    previews = {}
    for locale in locales:
        for ext in ("html", "txt"):
            key = f"{folder}preview/email.{locale}.{ext}"
            if key in keys:
                previews[f"E-mail ({locale})"] = key
                break
    if f"{folder}preview/announcement.html" in keys:
        previews["Announcement"] = f"{folder}preview/announcement.html"
    runs = [
        RunLine(
            r.run_id,
            r.phase,
            r.dry_run,
            r.approval.decision if r.approval else None,
            run_delivery(state, r),
            r.form.decision,
            r.form.decision_reason,
        )
        for r in map(Run.from_row, state.incidents.runs_of(incident_id))
    ]
    return RunView(
        incident_id=incident_id,
        title=title,
        run=run,
        runs=runs,
        deadlines=_deadlines(run, aware_utc(now)),
        delivery=run_delivery(state, run),
        documents=keys,
        previews=previews,
    )


def is_contact_list(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in CONTACT_LISTS
