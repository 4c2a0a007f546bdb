"""Retention drops whole expired partitions (PostgreSQL declarative partitioning, MariaDB
``PARTITION BY RANGE``), on real servers: what the plan shows, what the ledger records, the
boundary and kept partitions through the row path, a killed drop finished by the rerun."""

from __future__ import annotations

import copy
import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from lifecycle.config import load_config
from lifecycle.errors import ConfigError
from lifecycle.evidence import partition_mark
from lifecycle.retention import Retention, unit_group
from lifecycle.scan import scan
from lifecycle.state import StateStore
from lifecycle.stores.sql import SqlStore
from tests.config import sample

pytestmark = pytest.mark.parametrize("backend_url", ["postgresql", "mariadb"], indirect=True, scope="session")

AS_OF = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)  # keep 6mo: cutoff 2025-12-01 12:00
MONTHS = [(2025, m) for m in range(1, 13)] + [(2026, m) for m in range(1, 6)]  # Jan 2025 .. May 2026
PER_MONTH = 10
HELD, OTHER = 3, 1
HELD_MONTH, NOTED_MONTH = (2025, 3), (2025, 5)  # a held subject's row; a row a note still points at
GONE_WHOLE = [m for m in MONTHS[:11] if m not in (HELD_MONTH, NOTED_MONTH)]  # Jan..Nov 2025, less two


def _month(year: int, month: int) -> str:
    return f"{year}-{month:02d}-01"


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + month // 12, month % 12 + 1)


def _rows():
    """(id, user_id, logged_at) for every log row: PER_MONTH a month, one of them on day 20 12:00:01
    (after the cutoff's time of day in December), the held subject's only row in HELD_MONTH."""
    rows, n = [], 0
    for year, month in MONTHS:
        for i in range(PER_MONTH):
            n += 1
            user = HELD if (year, month) == HELD_MONTH and i == 0 else OTHER + n % 2
            rows.append((n, user, datetime(year, month, 1 + 2 * i, 12, 0, i)))
    return rows


def _noted_log() -> int:
    return next(n for n, _, at in _rows() if (at.year, at.month) == NOTED_MONTH)


def _create(engine, partitioned: bool = True) -> None:
    postgres = engine.dialect.name == "postgresql"
    stamp = "timestamp" if postgres else "datetime"
    statements = [
        f"CREATE TABLE part_users (id integer PRIMARY KEY, email varchar(255), name varchar(100), created_at {stamp})",
        f"CREATE TABLE part_notes (id integer PRIMARY KEY, log_id bigint, created_at {stamp})",
    ]
    columns = f"id bigint NOT NULL, user_id integer, path varchar(200), logged_at {stamp} NOT NULL"
    bounds = [_month(*m) for m in MONTHS] + [_month(*_next(*MONTHS[-1]))]
    if not partitioned:
        statements.append(f"CREATE TABLE part_logs ({columns}, PRIMARY KEY (id))")
    elif postgres:
        statements.append(
            f"CREATE TABLE part_logs ({columns}, PRIMARY KEY (id, logged_at)) PARTITION BY RANGE (logged_at)"
        )
        statements += [
            f"CREATE TABLE part_logs_{low[:7].replace('-', '_')} PARTITION OF part_logs "
            f"FOR VALUES FROM ('{low}') TO ('{high}')"
            for low, high in itertools.pairwise(bounds)
        ]
        statements.append(
            f"CREATE TABLE part_logs_later PARTITION OF part_logs FOR VALUES FROM ('{bounds[-1]}') TO (MAXVALUE)"
        )
    else:
        parts = ", ".join(
            f"PARTITION p{low[:7].replace('-', '_')} VALUES LESS THAN ('{high}')"
            for low, high in itertools.pairwise(bounds)
        )
        statements.append(
            f"CREATE TABLE part_logs ({columns}, PRIMARY KEY (id, logged_at)) "
            f"PARTITION BY RANGE COLUMNS(logged_at) ({parts}, PARTITION plater VALUES LESS THAN (MAXVALUE))"
        )
    statements.append("CREATE INDEX part_logs_user ON part_logs (user_id)")
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
        conn.execute(
            sa.text("INSERT INTO part_users VALUES (:id, :email, :name, :at)"),
            [{"id": u, "email": f"u{u}@example.com", "name": f"U{u}", "at": datetime(2020, 1, 1)} for u in (1, 2, 3)],
        )
        conn.execute(
            sa.text("INSERT INTO part_logs VALUES (:id, :user, :path, :at)"),
            [{"id": n, "user": u, "path": f"/p/{n}", "at": at} for n, u, at in _rows()],
        )
        conn.execute(
            sa.text("INSERT INTO part_notes VALUES (1, :log, :at)"), {"log": _noted_log(), "at": datetime(2026, 5, 1)}
        )


