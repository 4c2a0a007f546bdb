"""What a retention plan asks a lake store besides the verbs: ``tally`` (rows, and of those the
rows a rule takes, in one call) and ``units`` told how many rows to expect, on both engines."""

from __future__ import annotations

from datetime import timedelta

import pytest
from deltalake import write_deltalake
from pyiceberg.catalog.sql import SqlCatalog

from lifecycle.stores.contract import ALL, Selection
from tests.stores import lake_world as world
from tests.stores.lake_world import NOW


@pytest.fixture(params=["iceberg", "delta"])
def events_store(request, connect, tmp_path, s3_endpoint):
    bucket = world.connect_world(connect, tmp_path, s3_endpoint)
    if request.param == "iceberg":
        system = {
            "type": "iceberg",
            "conn_id": "lake_s3",
            "catalog": {"path": str(tmp_path / "catalog.db")},
            "warehouse": f"s3://{bucket}/warehouse",
        }
        s3 = {
            "s3.endpoint": s3_endpoint,
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing",
            "s3.region": "us-east-1",
        }
        other = SqlCatalog("lifecycle", uri=f"sqlite:///{tmp_path / 'catalog.db'}", **s3)
        other.create_namespace("analytics")
        other.create_table(
            "analytics.events", schema=world.EVENT_SCHEMA, location=f"s3://{bucket}/warehouse/events"
        ).append(world.events())
        table = "analytics.events"
    else:
        system = {"type": "delta", "location": str(tmp_path / "delta")}
        write_deltalake(str(tmp_path / "delta" / "events"), world.events())
        table = "events"
    return world.stores(world.catalog(system, table, "order_events")).of("events")


def test_tally_counts_the_rows_and_those_a_rule_takes(events_store):
    old = Selection(older_than=NOW - timedelta(hours=100), exclude_subjects=("3",))
    assert events_store.tally("events", old, ALL) == (world.EVENTS, 99 - 10)
    within = Selection(created_not_in=((None, NOW - timedelta(hours=150)),))  # a span dropped whole left out
    assert events_store.tally("events", old, within) == (151, 50 - 5)


def test_units_take_the_rows_expected(events_store):
    old = Selection(older_than=NOW - timedelta(hours=100))
    units = events_store.units("events", old, 50, expected=99)
    assert [(u.low, u.high, u.rows) for u in units] == [(101, 150, 50), (151, 199, 49)]


def test_a_selection_reading_no_rows_counts_none(events_store):
    """Nobody's rows read (a person without events): the masks over no rows are still boolean."""
    nobody = Selection(subjects=("999",), pending_anonymization=("email",))
    assert events_store.count_by_subject("events", nobody) == {}
    assert events_store.remaining("events", nobody).items == 0
    outside = Selection(subjects=("999",), created_not_in=((None, NOW - timedelta(hours=150)),))
    assert events_store.count("events", outside) == 0


def test_day_partitions_dropped_side_by_side_are_all_gone(connect, tmp_path, s3_endpoint):
    """Retention drops a run's partitions a few at a time on threads sharing one store: each
    commit must build on the one before (none undone by another's stale table)."""
    from concurrent.futures import ThreadPoolExecutor

    from pyiceberg.transforms import DayTransform

    bucket = world.connect_world(connect, tmp_path, s3_endpoint)
    system = {
        "type": "iceberg",
        "conn_id": "lake_s3",
        "catalog": {"path": str(tmp_path / "catalog.db")},
        "warehouse": f"s3://{bucket}/warehouse",
    }
    s3 = {"s3.endpoint": s3_endpoint, "s3.access-key-id": "testing", "s3.secret-access-key": "testing"}
    other = SqlCatalog("lifecycle", uri=f"sqlite:///{tmp_path / 'catalog.db'}", **s3, **{"s3.region": "us-east-1"})
    other.create_namespace("analytics")
    table = other.create_table(
        "analytics.events", schema=world.EVENT_SCHEMA, location=f"s3://{bucket}/warehouse/events"
    )
    with table.update_spec() as spec:
        spec.add_field("ts", DayTransform(), "ts_day")
    table.append(world.events())
    store = world.stores(world.catalog(system, "analytics.events", "order_events")).of("events")
    oldest = [p.name for p in store.partitions("events")][:4]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda name: store.drop_partition("events", name), oldest))
    assert [store.partition_state("events", name) for name in oldest] == ["gone"] * 4
    assert store.count("events") == world.EVENTS - sum(
        1 for n in range(world.EVENTS) if (NOW - timedelta(hours=n)).date().isoformat() in {o[-10:] for o in oldest}
    )
