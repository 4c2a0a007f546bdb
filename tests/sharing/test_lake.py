"""A sharing extract reading lake tables (Delta on moto's S3, linked directly and through SQL
orders): streamed, only the people whose consent is in force at the interval's end."""

from __future__ import annotations

import json
from datetime import UTC, timedelta

import sqlalchemy as sa
from deltalake import write_deltalake

from lifecycle.config import load_config
from lifecycle.sharing.service import Interval, Sharing
from lifecycle.state import StateStore
from lifecycle.stores import open_store
from tests.config import sample
from tests.stores import lake_world as world

END = world.NOW.replace(tzinfo=UTC)
INTERVAL = Interval(END - timedelta(days=1), END)
HMAC_KEY = "lake-sharing-test-hmac-key-0123456789"
AGREEMENT = {"id": "DPA-9", "type": "confidentiality", "signed": "2024-03-01", "expires": "2027-03-01"}


def test_an_extract_streams_lake_rows_of_consenting_people_only(tmp_path, connect, s3_endpoint, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", HMAC_KEY)
    connect("lifecycle_signing", json.dumps({"conn_type": "generic", "password": "lake-sharing-signing-key"}))
    bucket = world.connect_world(connect, tmp_path, s3_endpoint)
    root = tmp_path / "delta"
    write_deltalake(str(root / "events"), world.events())
    write_deltalake(str(root / "order_events"), world.order_events())
    catalog = world.catalog_data({"type": "delta", "location": str(root)}, "events", "order_events")
    catalog["systems"].update(
        state={"type": "sql", "conn_id": "lifecycle_state"}, drop={"type": "s3", "conn_id": "lake_s3", "bucket": bucket}
    )
    catalog["reports"] = {"path": str(tmp_path / "reports")}
    recipients = {
        "recipients": [
            {
                "id": "insights",
                "name": "Insights Ltd.",
                "contact": "dp@insights.example",
                "role": "marketing_partner",
                "legal_basis": "consent",
                "purpose": "Usage analytics",
                "agreement": {**AGREEMENT, "covers": ["usage", "contact"]},
                "share": {"events": ["email", "path"], "order_events": ["note"]},
                "consent": {"dataset": "consents", "purpose": "analytics"},
                "delivery": {"system": "drop", "prefix": "insights/{ds}/", "format": "jsonl", "fetch_rows": 7},
            }
        ]
    }
    config = load_config(sample.write(tmp_path / "config", {"catalog.yaml": catalog, "recipients.yaml": recipients}))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    sharing = Sharing(config, StateStore(engine, dataset_names=set(config.catalog.datasets)), "insights")
    sharing.gate(INTERVAL, dag_id="sharing_insights", run_id="scheduled__lake")

    files = {d: sharing.extract(d, INTERVAL) for d in ("events", "order_events")}
    drop = open_store(config.catalog, "drop")
    events = [json.loads(line) for line in drop.get_bytes(files["events"]["key"]).decode().splitlines()]
    # person 1 consents; 2 withdrew the day before; 3 consented to mail only
    assert len(events) == files["events"]["records"] == 20
    assert {r["email"] for r in events} == {"user1@example.com"} and all(
        set(r) == {"_subject", "email", "path"} for r in events
    )
    assert len({r["_subject"] for r in events}) == 1 and events[0]["_subject"] != "1", "pseudonymized"
    notes = [json.loads(line) for line in drop.get_bytes(files["order_events"]["key"]).decode().splitlines()]
    assert sorted(r["note"] for r in notes) == sorted(f"note {n}" for n in range(60) if n % world.ORDERS + 1 in (1, 11))
    assert {r["_subject"] for r in notes} == {events[0]["_subject"]}, "the same person through two hops"
    engine.dispose()