def _files(tmp_path, **rule):
    files = copy.deepcopy(sample.FILES)
    for name in ("cancellation.yaml", "recipients.yaml", "incidents.yaml"):
        files.pop(name)
    files["catalog.yaml"]["subject"] = {"dataset": "users", "key": "id", "contact": {"email": "email", "name": "name"}}
    files["catalog.yaml"]["datasets"] = {
        "users": {
            "system": "app_db",
            "table": "part_users",
            "primary_key": "id",
            "created": "created_at",
            "fields": {"email": {"category": "basic_info", "anonymize": "hmac"}, "name": {"category": "basic_info"}},
        },
        "logs": {
            "system": "app_db",
            "table": "part_logs",
            "primary_key": "id",
            "subject": "user_id -> users.id",
            "created": "logged_at",
            "category": "access_records",
            "fields": {"path": {}},
        },
        "notes": {
            "system": "app_db",
            "table": "part_notes",
            "primary_key": "id",
            "subject": "log_id -> logs.id",
            "created": "created_at",
            "category": "access_records",
        },
    }
    files["catalog.yaml"]["reports"] = {"path": str(tmp_path / "reports")}
    files["retention.yaml"] = {
        "batch_size": 4,
        "max_fraction_per_run": 1.0,
        "rules": [{"name": "logs-6mo", "applies_to": {"datasets": ["logs"]}, "keep": "6mo", **rule}],
    }
    return files


def _config(tmp_path, **rule):
    return load_config(sample.write(tmp_path / "config", _files(tmp_path, **rule)))


@pytest.fixture
def world(engine, tmp_path):
    for table in ("part_notes", "part_logs", "part_users"):
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    state = StateStore(sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}"), dataset_names={"users", "logs", "notes"})
    state.holds.add(str(HELD), reason="litigation", today=AS_OF.date())
    yield engine, state, tmp_path
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("DROP TABLE IF EXISTS part_logs_2025_02"))  # a detached leftover, if a test failed
        for table in ("part_notes", "part_logs", "part_users"):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))


def _retention(engine, state, config, store=SqlStore):
    return Retention(config, state, open_store=lambda system: store(engine, config.catalog, system))


def _apply(retention, plan):
    groups = retention.gate(plan)
    for stage in range(3):
        for unit in groups[unit_group("app_db", stage)]:
            retention.apply(unit, plan.run_id, AS_OF)


def _expected_left() -> set[int]:
    """Ids that stay, by the seeding rule alone: young rows, the held row, the noted row."""
    cutoff = datetime(2025, 12, 1, 12, 0, 0)
    return {n for n, user, at in _rows() if at >= cutoff or user == HELD or n == _noted_log()}


def _ids(engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT id FROM part_logs")).scalars())


def _partition_names(engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return set(
                conn.execute(
                    sa.text("SELECT relname FROM pg_class WHERE relname LIKE 'part_logs_%' AND relkind = 'r'")
                ).scalars()
            )
        return set(
            conn.execute(
                sa.text(
                    "SELECT PARTITION_NAME FROM information_schema.PARTITIONS "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'part_logs'"
                )
            ).scalars()
        )


def _detached(engine) -> set[str]:
    """Tables of the partitions' names that are no longer partitions (PostgreSQL)."""
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.text(
                    "SELECT relname FROM pg_class WHERE relname LIKE 'part_logs_%' AND relkind = 'r' "
                    "AND NOT relispartition"
                )
            ).scalars()
        )


