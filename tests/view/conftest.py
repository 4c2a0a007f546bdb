"""A small world for the Privacy view: a state store on each backend, the demo configuration,
and a reports folder of its own with documents of every kind the view shows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from lifecycle.config import load_config
from lifecycle.demo.incident import form as demo_form
from lifecycle.incident.form import parse
from lifecycle.incident.models import (
    Approval,
    ContactLists,
    FallbackDecision,
    Figures,
    Obligations,
    RegulatorDecision,
    Scope,
    facts_json,
    to_json,
)
from lifecycle.reports import ReportSink
from lifecycle.state import StateStore
from lifecycle.state.erasures import Intake
from lifecycle.view.incidents import run_folder

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DRY, REAL = "manual__2026-12-02T10:00:00+00:00", "manual__2026-12-02T11:00:00+00:00"


@dataclass
class World:
    config: object
    state: StateStore
    sink: ReportSink
    incident_id: str
    folder: str  # the real run's documents

    def write(self, key: str, data: bytes | str) -> str:
        self.sink.write(key, data.encode() if isinstance(data, str) else data, content_type="text/plain")
        return key


def _iso(when: datetime) -> str:
    return when.isoformat()


@pytest.fixture
def world(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_VAR_DIR", str(tmp_path))  # the demo catalog's reports: $LIFECYCLE_VAR_DIR/reports
    config = load_config()
    state = StateStore(engine, dataset_names=set(config.catalog.datasets))
    sink = ReportSink(config.catalog)
    # cancellations: one long overdue, one pending, one done, one withdrawn
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=2)
    state.erasures.record_intake(
        [
            Intake("1", ("r1",), _iso(old), _iso(old + timedelta(days=15)), "due", None),
            Intake("2", ("r2",), _iso(recent), _iso(recent + timedelta(days=15)), "pending", None),
            Intake("3", ("r3",), _iso(old), _iso(old + timedelta(days=15)), "withdrawn", None),
            Intake("4", ("r4",), _iso(old), _iso(old + timedelta(days=15)), "due", None),
        ],
        at=_iso(NOW - timedelta(days=3)),
    )
    state.erasures.mark_done([("4", _iso(NOW - timedelta(days=1)), "certificates/x.html")])
    state.holds.add("7", reason="case 1", until=(NOW + timedelta(days=9)).date(), today=NOW.date())
    state.holds.add("8", reason="case 2", today=NOW.date())
    # the incident: a dry run, then an approved real run with lists
    conf = demo_form(NOW - timedelta(hours=1), dry_run=True)
    incident = parse(conf, config.catalog)
    real = parse({**conf, "dry_run": False}, config.catalog)
    for run_id, f in ((DRY, incident), (REAL, real)):
        state.incidents.register(
            incident_id=f.incident_id,
            title=f.title,
            discovered_at=_iso(f.discovered_at),
            run_id=run_id,
            phase=f.phase,
            dry_run=f.dry_run,
            as_of=_iso(NOW - timedelta(hours=1)),
            facts=facts_json(f),
        )
        deadline = f.discovered_at + timedelta(hours=72)
        state.incidents.update_run(
            run_id,
            scope=to_json(
                Scope(
                    20,
                    20,
                    0,
                    0,
                    {"access_logs": 40},
                    {},
                    ("access_records",),
                    {"email": 17, "phone": 2, "none": 1},
                    {"DE": 20},
                    {"en": 20},
                    1,
                )
            ),
            obligations=to_json(
                Obligations(
                    20,
                    ("DE",),
                    (RegulatorDecision("eu_lead_sa", "Lead SA", None, True, ("DE",), deadline, "72h", True),),
                    FallbackDecision(False, False, 3, 20, 0.15, ("below 500000 affected",)),
                    NOW - timedelta(hours=1),
                )
            ),
        )
    state.incidents.update_run(
        REAL,
        approval=to_json(Approval("approved", "responder", "Required Actions")),
        figures=to_json(Figures(lists=ContactLists(1, 2, 1, {}), final={"done": True})),
    )
    folder = run_folder(incident.incident_id, REAL)
    world = World(config, state, sink, incident.incident_id, folder)
    for run_id in (DRY, REAL):
        f = run_folder(incident.incident_id, run_id)
        world.write(f + "preview/email.en.txt", "Subject: Notice\n\nDear customer,\nwhat happened.")
        world.write(f + "preview/email.en.html", "<p>Dear customer, what happened.</p>")
        world.write(f + "preview/announcement.html", "<p>Announcement</p>")
    world.write(folder + "letters.csv", "subject,name\n1,A Person\n")
    world.write(folder + "telephone.csv", "subject,phone\n2,+49 000\n")
    world.write(folder + "report.eu_lead_sa.pdf", b"%PDF-1.4 test")
    for day, removed in (("2026-11-30", 5), ("2026-12-01", 7)):
        report = {
            "report": "retention",
            "run_id": f"scheduled__{day}",
            "as_of": f"{day}T02:00:00+00:00",
            "datasets": [
                {
                    "dataset": "access_logs",
                    "rule": "logs-6mo",
                    "action": "delete",
                    "effective_cutoff": "2026-06-01",
                    "deleted": removed,
                    "anonymized": 1,
                    "held": 2,
                    "under_floor": 1,
                    "referenced": 1,
                    "locked": 0,
                },
            ],
        }
        world.write(f"retention/{day}/scheduled__{day}/report.json", json.dumps(report))
        world.write(f"retention/{day}/scheduled__{day}/report.html", "<p>report</p>")
    world.write("certificates/abc.html", "<p>certificate</p>")
    return world
