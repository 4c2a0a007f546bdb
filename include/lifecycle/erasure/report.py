"""The cancellation report of a run and the requests past ``complete_within``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lifecycle import reports
from lifecycle.clock import iso_utc

if TYPE_CHECKING:
    from lifecycle.state.erasures import ErasureRecord


#: erasure states whose ``complete_within`` clock runs (a legal hold, *held*, suspends it)
RUNNING = ("pending", "due", "erasing", "purging", "failed")


def deadlines(config, state) -> list[tuple[ErasureRecord, datetime]]:
    """Each open request whose clock runs, with the instant it must be done by: requested + ``complete_within``."""
    within = config.cancellation.complete_within
    return [(r, within.after(datetime.fromisoformat(r.requested_at))) for r in state.erasures.in_states(*RUNNING)]


def overdue(config, state, subject_hash, as_of: datetime) -> list[dict]:
    """Requests not done within ``complete_within`` (legal holds suspend the clock), by keyed hash."""
    return [
        {"subject": subject_hash(r.subject_id), "state": r.state, "deadline": iso_utc(deadline)}
        for r, deadline in deadlines(config, state)
        if deadline < as_of
    ]


def write_report(config, state, subject_hash, run_id: str, as_of: datetime) -> dict:
    """``cancellation/<date>/<run>/report.json|html``: subjects by state, notices, this run's
    certificates, requests past their deadline.  No personal information."""
    counts = state.erasures.counts()
    done = state.erasures.done_in_run(run_id)
    document = {
        "report": "cancellation erasure",
        "run_id": run_id,
        "as_of": iso_utc(as_of),
        "states": counts,
        "notices": state.notices.counts(),
        "completed_this_run": len(done),
        "certificates": sorted(r.certificate for r in done if r.certificate),
        "overdue": overdue(config, state, subject_hash, as_of),
        "complete_within": str(config.cancellation.complete_within),
    }
    written = reports.ReportWriter(config.catalog, state.ledger).write_run(
        "cancellation", document, run_id, template="cancellation_report.html.j2", kind="erasure.report"
    )
    return {
        **written,
        "states": counts,
        "overdue": len(document["overdue"]),
        "certificates": document["certificates"],
    }
