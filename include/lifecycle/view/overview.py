"""The Overview: obligations and deadlines at a glance, counts and dates only.

Built from the state store's repositories, the configuration and the reports
destination (the retention reports); nothing here names a person.  ``now`` is
the reader's instant: deadlines count down from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from lifecycle.clock import aware_utc, iso_utc
from lifecycle.state.erasures import OPEN as OPEN_ERASURES
from lifecycle.view.incidents import IncidentSummary, incident_summaries

EXPIRY_WARNING = timedelta(days=30)
HISTORY_RUNS = 30  # retention runs in the chart
QUEUE_DAYS = 30  # days of the erasure queue chart


@dataclass(frozen=True)
class Cancellations:
    by_state: dict[str, int]
    open: int
    oldest_due: str | None  # the oldest open request's completion deadline
    overdue: int  # open past complete_within
    complete_within: str


@dataclass(frozen=True)
class Requests:
    by_state: dict[str, int]
    open: int
    soonest_due: str | None
    overdue: int


@dataclass(frozen=True)
class RetentionRow:
    dataset: str
    rule: str | None
    action: str | None
    cutoff: str | None
    removed: int  # rows or objects deleted, plus rows anonymized
    held: int
    kept: int  # under a statutory floor, or still referenced
    locked: int
    error: str | None


@dataclass(frozen=True)
class Retention:
    schedule: str | None
    next_run: str | None
    last_run: str | None
    last_run_at: str | None
    rows: list[RetentionRow]
    history: list[tuple[str, int]]  # (as_of, removed) per run, oldest first


@dataclass(frozen=True)
class Holds:
    active: int
    soonest_end: str | None


@dataclass(frozen=True)
class RecipientRow:
    id: str
    name: str
    agreement: str | None
    expires: str | None
    days_left: int | None
    status: str  # ok | warning | expired | none
    last_delivery: str | None
    records: int | None
    last_outcome: str | None


@dataclass(frozen=True)
class LedgerStatus:
    entries: int
    last_entry_at: str | None
    last_check: dict | None  # the last lifecycle_checks verification: state, when, entries


@dataclass(frozen=True)
class Overview:
    now: str
    cancellations: Cancellations | None
    requests: Requests | None
    retention: Retention
    holds: Holds
    recipients: list[RecipientRow]
    incidents: list[IncidentSummary]
    ledger: LedgerStatus
    queue: list[tuple[str, int]] = field(default_factory=list)  # (day, open cancellations at its end)


def build_overview(config, state, sink, *, now: datetime, last_check: dict | None = None) -> Overview:
    now = aware_utc(now)
    seq, last_at = state.ledger.head()
    return Overview(
        now=iso_utc(now),
        cancellations=_cancellations(config, state, now),
        requests=_requests(state, now) if config.requests is not None or state.requests.counts() else None,
        retention=_retention(config, sink, now),
        holds=_holds(state, now.date()),
        recipients=[_recipient(r, state, now.date()) for r in config.recipients.recipients],
        incidents=[s for s in incident_summaries(state, now) if s.open],
        ledger=LedgerStatus(entries=seq, last_entry_at=last_at, last_check=last_check),
        queue=erasure_queue(state, now.date()) if config.cancellation is not None else [],
    )


def _cancellations(config, state, now: datetime) -> Cancellations | None:
    if config.cancellation is None:
        return None
    within = config.cancellation.complete_within
    # requested before this instant: complete_within is over (the deadline of the oldest is its request + within)
    overdue_before = iso_utc(now - (within.after(now) - now))
    oldest, overdue = state.erasures.queue(overdue_before=overdue_before)
    counts = state.erasures.counts()
    due = iso_utc(within.after(datetime.fromisoformat(oldest))) if oldest else None
    return Cancellations(
        by_state=counts,
        open=sum(n for s, n in counts.items() if s in OPEN_ERASURES),
        oldest_due=due,
        overdue=overdue,
        complete_within=str(within),
    )


def _requests(state, now: datetime) -> Requests:
    pending = state.requests.open_requests()  # soonest due first
    return Requests(
        by_state=state.requests.counts(),
        open=len(pending),
        soonest_due=pending[0].due_at if pending else None,
        overdue=sum(1 for r in pending if datetime.fromisoformat(r.due_at) < now),
    )


def retention_reports(sink) -> list[dict]:
    """Every retention report (JSON) in the destination, oldest first (the last ``HISTORY_RUNS``)."""
    keys = [k for k in sink.keys("retention/") if k.endswith("/report.json")]
    documents = []
    for key in keys:
        try:
            documents.append(json.loads(sink.read(key)))
        except ValueError:
            continue  # a report being rewritten: skipped this time
    documents.sort(key=lambda d: (d.get("as_of") or "", d.get("run_id") or ""))
    return documents[-HISTORY_RUNS:]


def _removed(row: dict) -> int:
    return int(row.get("deleted") or 0) + int(row.get("anonymized") or 0)


def _retention(config, sink, now: datetime) -> Retention:
    reports = retention_reports(sink)
    last = reports[-1] if reports else None
    rows = [
        RetentionRow(
            dataset=d["dataset"],
            rule=d.get("rule"),
            action=d.get("action"),
            cutoff=d.get("effective_cutoff") or d.get("cutoff"),
            removed=_removed(d),
            held=int(d.get("held") or 0),
            kept=int(d.get("under_floor") or 0) + int(d.get("referenced") or 0),
            locked=int(d.get("locked") or 0),
            error=d.get("error"),
        )
        for d in (last or {}).get("datasets", [])
    ]
    return Retention(
        schedule=config.retention.schedule,
        next_run=next_run(config.retention.schedule, now),
        last_run=last.get("run_id") if last else None,
        last_run_at=last.get("as_of") if last else None,
        rows=rows,
        history=[(d.get("as_of") or "", sum(_removed(r) for r in d.get("datasets", []))) for d in reports],
    )


def next_run(schedule: str | None, now: datetime) -> str | None:
    """The next instant a cron schedule (or ``@hourly`` … preset) fires after ``now``."""
    if not schedule:
        return None
    from croniter import croniter

    try:
        return iso_utc(croniter(schedule, now).get_next(datetime))
    except (ValueError, KeyError):
        return None  # a timetable croniter does not read: shown as unknown


def _holds(state, today: date) -> Holds:
    active = state.holds.active(today)
    ends = sorted(h.until for h in active if h.until is not None)
    return Holds(active=len(active), soonest_end=ends[0].isoformat() if ends else None)


def _recipient(recipient, state, today: date) -> RecipientRow:
    agreement = recipient.agreement
    expires = agreement.expires if agreement else None
    days_left = (expires - today).days if expires else None
    if agreement is None:
        status = "none"
    elif expires is not None and days_left < 0:
        status = "expired"
    elif expires is not None and days_left <= EXPIRY_WARNING.days:
        status = "warning"
    else:
        status = "ok"
    entries = state.sharing.ending_within(recipient=recipient.id)
    delivered = [e for e in entries if e["outcome"] == "delivered"]
    last = delivered[-1] if delivered else None
    return RecipientRow(
        id=recipient.id,
        name=recipient.name,
        agreement=agreement.id if agreement else None,
        expires=expires.isoformat() if expires else None,
        days_left=days_left,
        status=status,
        last_delivery=last["interval_end"] if last else None,
        records=int(last["records"]) if last else None,
        last_outcome=entries[-1]["outcome"] if entries else None,
    )


def erasure_queue(state, today: date, days: int = QUEUE_DAYS) -> list[tuple[str, int]]:
    """Cancellations seen and not yet completed at the end of each of the last ``days`` days
    (withdrawn and rejected ones left out: they never complete)."""
    seen, completed = state.erasures.per_day(excluding=("withdrawn", "rejected"))
    start = today - timedelta(days=days - 1)
    before = start.isoformat()
    level = sum(n for d, n in seen.items() if d < before) - sum(n for d, n in completed.items() if d < before)
    out = []
    for i in range(days):
        day = (start + timedelta(days=i)).isoformat()
        level += seen.get(day, 0) - completed.get(day, 0)
        out.append((day, max(level, 0)))
    return out
