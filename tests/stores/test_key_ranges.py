"""Key ranges as the retention plan cuts them when it has counted the rows (``units(expected=)``):
on PostgreSQL from a page sample, open at both ends; elsewhere from one numbered pass.  Either
way the ranges cover every selected row once, whatever the key's type, survive a trip through
JSON, and their deletes count exactly what they take.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.connections import engine_for
from lifecycle.stores.contract import KeyRange, Selection
from lifecycle.stores.sql import SqlStore
from lifecycle.stores.sql.counts import SAMPLED_FROM

NOW = datetime(2026, 6, 1, 12, 0, 0)
ROWS, SIZE = 14000, 400


def _keys(kind: str, engine) -> list:
    if kind == "integer":
        return [i * 3 + 1 for i in range(ROWS)]
    if kind == "text":
        return [f"{'AbC'[i % 3]}-key-{i:05d}" for i in range(ROWS)]  # mixed case: the database's collation orders
    if kind == "uuid":
        values = [uuid.UUID(int=(i * 2654435761) % 2**128) for i in range(ROWS)]
        return values if engine.dialect.name == "postgresql" else [str(v) for v in values]
    return [NOW - timedelta(seconds=i * 7) for i in range(ROWS)]  # timestamp


def _catalog() -> Catalog:
    """``people`` (the subject) and their ``events``, in one SQL system."""
    people = {"system": "app", "table": "people", "primary_key": "id", "created": "created_at"}
    events = {"table": "events", "primary_key": "key", "created": "at", "subject": "person -> people.id"}
    return Catalog(
        CatalogFile.model_validate(
            {
                "systems": {"app": {"type": "sql", "conn_id": "app"}, "state": {"type": "sql", "conn_id": "state"}},
                "categories": {"records": {"title": "Records"}},
                "subject": {"dataset": "people", "key": "id"},
                "datasets": {
                    "people": {**people, "fields": {"name": {"category": "records", "anonymize": "redact"}}},
                    "events": {"system": "app", "category": "records", **events},
                },
            }
        )
    )


def _key_type(kind: str, engine):
    if kind == "uuid":
        return postgresql.UUID(as_uuid=True) if engine.dialect.name == "postgresql" else sa.String(36)
    return {"integer": sa.Integer(), "text": sa.String(40), "timestamp": sa.DateTime()}[kind]


@pytest.mark.parametrize("kind", ["integer", "text", "uuid", "timestamp"])
def test_counted_rows_are_cut_into_ranges_that_cover_each_selected_row_once(engine, kind):
    meta = sa.MetaData()
    sa.Table(
        "people",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(40)),
        sa.Column("created_at", sa.DateTime),
    )
    events = sa.Table(
        "events",
        meta,
        sa.Column("key", _key_type(kind, engine), primary_key=True, autoincrement=False),
        sa.Column("person", sa.Integer),
        sa.Column("at", sa.DateTime),
    )
    meta.create_all(engine)
    keys = _keys(kind, engine)
    with engine.begin() as conn:  # ages interleaved over the keys: every fifth row is young
        conn.execute(
            events.insert(),
            [
                {"key": k, "person": 1 + i % 7, "at": NOW - timedelta(days=1 if i % 5 == 0 else 400)}
                for i, k in enumerate(keys)
            ],
        )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE events"))
    lifecycle_engine = engine_for(engine.url)
    try:
        store = SqlStore(lifecycle_engine, _catalog(), "app")
        store.sampled_from_rows = 1_000  # a table of a test's size, sampled as a large one is
        selection = Selection(older_than=NOW - timedelta(days=30), exclude_subjects=("3",))
        expected = store.count("events", selection)
        assert expected // SIZE >= SAMPLED_FROM, "enough rows for the sampled boundaries"
        cut = store.units("events", selection, SIZE, expected=expected)
        ranges = [KeyRange(*r) for r in json.loads(json.dumps([r.as_list() for r in cut]))]

        per_range = [store.count("events", replace(selection, within=r)) for r in ranges]
        assert sum(per_range) == expected, "every selected row lies in exactly one range"
        assert all(per_range), "no range is empty"
        if engine.dialect.name == "postgresql":
            assert ranges[0].low is None and ranges[-1].high is None, "sampled ranges are open at both ends"
            assert max(per_range) < 3 * SIZE and len(ranges) >= expected // SIZE // 2
        else:
            assert [r.rows for r in ranges] == per_range and max(per_range) == SIZE

        deleted = [store.delete("events", replace(selection, within=r)).rows for r in ranges]
        assert deleted == per_range, "each range's delete counts what it took"
        assert store.count("events", Selection(older_than=NOW - timedelta(days=30))) == store.count(
            "events", Selection(older_than=NOW - timedelta(days=30), subjects=("3",))
        ), "only the held subject's expired rows are left"
    finally:
        lifecycle_engine.dispose()
