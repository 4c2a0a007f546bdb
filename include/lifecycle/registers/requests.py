"""Statistics of a period [start, end): a person's requests (received, answered on time, late
and why, rejected), cancellation erasures (done, pending), deletion requests sent to
recipients, and the sharing register's deliveries.

Everything is counted as it stood at the period's end, from the registers in the
state store: a request answered after the end counts as open, so the statistics
of a past period read the same later.  Requests are named by their id only,
people never.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from lifecycle import reports
from lifecycle.clock import aware_utc, iso_utc
from lifecycle.errors import LifecycleError
from lifecycle.state.erasures import OPEN as ERASURE_OPEN
from lifecycle.state.requests import KINDS

if TYPE_CHECKING:
    from lifecycle.config import Config
    from lifecycle.state import StateStore
    from lifecycle.state.erasures import ErasureRecord
    from lifecycle.state.requests import SubjectRequest

TEMPLATE = "request_statistics.html.j2"
#: what a request came to by the period's end
OUTCOMES = ("received", "done_on_time", "done_late", "rejected", "open", "open_overdue")


def _instant(when: date | datetime) -> datetime:
    """A day means its midnight (UTC); an instant stays itself, in UTC."""
    if isinstance(when, datetime):
        return aware_utc(when)
    return aware_utc(datetime.combine(when, time()))


def request_statistics(config: Config, state: StateStore, start: date | datetime, end: date | datetime) -> dict:
    """The statistics of [start, end) as a JSON-able document (same state, same document)."""
    begin, finish = _instant(start), _instant(end)
    if finish <= begin:
        raise LifecycleError(f"the period's end {iso_utc(finish)} is not after its start {iso_utc(begin)}")
    lo, hi = iso_utc(begin), iso_utc(finish)
    complete_within = config.cancellation.complete_within if config.cancellation else None
    return {
        "statistics": "requests and erasures",
        "period": {"from": lo, "to": hi},
        "respond_within": str(config.requests.respond_within) if config.requests else None,
        "requests": _requests(state.requests.received_between(lo, hi), finish),
        "erasures": _erasures(state.erasures.touching(lo, hi), begin, finish, complete_within),
        "deletion_requests": _deletions(state.deletions.recorded_between(lo, hi)),
        "sharing": _sharing(state.sharing.ending_between(lo, hi)),
    }


def _outcome(request: SubjectRequest, end: datetime) -> str:
    if request.state == "rejected":
        return "rejected"
    due = datetime.fromisoformat(request.due_at)
    if request.completed_at and datetime.fromisoformat(request.completed_at) < end:
        return "done_on_time" if datetime.fromisoformat(request.completed_at) <= due else "done_late"
    return "open_overdue" if due < end else "open"


def _late(request: SubjectRequest, outcome: str, end: datetime) -> dict:
    """One late request: when it was due, by how much it was late, and why."""
    due = datetime.fromisoformat(request.due_at)
    until = datetime.fromisoformat(request.completed_at) if outcome == "done_late" else end
    if request.reason:
        why = f"{request.state}: {request.reason}"
    elif outcome == "done_late":
        why = "answered after its due date"
    else:
        why = f"not answered by the period's end (state {request.state})"
    return {
        "request_id": request.request_id,
        "kind": request.kind,
        "received_at": request.received_at,
        "due_at": request.due_at,
        "completed_at": request.completed_at if outcome == "done_late" else None,
        "late_days": round((until - due).total_seconds() / 86400, 1),
        "reason": why,
    }


def _requests(received: list[SubjectRequest], end: datetime) -> dict:
    kinds = sorted(set(KINDS) | {r.kind for r in received})
    by_kind = {kind: dict.fromkeys(OUTCOMES, 0) for kind in kinds}
    late, rejected = [], defaultdict(Counter)
    for request in received:
        outcome = _outcome(request, end)
        by_kind[request.kind]["received"] += 1
        by_kind[request.kind][outcome] += 1
        if outcome in ("done_late", "open_overdue"):
            late.append(_late(request, outcome, end))
        if outcome == "rejected":
            rejected[request.kind][request.reason or "no reason recorded"] += 1
    totals = {outcome: sum(counts[outcome] for counts in by_kind.values()) for outcome in OUTCOMES}
    return {
        "totals": totals,
        "by_kind": by_kind,
        "late": sorted(late, key=lambda r: (r["due_at"], r["request_id"])),
        "rejected_reasons": {kind: dict(sorted(reasons.items())) for kind, reasons in sorted(rejected.items())},
    }


def _erasures(rows: list[ErasureRecord], start: datetime, end: datetime, complete_within) -> dict:
    """Cancellations requested in the period, erased in it (and of those, late), and still
    pending at its end (by state, and how many of them past ``complete_within``)."""
    requested = done = done_late = overdue = 0
    pending: Counter = Counter()
    for row in rows:
        asked = datetime.fromisoformat(row.requested_at)
        deadline = complete_within.after(asked) if complete_within else None
        completed = datetime.fromisoformat(row.completed_at) if row.completed_at else None
        requested += start <= asked
        if row.state == "done" and completed and completed < end:
            done += start <= completed
            done_late += bool(start <= completed and deadline and completed > deadline)
        elif row.state in ERASURE_OPEN or row.state == "done":
            pending["done_after_the_period" if row.state == "done" else row.state] += 1
            overdue += bool(deadline and deadline < end)
    return {
        "complete_within": str(complete_within) if complete_within else None,
        "requested": requested,
        "done": done,
        "done_late": done_late,
        "pending": sum(pending.values()),
        "pending_by_state": dict(sorted(pending.items())),
        "pending_overdue": overdue,
    }


def _deletions(rows) -> dict:
    """Deletion requests sent to recipients, by recipient: how many, for how many people, why, outcome."""
    by_recipient: dict[str, dict] = {}
    for row in rows:
        mine = by_recipient.setdefault(
            row.recipient_id, {"requests": 0, "subjects": 0, "by_reason": Counter(), "by_status": Counter()}
        )
        mine["requests"] += 1
        mine["subjects"] += row.subjects
        mine["by_reason"][row.reason] += 1
        mine["by_status"][row.status] += 1
    return {
        "requests": len(rows),
        "subjects": sum(row.subjects for row in rows),
        "by_recipient": {
            recipient: {
                **d,
                "by_reason": dict(sorted(d["by_reason"].items())),
                "by_status": dict(sorted(d["by_status"].items())),
            }
            for recipient, d in sorted(by_recipient.items())
        },
    }


def _sharing(entries: list[dict]) -> dict:
    """The sharing register's entries whose data interval ended in the period."""
    listed = [
        {
            "recipient_id": e["recipient_id"],
            "recipient_name": e["recipient_name"],
            "legal_basis": e["legal_basis"],
            "interval_start": e["interval_start"],
            "interval_end": e["interval_end"],
            "outcome": e["outcome"],
            "rule": e["rule"],
            "records": int(e["records"]),
            "categories": sorted(e["categories"]),
            "manifest_sha256": e["manifest_sha256"],
        }
        for e in entries
    ]
    outcomes = Counter(e["outcome"] for e in listed)
    return {
        "entries": listed,
        "delivered": outcomes.get("delivered", 0),
        "refused": outcomes.get("refused", 0),
        "records_delivered": sum(e["records"] for e in listed if e["outcome"] == "delivered"),
    }


def render(statistics: dict) -> str:
    """The statistics as HTML (``include/lifecycle/templates/request_statistics.html.j2``)."""
    return reports.render(TEMPLATE, report=statistics)