def _label(engine, year: int, month: int) -> str:
    return f"part_logs_{year}_{month:02d}" if engine.dialect.name == "postgresql" else f"p{year}_{month:02d}"


def test_the_plan_shows_which_partitions_go_and_why(world):
    engine, state, tmp_path = world
    _create(engine)
    plan = _retention(engine, state, _config(tmp_path)).plan("scheduled__part", AS_OF)
    logs = plan.dataset("logs")
    by_name = {p.name.rpartition(".")[2]: p for p in logs.partitions}
    assert {n for n, p in by_name.items() if p.go} == {_label(engine, *m) for m in GONE_WHOLE}
    assert all(p.rows == PER_MONTH and "dropped whole" in p.why for p in logs.drops)
    assert "held" in by_name[_label(engine, *HELD_MONTH)].why
    assert "referenced by rows of notes" in by_name[_label(engine, *NOTED_MONTH)].why
    assert "past the cutoff" in by_name[_label(engine, 2025, 12)].why
    assert not by_name[_label(engine, 2025, 12)].go
    assert _label(engine, 2026, 1) not in by_name, "partitions wholly after the cutoff are not listed"
    expired = {n for n, _, at in _rows() if at < datetime(2025, 12, 1, 12)}
    assert logs.to_delete == len(expired) - 2 and logs.held == 1 and logs.referenced == 1
    # the row path covers only what no drop takes: the kept partitions' and December's expired rows
    # the ranges are cut from the expired rows not held; the referenced row is in them, and its
    # range's delete leaves it (each delete counts what it takes)
    assert sum(r[2] for r in logs.ranges) == logs.to_delete - PER_MONTH * len(GONE_WHOLE) + logs.referenced
    assert plan.summary()["logs"]["partitions_dropped"] == len(GONE_WHOLE)


def test_drops_are_ledgered_with_their_rows_and_the_rest_goes_row_by_row(world):
    engine, state, tmp_path = world
    _create(engine)
    retention = _retention(engine, state, _config(tmp_path))
    before = _partition_names(engine)
    plan = retention.plan("scheduled__part", AS_OF)
    _apply(retention, plan)

    assert _ids(engine) == _expected_left()
    assert before - _partition_names(engine) == {_label(engine, *m) for m in GONE_WHOLE}
    drops = list(state.ledger.entries(kind="retention.drop_partition"))
    assert sorted(e.payload["partition"].rpartition(".")[2] for e in drops) == sorted(
        _label(engine, *m) for m in GONE_WHOLE
    )
    assert all(e.payload["rows"] == PER_MONTH and e.run_id == plan.run_id for e in drops)
    marks = {e.idempotency_key for e in state.ledger.entries(kind="retention.partition_marked")}
    assert marks == {partition_mark("logs", e.payload["partition"], plan.run_id) for e in drops}
    assert retention.verify(plan)["logs"] == {"remaining": 0, "held": 1, "referenced": 1}
    report = retention.report(plan.run_id, as_of=AS_OF)
    assert report["failures"] == 0
    assert state.ledger.verify().ok


def _analyzed_then_written(engine, month: tuple[int, int]) -> None:
    """Statistics current for every partition (PostgreSQL), then one row written into ``month``'s
    after them, its counters flushed at once (``pg_stat_force_next_flush``)."""
    if engine.dialect.name != "postgresql":
        return
    engine.dispose()  # a backend flushes its counters when it ends: the seeding's inserts, before ANALYZE
    deadline = time.monotonic() + 10
    inserted = sa.text("SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE relname LIKE 'part_logs_%'")
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(inserted).scalar() >= len(_rows()):
                break
        time.sleep(0.05)
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE part_logs"))
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
        conn.execute(
            sa.text("INSERT INTO part_logs VALUES (9999, :user, '/late', :at)"),
            {"user": OTHER, "at": datetime(*month, 28, 12)},
        )


