"""The breach register (GDPR art. 33(5)): every incident of the incident register, those the
responders decided not to notify included, with the reason.

A thin composition of the incident register: ``incident.register.breach_record`` reads each
incident back (facts, effects, remedies, people affected and their notices, the decision,
each regulator's report and its deadline); this module picks the incidents of a period,
orders them, totals them and renders them through the one renderer
(``breach_register.html.j2``).  An incident belongs to a period when it was discovered, or
first recorded (its first run's logical time), inside [start, end).  Deadlines are judged at
``as_of``: the period's end unless given.  The same state and period give the same document.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

from lifecycle import reports
from lifecycle.catalog.models import Reports
from lifecycle.clock import aware_utc, iso_utc
from lifecycle.errors import LifecycleError
from lifecycle.incident.owed import runs_by_incident
from lifecycle.incident.register import breach_record

if TYPE_CHECKING:
    from lifecycle.config import Config
    from lifecycle.state import StateStore

TEMPLATE = "breach_register.html.j2"
KIND = "breach_register"


def breach_register(
    config: Config,
    state: StateStore,
    start: datetime | None,
    end: datetime | None,
    *,
    as_of: datetime | None = None,
) -> dict:
    """The register's incidents discovered or recorded in [start, end), as JSON-ready data; ``None``
    for an end leaves the period open on that side (both: every incident).  Deadlines not met
    yet are judged at ``as_of`` (default: ``end``; for an open end, the latest run's logical time)."""
    start, end = (aware_utc(t) if t else None for t in (start, end))
    if start and end and end <= start:
        raise LifecycleError(
            f"breach register: the period's end {iso_utc(end)} is not after its start {iso_utc(start)}"
        )
    by_incident = runs_by_incident(state)
    judged = (
        aware_utc(as_of) if as_of else end or max((r.as_of for rs in by_incident.values() for r in rs), default=None)
    )
    records = (breach_record(state, config.catalog, runs, judged) for runs in by_incident.values())
    entries = [entry for entry in records if _within(entry, start, end)]
    entries.sort(key=lambda e: (e["facts"]["discovered_at"], e["incident_id"]))
    return {
        "record": "breach register",
        "law": "GDPR art. 33(5): every personal data breach, its facts, effects and remedial action; PIPL art. 57",
        "period": {"from": iso_utc(start) if start else None, "to": iso_utc(end) if end else None},
        "as_of": iso_utc(judged) if judged else None,
        "totals": _totals(entries),
        "incidents": entries,
    }


def all_breaches(config: Config, state: StateStore, *, as_of: datetime | None = None) -> dict:
    """Every incident of the register (``breach_register`` with no period)."""
    return breach_register(config, state, None, None, as_of=as_of)


def render(register: dict) -> str:
    """The register as an HTML page (the one renderer)."""
    return reports.render(TEMPLATE, report=register)


def _within(entry: dict, start: datetime | None, end: datetime | None) -> bool:
    """Discovered, or first recorded, inside [start, end)."""
    moments = (datetime.fromisoformat(entry["facts"][k]) for k in ("discovered_at", "recorded_at"))
    return any((start is None or start <= t) and (end is None or t < end) for t in moments)


def _totals(entries: list[dict]) -> dict:
    decisions = Counter(e["decision"]["decision"] for e in entries)
    deadlines = Counter(r["deadline_status"] for e in entries for r in e["regulators"])
    people = ("affected", "notified", "owed", "uncertain", "undeliverable")
    return {
        "incidents": len(entries),
        "decisions": dict(sorted(decisions.items())),
        "people": {k: sum(e["people"][k] for e in entries) for k in people},
        "regulator_deadlines": dict(sorted(deadlines.items())),
    }


def write(config: Config, register: dict, folder: str | None = None) -> dict[str, str]:
    """The register's JSON (canonical) and HTML, in ``folder`` (a local folder) or else the reports
    destination under ``records/``; where each went."""
    destination = Reports(path=str(folder)) if folder else None
    sink = reports.ReportSink(config.catalog, destination)
    period = register["period"]
    name = f"breach-register_{(period['from'] or 'start')[:10]}_{(period['to'] or 'end')[:10]}"
    key = name if folder else f"records/{name}"
    written = {
        "json": sink.write(f"{key}.json", reports.canonical(register), content_type="application/json"),
        "html": sink.write(f"{key}.html", render(register).encode("utf-8"), content_type="text/html; charset=utf-8"),
    }
    return {kind: w.location for kind, w in written.items()}
