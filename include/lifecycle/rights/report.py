"""The requests report of a run, and the requests past ``respond_within``."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from lifecycle import reports
from lifecycle.clock import aware_utc, iso_utc


def overdue(state, as_of: datetime) -> list[dict]:
    """Open requests whose due date has passed, by request id (no person named)."""
    return [
        {"request_id": r.request_id, "kind": r.kind, "state": r.state, "due_at": r.due_at}
        for r in state.requests.open_requests()
        if datetime.fromisoformat(r.due_at) < aware_utc(as_of)
    ]


def _what(request) -> list[str]:
    """What a request did (or, planned, would do), as lines of counts: datasets, objects, recipients."""
    shown, verb = (request.result, "done") if request.result else (request.plan, "planned")
    if not shown:
        return []
    lines = []
    for name, d in sorted((shown.get("datasets") or {}).items()):
        if isinstance(d, dict):
            count = d.get("changed", d.get("selected", d.get("found", 0)))
            kept = "; ".join(f"{n} kept: {why}" for why, n in sorted((d.get("kept") or {}).items()))
            lines.append(f"{name}: {d.get('action', verb)} {count}" + (f" ({kept})" if kept else ""))
        else:
            lines.append(f"{name}: {d}")
    for key in ("rows", "objects", "withdrawn"):
        if isinstance(shown.get(key), int):
            lines.append(f"{key}: {shown[key]}")
    if shown.get("recipients") is not None and isinstance(shown["recipients"], list):
        lines.append(f"deletion requests to {len(shown['recipients'])} recipient(s)")
    return lines


def write_report(rights, run_id: str, as_of: datetime) -> dict:
    """``requests/<date>/<run>/report.json|html``: the requests this run worked on, with what
    was planned and done (counts), every request by state, and those past their due date."""
    state = rights.state
    everything = state.requests.in_states("received", "planned", "done", "rejected", "failed")
    this_run = [
        {
            "request_id": r.request_id,
            "kind": r.kind,
            "source": r.source,
            "state": r.state,
            "reason": r.reason,
            "received_at": r.received_at,
            "due_at": r.due_at,
            "completed_at": r.completed_at,
            "late": bool(r.completed_at and r.completed_at > r.due_at),
            "what": _what(r),
        }
        for r in everything
        if r.run_id == run_id
    ]
    document = {
        "report": "subject requests",
        "run_id": run_id,
        "as_of": iso_utc(as_of),
        "respond_within": str(rights.settings.respond_within),
        "states": dict(Counter(r.state for r in everything)),
        "this_run": this_run,
        "overdue": overdue(state, as_of),
    }
    written = reports.ReportWriter(rights.catalog, state.ledger).write_run(
        "requests", document, run_id, template="requests_report.html.j2", kind="request.report"
    )
    return {
        **written,
        "states": document["states"],
        "overdue": len(document["overdue"]),
    }
