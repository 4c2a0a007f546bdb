"""The SQL adapter on keys and foreign keys it was not written beside (SQLite, PostgreSQL, MariaDB).

Every orderable single-column key is cut into ranges without ``min``/``max``
over it (PostgreSQL has none for uuid); ranges survive a trip through JSON
(plans in the ledger, units in XCom); and a row that rows staying behind
still point at is kept, whatever the foreign key would do.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.connections import engine_for
from lifecycle.stores.contract import KeyRange, Selection
from lifecycle.stores.sql import SqlStore

NOW = datetime(2026, 6, 1, 12, 0, 0)


@pytest.fixture
def lifecycle_engine(engine):
    """The test database through an engine made as the lifecycle makes one (SQLite enforces foreign keys)."""
    made = engine_for(engine.url)
    yield made
    made.dispose()


def _key_values(kind: str, n: int) -> list:
    if kind == "integer":
        return list(range(1, n + 1))
    if kind == "bigint":
        return [9_000_000_000_000 + i * 7 for i in range(n)]
    if kind == "numeric":
        return [Decimal(f"{i}.25") for i in range(n)]
    if kind == "text":
        return [f"{'AbC'[i % 3]}-key-{i:03d}" for i in range(n)]  # mixed case
    if kind == "uuid":
        return [uuid.UUID(int=i * 7919 + 13) for i in range(n)]
    return [NOW - timedelta(minutes=i) for i in range(n)]  # timestamp


def _key_type(kind: str, engine):
    if kind == "uuid":
        return postgresql.UUID(as_uuid=True) if engine.dialect.name == "postgresql" else sa.String(36)
    return {
        "integer": sa.Integer(),
        "bigint": sa.BigInteger(),
        "numeric": sa.Numeric(12, 2),
        "text": sa.String(40),
        "timestamp": sa.DateTime(),
    }[kind]


def _catalog(**datasets) -> Catalog:
    """``people`` (the subject) and ``datasets`` in one SQL system."""
    return Catalog(
        CatalogFile.model_validate(
            {
                "systems": {"app": {"type": "sql", "conn_id": "app"}, "state": {"type": "sql", "conn_id": "state"}},
                "categories": {"records": {"title": "Records"}},
                "subject": {"dataset": "people", "key": "id"},
                "datasets": {
                    "people": {
                        "system": "app",
                        "table": "people",
                        "primary_key": "id",
                        "created": "created_at",
                        "fields": {"name": {"category": "records", "anonymize": "redact"}},
                    },
                    **{name: {"system": "app", "category": "records", **spec} for name, spec in datasets.items()},
                },
            }
        )
    )


@pytest.mark.parametrize("kind", ["integer", "bigint", "numeric", "text", "uuid", "timestamp"])
def test_every_orderable_key_is_cut_into_ranges_that_survive_json(engine, lifecycle_engine, kind):
    meta = sa.MetaData()
    people = sa.Table(
        "people",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(40)),
        sa.Column("created_at", sa.DateTime),
    )
    events = sa.Table(
        "Events",
        meta,
        sa.Column("Key", _key_type(kind, engine), primary_key=True, autoincrement=False),
        sa.Column("person", sa.Integer, sa.ForeignKey("people.id")),
        sa.Column("at", sa.DateTime),
    )
    meta.create_all(engine)
    keys = _key_values(kind, 50)
    with engine.begin() as conn:
        conn.execute(people.insert(), [{"id": 1, "name": "A", "created_at": NOW}])
        conn.execute(
            events.insert(),
            [
                {
                    "Key": k if engine.dialect.name == "postgresql" or kind != "uuid" else str(k),
                    "person": 1,
                    "at": NOW - timedelta(days=i),
                }
                for i, k in enumerate(keys)
            ],
        )
    store = SqlStore(
        lifecycle_engine,
        _catalog(events={"table": "Events", "primary_key": "Key", "created": "at", "subject": "person -> people.id"}),
        "app",
    )
    selection = Selection(older_than=NOW - timedelta(days=9))  # 40 of the 50 rows
    ranges = [KeyRange(*r) for r in json.loads(json.dumps([r.as_list() for r in store.units("events", selection, 7)]))]
    assert [r.rows for r in ranges] == [7, 7, 7, 7, 7, 5]
    assert sum(store.delete("events", replace(selection, within=r)).rows for r in ranges) == 40
    with engine.connect() as conn:
        left = {row.at for row in conn.execute(sa.select(events.c.at))}
    assert left == {NOW - timedelta(days=i) for i in range(10)}


def _parent_child(engine, lifecycle_engine, on_delete: str | None, *, linked: bool = True, declared: bool = True):
    """people <- orders <- order_lines.  ``linked``: a line reaches its person through its order
    (the subject link); else through its own ``person`` column, and ``order_id`` is a plain foreign
    key.  ``declared``: ``order_id`` is a declared foreign key with ``on_delete``."""
    meta = sa.MetaData()
    people = sa.Table(
        "people",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(40)),
        sa.Column("created_at", sa.DateTime),
    )
    orders = sa.Table(
        "orders",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("person", sa.Integer, sa.ForeignKey("people.id")),
        sa.Column("at", sa.DateTime),
    )
    order_id = (
        sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id", ondelete=on_delete), nullable=True)
        if declared
        else sa.Column("order_id", sa.Integer, nullable=True)
    )
    lines = sa.Table(
        "order_lines",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        order_id,
        sa.Column("person", sa.Integer),
        sa.Column("at", sa.DateTime),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(people.insert(), [{"id": 1, "name": "A", "created_at": NOW}])
        # orders 1..10 are old; lines of orders 1..3 are young (they stay), of 4..6 old, 7..10 have none
        conn.execute(orders.insert(), [{"id": o, "person": 1, "at": NOW - timedelta(days=400)} for o in range(1, 11)])
        conn.execute(
            lines.insert(),
            [
                {"id": o * 10 + k, "order_id": o, "person": 1, "at": NOW - timedelta(days=1 if o <= 3 else 400)}
                for o in range(1, 7)
                for k in range(2)
            ],
        )
    catalog = _catalog(
        orders={"table": "orders", "primary_key": "id", "created": "at", "subject": "person -> people.id"},
        order_lines={
            "table": "order_lines",
            "primary_key": "id",
            "created": "at",
            "subject": "order_id -> orders.id" if linked else "person -> people.id",
            "fields": {"person" if linked else "order_id": {"personal": False}},
        },
    )
    return SqlStore(lifecycle_engine, catalog, "app"), orders, lines


@pytest.mark.parametrize(
    "linked, declared, on_delete, kept",
    [
        (True, True, None, {1, 2, 3}),
        (True, True, "CASCADE", {1, 2, 3}),
        (True, True, "SET NULL", {1, 2, 3}),
        (True, False, None, {1, 2, 3}),  # a subject link without a foreign key keeps its rows' parents too
        (False, True, None, {1, 2, 3}),
        (False, True, "CASCADE", {1, 2, 3}),
        (False, True, "SET NULL", set()),  # a plain foreign key that clears itself: the parent goes
    ],
    ids=[
        "link-no-action",
        "link-cascade",
        "link-set-null",
        "link-undeclared",
        "fk-no-action",
        "fk-cascade",
        "fk-set-null",
    ],
)
def test_rows_that_staying_rows_point_at_are_kept(engine, lifecycle_engine, linked, declared, on_delete, kept):
    store, orders, lines = _parent_child(engine, lifecycle_engine, on_delete, linked=linked, declared=declared)
    [reference] = store.references("orders")
    assert (reference.dataset, reference.link) == ("order_lines", linked)
    assert reference.on_delete == ((on_delete or "NO ACTION") if declared else "NONE")
    old = NOW - timedelta(days=200)
    lines_going = Selection(older_than=old, kept_if_referenced=True)
    orders_going = Selection(older_than=old, kept_if_referenced=True, going_with=(("order_lines", lines_going),))

    # planned: the old lines of orders 4..6 go in the same run, so only orders 1..3 are held by young lines
    assert store.count("orders", orders_going) == 10 - len(kept)
    if kept:
        assert store.referenced("orders", orders_going, reference) == len(kept)
    # applied children first: the old lines go, then the orders nothing staying points at
    assert store.delete("order_lines", lines_going).rows == 6
    assert store.delete("orders", Selection(older_than=old, kept_if_referenced=True)).rows == 10 - len(kept)
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(orders.c.id)).scalars()) == kept
        young = {row.id: row.order_id for row in conn.execute(sa.select(lines))}
    assert young == {o * 10 + k: (o if kept else None) for o in range(1, 4) for k in range(2)}
    left = store.remaining("orders", Selection(older_than=old, kept_if_referenced=True))
    assert (left.items, left.kept.get("referenced", 0)) == (0, len(kept))


def test_held_rows_keep_what_they_point_at_even_through_set_null(engine, lifecycle_engine):
    """Found by the conformance suite (seed 48): a parent deleted through ON DELETE SET NULL rewrote
    a held row, which then no longer counted as held and was anonymized."""
    store, orders, lines = _parent_child(engine, lifecycle_engine, "SET NULL", linked=False)
    old = NOW - timedelta(days=200)
    held = (("order_lines", ("1",)),)  # every line is person 1's, held for order_lines only
    assert store.delete("orders", Selection(older_than=old, kept_if_referenced=True, held=held)).rows == 4
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(orders.c.id)).scalars()) == {1, 2, 3, 4, 5, 6}
        assert None not in set(conn.execute(sa.select(lines.c.order_id)).scalars()), "no held row was rewritten"
