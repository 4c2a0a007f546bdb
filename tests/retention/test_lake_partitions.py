"""Retention on a Delta table partitioned on its ``created`` date column: the wholly expired
days go in one commit (no file rewritten), each recorded in the ledger; a run killed between
that commit and its records is recorded by the rerun, once."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa
from deltalake import DeltaTable, write_deltalake

from lifecycle.config import load_config
from lifecycle.retention import Retention, unit_group
from lifecycle.state import StateStore
from lifecycle.stores import open_store
from lifecycle.stores.lake.delta import DeltaStore
from tests.config import sample
from tests.stores import lake_world as world

AS_OF = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)  # keep 4d: cutoff 2026-05-28 00:00
EXPIRED = ["day=2026-05-24", "day=2026-05-25", "day=2026-05-26", "day=2026-05-27"]


@pytest.fixture
def lake(tmp_path, connect):
    """(configuration, state, the table's path)."""
    world.connect_world(connect, tmp_path, None)
    root = tmp_path / "delta"
    events = world.events()
    write_deltalake(
        str(root / "daily"),
        events.append_column("day", pc.cast(events["ts"], pa.date32())),
        partition_by=["day"],
    )
    write_deltalake(str(root / "order_events"), world.order_events())
    catalog = world.catalog_data({"type": "delta", "location": str(root), "purge_after": "0"}, "daily", "order_events")
    catalog["datasets"]["events"]["created"] = "day"
    catalog["systems"]["state"] = {"type": "sql", "conn_id": "lifecycle_state"}
    catalog["reports"] = {"path": str(tmp_path / "reports")}
    retention = {
        "max_fraction_per_run": 1.0,
        "rules": [{"name": "events-4d", "applies_to": {"datasets": ["events"]}, "keep": "4d"}],
    }
    config = load_config(sample.write(tmp_path / "config", {"catalog.yaml": catalog, "retention.yaml": retention}))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    yield config, StateStore(engine, dataset_names=set(config.catalog.datasets)), str(root / "daily")
    engine.dispose()


class _KilledAfterCommit(DeltaStore):
    """A store whose process dies after the drop's commit, before anything is recorded."""

    def drop_partitions(self, dataset, names):
        super().drop_partitions(dataset, names)
        raise KeyboardInterrupt


def _opener(catalog, killed: bool):
    return lambda system: (
        _KilledAfterCommit(catalog, system) if killed and system == "lake" else open_store(catalog, system)
    )


def _apply(config, state, plan, *, killed: bool = False) -> Retention:
    retention = Retention(config, state, _opener(config.catalog, killed))
    groups = retention.gate(plan)
    for stage in range(3):
        for unit in groups.get(unit_group("lake", stage), []):
            retention.apply(unit, plan.run_id, AS_OF)
    return retention


def _days(path: str) -> set[str]:
    table = pa.table(DeltaTable(path).get_add_actions(flatten=True))
    return {f"day={d}" for d in table.column("partition.day").to_pylist()}


@pytest.mark.parametrize("rerun", ["same run", "next run"])
def test_expired_days_go_in_one_commit_and_a_kill_before_the_records_is_recorded_by_the_rerun(lake, rerun):
    config, state, path = lake
    plan = Retention(config, state).plan("scheduled__first", AS_OF)
    drops = plan.dataset("events").drops
    assert [p.name for p in drops] == EXPIRED and [p.rows for p in drops] == [19, 24, 24, 24]
    version, files = DeltaTable(path).version(), set(DeltaTable(path).file_uris())
    with pytest.raises(KeyboardInterrupt):
        _apply(config, state, plan, killed=True)
    assert DeltaTable(path).version() == version + 1, "four partitions, one commit"
    assert set(DeltaTable(path).file_uris()) < files, "files removed whole, none written"
    assert not set(EXPIRED) & _days(path)
    assert list(state.ledger.entries(kind="retention.drop_partition")) == []

    if rerun == "same run":
        retention = _apply(config, state, plan)
    else:
        plan = Retention(config, state).plan("scheduled__later", AS_OF)
        assert {p.name for p in plan.dataset("events").drops if p.run_id == "scheduled__first"} == set(EXPIRED)
        retention = _apply(config, state, plan)
    assert retention.verify(plan)["events"]["remaining"] == 0
    recorded = [e.payload for e in state.ledger.entries(kind="retention.drop_partition")]
    assert sorted(r["partition"] for r in recorded) == EXPIRED, "each partition recorded once"
    assert sum(r["rows"] for r in recorded) == 91
    assert DeltaTable(path).version() == version + 1, "nothing dropped twice"
