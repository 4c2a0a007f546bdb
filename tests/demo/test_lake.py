"""The demo's analytics lake: the rows it writes (repeatable, spread over the days, the held
person kept out of the expired days), written through the catalog's lake systems, and the
summary lines ``make demo`` prints (counts only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from deltalake import DeltaTable

from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.demo import lake
from lifecycle.demo.plan import plan
from lifecycle.stores import Stores
from tests.stores import lake_world

REPO = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 11, 26, 0, 0, 0)
USERS = 120


def test_events_are_repeatable_and_spread_over_the_days():
    events = lake.events(USERS, AS_OF, 20_000)
    assert events.equals(lake.events(USERS, AS_OF, 20_000))
    assert not events.equals(lake.events(USERS, AS_OF, 20_000, seed=1))
    assert events.num_rows == 20_000 and events.schema == lake.EVENTS
    oldest, newest = pc.min(events["ts"]).as_py(), pc.max(events["ts"]).as_py()
    assert AS_OF - timedelta(days=lake.EVENT_DAYS) <= oldest < AS_OF - timedelta(days=lake.EVENT_DAYS - 1)
    assert newest <= AS_OF
    assert pc.min(events["user_id"]).as_py() >= 1 and pc.max(events["user_id"]).as_py() <= USERS


def test_the_held_person_has_no_expired_events_and_the_due_have_some_every_day():
    events = lake.events(USERS, AS_OF, 60_000)
    the_plan = plan(USERS)
    held = [uid for uid, datasets, _ in the_plan.holds if datasets is None]
    expired = events.filter(
        pc.less(events["ts"], pa.scalar(AS_OF - timedelta(days=lake.KEPT_DAYS - 1), pa.timestamp("us")))
    )
    assert expired.num_rows > 0
    assert not pc.any(pc.is_in(expired["user_id"], value_set=pa.array(held, pa.int64()))).as_py()
    due = [uid for uid, state in the_plan.cancellations.items() if state.startswith("due") and uid not in held]
    for uid in due:
        theirs = events.filter(pc.equal(events["user_id"], uid))["ts"].to_pylist()
        assert len({(AS_OF - t).days for t in theirs}) >= lake.EVENT_DAYS - 1


def test_seed_writes_both_tables_through_the_catalogs_lake_systems(tmp_path, connect):
    connect("lake_app", lake_world.app_database(tmp_path))
    catalog = Catalog(
        CatalogFile.model_validate(
            {
                "systems": {
                    "app": {"type": "sql", "conn_id": "lake_app"},
                    "analytics": {
                        "type": "iceberg",
                        "catalog": {"path": str(tmp_path / "catalog.db")},
                        "warehouse": str(tmp_path / "warehouse"),
                    },
                    "marts": {"type": "delta", "location": str(tmp_path / "delta")},
                },
                "categories": {"usage": {}},
                "subject": {"dataset": "users", "key": "id", "contact": {"email": "email"}},
                "datasets": {
                    "users": {"system": "app", "table": "users", "primary_key": "id", "fields": {"email": {}}},
                    "events": {
                        "system": "analytics",
                        "table": "analytics.events",
                        "primary_key": "id",
                        "subject": "user_id -> users.id",
                        "created": "ts",
                        "category": "usage",
                        "fields": {"event": {"personal": False}, "path": {"personal": False}, "ip": {}},
                    },
                    "orders_daily": {
                        "system": "marts",
                        "table": "orders_daily",
                        "primary_key": "id",
                        "subject": "user_id -> users.id",
                        "created": "day",
                        "category": "usage",
                        "fields": {"orders": {"personal": False}, "amount_cents": {"personal": False}, "ship_city": {}},
                    },
                },
            }
        )
    )
    assert lake.lake_datasets(catalog) == {"events": "iceberg", "orders_daily": "delta"}
    counts = lake.seed(catalog, users=10, as_of=AS_OF, rows=3_000)
    assert counts["events"] == 3_000 and counts["orders_daily"] > 10
    again = lake.seed(catalog, users=10, as_of=AS_OF, rows=2_000, reset=True)
    stores = Stores(catalog)
    table = stores.of("events").table("events")
    assert table.scan().to_arrow().num_rows == again["events"] == 2_000
    assert [f.name for f in table.spec().fields] == ["ts_day"]
    assert DeltaTable(str(tmp_path / "delta" / "orders_daily")).to_pyarrow_table().num_rows == again["orders_daily"]


def test_the_catalog_names_every_lake_column():
    """catalog.yaml's lake datasets against the schemas ``seed`` writes: every column structural
    or under ``fields``, the link onto the subject's key."""
    catalog = yaml.safe_load((REPO / "config" / "lifecycle" / "catalog.yaml").read_text())
    written = {"events": lake.EVENTS, "orders_daily": lake.ORDERS_DAILY}
    for name, schema in written.items():
        ds = catalog["datasets"][name]
        assert catalog["systems"][ds["system"]]["type"] in ("iceberg", "delta")
        link = ds["subject"].split("->")[0].strip()
        named = {ds["primary_key"], ds["created"], link, *ds["fields"]}
        assert named == set(schema.names), name
        assert ds["subject"].split("->")[1].strip() == "users.id"


def test_summary_counts_drops_erasures_and_purges():
    entries = [
        ("retention.drop_partition", {"dataset": "events", "partition": "ts_day=2026-08-25"}),
        ("retention.drop_partition", {"dataset": "events", "partition": "ts_day=2026-08-26"}),
        ("retention.drop_partition", {"dataset": "access_logs", "partition": "p1"}),
        ("erasure.plan", {"dataset": "events", "action": "delete", "rows": {"7": 120, "9": 80}}),
        (
            "erasure.purged",
            {
                "dataset": "events",
                "snapshots_expired": 2,
                "files_removed": 9,
                "bytes_freed": 2_500_000,
                "files_read": 7,
                "bytes_read": 900,
            },
        ),
    ]
    lines = lake.summary(entries, {"events", "orders_daily"})
    assert "retention dropped 2 expired day partition(s) of events whole (no file rewritten)" in lines[1]
    assert lines[2] == "  cancellation: events: 200 row(s) of 2 person(s) deleted"
    assert "9 file(s) removed (2.5 MB); verification read 7 file(s), 900 bytes" in lines[3]
    assert lake.summary([], {"events"}) == []