def test_a_dropped_partitions_rows_come_from_current_statistics_marked_estimated_else_counted(world):
    engine, state, tmp_path = world
    _create(engine)
    written = GONE_WHOLE[1]  # analyzed, then written to: its statistics are not current
    _analyzed_then_written(engine, written)
    retention = _retention(engine, state, _config(tmp_path))
    plan = retention.plan("scheduled__part", AS_OF)
    drops = {p.name.rpartition(".")[2]: p for p in plan.dataset("logs").drops}
    if engine.dialect.name != "postgresql":  # MariaDB: every drop counted
        assert all(p.rows == PER_MONTH and not p.estimated and p.counted == "10 rows" for p in drops.values())
        return
    late = drops.pop(_label(engine, *written))
    assert (late.rows, late.estimated, late.counted) == (PER_MONTH + 1, False, "11 rows"), "counted: exact"
    assert all(p.rows == PER_MONTH and p.estimated for p in drops.values()), "from the statistics"
    assert {p.counted for p in drops.values()} == {"~10 rows (estimate)"}

    _apply(retention, plan)
    records = {
        e.payload["partition"].rpartition(".")[2]: e.payload
        for e in state.ledger.entries(kind="retention.drop_partition")
    }
    marks = {
        e.payload["partition"].rpartition(".")[2]: e.payload
        for e in state.ledger.entries(kind="retention.partition_marked")
    }
    for ledgered in (records, marks):
        assert "estimated" not in ledgered[_label(engine, *written)]
        assert all(ledgered[name]["estimated"] is True for name in drops)
    report = retention.report(plan.run_id, as_of=AS_OF)
    document = json.loads(Path(report["json"]).read_text())
    logs = next(d for d in document["datasets"] if d["dataset"] == "logs")
    assert logs["deleted_estimated"] is True
    assert {p["name"].rpartition(".")[2] for p in logs["partitions"] if p["estimated"]} == set(drops)
    assert "~10 (estimate)" in Path(report["html"]).read_text()


class _KilledAfterDetach(SqlStore):
    """A store whose process dies between detaching a partition and dropping it."""

    def drop_partition(self, dataset, name):
        if self.engine.dialect.name == "postgresql":
            self._ddl(dataset, "detach", f"ALTER TABLE part_logs DETACH PARTITION {name} CONCURRENTLY")
        raise KeyboardInterrupt  # what a kill looks like from inside: nothing after it runs


@pytest.mark.parametrize("rerun", ["same run", "next run"])
def test_a_killed_drop_leaves_nothing_detached_the_rerun_drops_it(world, rerun):
    engine, state, tmp_path = world
    _create(engine)
    config = _config(tmp_path)
    plan = _retention(engine, state, config).plan("scheduled__part", AS_OF)
    with pytest.raises(KeyboardInterrupt):
        _apply(_retention(engine, state, config, store=_KilledAfterDetach), plan)
    first = _label(engine, *GONE_WHOLE[0])
    detached = _detached(engine)
    if engine.dialect.name == "postgresql":
        assert first in detached, "the kill left the partition detached"

    retention = _retention(engine, state, config)
    if rerun == "same run":
        _apply(retention, plan)
        assert retention.verify(plan)["logs"]["remaining"] == 0
    else:
        later = retention.plan("scheduled__later", AS_OF)
        leftover = [p.name.rpartition(".")[2] for p in later.dataset("logs").drops if p.run_id == plan.run_id]
        own = [p.name.rpartition(".")[2] for p in later.dataset("logs").drops if p.run_id is None]
        if engine.dialect.name == "postgresql":  # detached: this run finishes the earlier run's drops
            assert sorted(leftover) == sorted(detached) and not set(own) & set(detached)
        else:  # MariaDB drops in one statement: the kill left it attached, and this run plans it anew
            assert leftover == [] and first in own
        _apply(retention, later)
        assert retention.verify(later)["logs"]["remaining"] == 0
        again = retention.plan("scheduled__after", AS_OF).dataset("logs")
        assert not again.drops, "an earlier run's mark is closed by the drop, whichever run recorded it"
    assert first not in _partition_names(engine) and not _detached(engine), "nothing detached survives"
    drops = [e for e in state.ledger.entries(kind="retention.drop_partition") if e.payload["partition"].endswith(first)]
    assert [e.payload["rows"] for e in drops] == [PER_MONTH], "recorded once, with the rows counted at plan"


