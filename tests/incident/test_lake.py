"""Incident resolution on lake tables: the people with a row of a Delta table (linked directly,
and through SQL orders: two hops) created in the incident's window."""

from __future__ import annotations

import copy
from datetime import timedelta

import sqlalchemy as sa
from deltalake import write_deltalake

from lifecycle.config import load_config
from lifecycle.incident import IncidentNotification, parse
from lifecycle.state import StateStore
from tests.config import sample
from tests.stores import lake_world as world

WINDOW = (world.NOW - timedelta(hours=3), world.NOW)  # events 0..3 (people 1..4); order event 0 (order 1: person 1)
FORM = {
    "incident_id": "INC-LAKE-1",
    "title": "Analytics export exposure",
    "discovered_at": "2026-06-02T08:00:00Z",
    "occurred_from": WINDOW[0].isoformat() + "Z",
    "occurred_to": WINDOW[1].isoformat() + "Z",
    "cause": "A misconfigured export made analytics tables readable.",
    "affected_datasets": ["events", "order_events"],
    "impact": "Someone could learn which pages you visited.",
    "measures_taken": "We closed the export.",
    "precautions": "Be wary of messages that quote your recent activity.",
    "remedies": "None needed.",
    "channels": ["email"],
    "phase": "initial",
    "dry_run": True,
}


def test_people_with_lake_rows_in_the_window_are_affected(tmp_path, connect):
    world.connect_world(connect, tmp_path, None)
    root = tmp_path / "delta"
    write_deltalake(str(root / "events"), world.events())
    write_deltalake(str(root / "order_events"), world.order_events())
    catalog = world.catalog_data({"type": "delta", "location": str(root)}, "events", "order_events")
    catalog["systems"]["state"] = {"type": "sql", "conn_id": "lifecycle_state"}
    catalog["reports"] = {"path": str(tmp_path / "reports")}
    incidents = copy.deepcopy(sample.INCIDENTS)
    incidents.pop("announcement")
    config = load_config(sample.write(tmp_path / "config", {"catalog.yaml": catalog, "incidents.yaml": incidents}))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    state = StateStore(engine, dataset_names=set(config.catalog.datasets))
    notifier = IncidentNotification(config, state)
    notifier.register(parse(FORM, config.catalog), "manual__lake", world.NOW + timedelta(days=1))

    scope = notifier.resolve("manual__lake")
    assert scope["affected"] == 4 and scope["new"] == 4 and scope["reach"] == {"email": 4}
    assert notifier.services.run("manual__lake").scope.datasets == {"events": 4, "order_events": 1}
    assert state.incidents.subjects_of(["manual__lake"]) == {"1", "2", "3", "4"}
    assert notifier.resolve("manual__lake") == scope, "a rerun returns what is stored"
    engine.dispose()