def test_a_partition_left_detach_pending_is_finalized_and_dropped(world):
    engine, state, tmp_path = world
    if engine.dialect.name != "postgresql":
        pytest.skip("MariaDB drops a partition in one statement: there is no pending detach")
    _create(engine)
    config = _config(tmp_path)
    plan = _retention(engine, state, config).plan("scheduled__part", AS_OF)
    first = plan.dataset("logs").drops[0].name
    state.ledger.append(
        "retention.partition_marked",
        {"dataset": "logs", "partition": first, "low": None, "high": None, "rows": PER_MONTH, "run_id": plan.run_id},
        key=partition_mark("logs", first, plan.run_id),
    )
    # a reader's open snapshot makes the concurrent detach's second step time out: left pending
    reader = engine.connect()
    reader.begin()
    reader.execute(sa.text("SELECT count(*) FROM part_logs"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("SET lock_timeout = '500ms'"))
        with pytest.raises(sa.exc.DBAPIError):
            conn.execute(sa.text(f"ALTER TABLE part_logs DETACH PARTITION {first} CONCURRENTLY"))
        conn.execute(sa.text("RESET lock_timeout"))
    reader.rollback()
    reader.close()
    store = SqlStore(engine, config.catalog, "app_db")
    assert store.partition_state("logs", first) == "detaching"

    retention = _retention(engine, state, config)
    _apply(retention, plan)
    assert store.partition_state("logs", first) == "gone"
    assert retention.verify(plan)["logs"]["remaining"] == 0
    assert _ids(engine) == _expected_left()


def test_drop_partitions_false_takes_the_row_path_to_the_same_end(world):
    engine, state, tmp_path = world
    _create(engine)
    retention = _retention(engine, state, _config(tmp_path, drop_partitions=False))
    before = _partition_names(engine)
    plan = retention.plan("scheduled__rows", AS_OF)
    assert plan.dataset("logs").partitions == ()
    _apply(retention, plan)
    assert _ids(engine) == _expected_left()
    assert _partition_names(engine) == before
    assert not list(state.ledger.entries(kind="retention.drop_partition"))


def test_an_unpartitioned_table_is_planned_as_before(world):
    engine, state, tmp_path = world
    _create(engine, partitioned=False)
    retention = _retention(engine, state, _config(tmp_path))
    plan = retention.plan("scheduled__flat", AS_OF)
    assert plan.dataset("logs").partitions == () and "partitions" not in plan.dataset("logs").to_json()
    _apply(retention, plan)
    assert _ids(engine) == _expected_left()


def test_a_composite_key_of_the_key_and_created_passes_scan(world):
    engine, state, tmp_path = world
    _create(engine)
    config = _config(tmp_path)
    found = scan(config.catalog, {"app_db": engine})
    assert not [f for f in found if "part_logs" in f.table], found


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yes", "rules[0].drop_partitions"),
        (1, "rules[0].drop_partitions"),
    ],
)
def test_a_bad_drop_partitions_is_refused_naming_file_and_key(tmp_path, value, message, backend_url):
    with pytest.raises(ConfigError) as refused:
        _config(tmp_path, drop_partitions=value)
    assert "retention.yaml" in str(refused.value) and message in str(refused.value)


def test_drop_partitions_on_an_anonymizing_rule_is_refused(tmp_path, backend_url):
    with pytest.raises(ConfigError) as refused:
        _config(tmp_path, drop_partitions=True, action="anonymize")
    assert "retention.yaml: rules[0]" in str(refused.value) and "needs action: delete" in str(refused.value)
