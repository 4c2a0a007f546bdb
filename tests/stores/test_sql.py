"""The SQL store on SQLite, PostgreSQL and MariaDB: selection, ranges, delete, anonymize."""

from __future__ import annotations

import hashlib
import hmac
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.errors import TerminalStoreError
from lifecycle.stores.contract import KeyRange, Selection
from lifecycle.stores.sql import SqlStore
from tests.config import sample

NOW = datetime(2026, 6, 1, 12, 0, 0)
KEY = b"test-hmac-key"

meta = sa.MetaData()
users = sa.Table(
    "users",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(255)),
    sa.Column("name", sa.String(100)),
    sa.Column("password_hash", sa.String(128)),
    sa.Column("tier", sa.String(20)),
    sa.Column("created_at", sa.DateTime),
)
access_logs = sa.Table(
    "access_logs",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("ip", sa.String(45)),
    sa.Column("path", sa.String(200)),
    sa.Column("logged_at", sa.DateTime),
)
conversations = sa.Table(
    "conversations",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),
    sa.Column("created_at", sa.DateTime),
)
chat_messages = sa.Table(
    "chat_messages",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("conversation_id", sa.Integer, sa.ForeignKey("conversations.id")),
    sa.Column("body", sa.Text),
    sa.Column("sent_at", sa.DateTime),
)


@pytest.fixture
def store(engine):
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            users.insert(),
            [
                {
                    "id": i,
                    "email": f"user{i}@example.com",
                    "name": f"User {i}",
                    "password_hash": "x" * 60,
                    "tier": "gold" if i % 2 else "basic",
                    "created_at": NOW - timedelta(days=400 - i),
                }
                for i in range(1, 11)
            ],
        )
        # 100 logs: log n is n days old; user (n % 10) + 1; every 25th log has no user.
        conn.execute(
            access_logs.insert(),
            [
                {
                    "id": n,
                    "user_id": None if n % 25 == 0 else n % 10 + 1,
                    "ip": f"10.1.{n}.{n % 7}",
                    "path": f"/p/{n}",
                    "logged_at": NOW - timedelta(days=n),
                }
                for n in range(1, 101)
            ],
        )
        conn.execute(conversations.insert(), [{"id": c, "user_id": c % 3 + 1, "created_at": NOW} for c in range(1, 7)])
        conn.execute(
            chat_messages.insert(),
            [
                {"id": m, "conversation_id": m % 6 + 1, "body": f"hello {m}", "sent_at": NOW - timedelta(hours=m)}
                for m in range(1, 31)
            ],
        )
    return SqlStore(engine, Catalog(CatalogFile.model_validate(sample.CATALOG)), "app_db")


def _ids(engine, table):
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.id)).scalars())


def _keys(store, dataset, selection):
    """Primary keys of the selected rows, read apart from the store."""
    table = store.table(dataset)
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.id).where(store.where(dataset, selection))).scalars())


def test_age_cutoff_is_strict(store):
    cutoff = NOW - timedelta(days=30)
    assert store.count("access_logs", Selection(older_than=cutoff)) == 70  # 31..100 days old
    # A row exactly at the cutoff is not older than it; one second older is.
    with store.engine.begin() as conn:
        conn.execute(access_logs.update().where(access_logs.c.id == 30).values(logged_at=cutoff))
        conn.execute(access_logs.update().where(access_logs.c.id == 29).values(logged_at=cutoff - timedelta(seconds=1)))
    assert store.count("access_logs", Selection(older_than=cutoff)) == 71
    aware = cutoff.replace(tzinfo=UTC)
    assert store.count("access_logs", Selection(older_than=aware)) == 71


def test_key_ranges_cover_the_selection_in_batches(store):
    selection = Selection(older_than=NOW - timedelta(days=10))
    ranges = store.units("access_logs", selection, 25)
    assert [r.rows for r in ranges] == [25, 25, 25, 15]
    assert ranges[0].low == 11 and ranges[-1].high == 100
    assert all(a.high < b.low for a, b in itertools.pairwise(ranges))
    deleted = sum(store.delete("access_logs", replace(selection, within=r)).rows for r in ranges)
    assert deleted == 90
    assert _ids(store.engine, access_logs) == set(range(1, 11))


def test_delete_range_never_leaves_the_selection(store):
    # A range wider than the selection deletes only selected rows.
    selection = Selection(older_than=NOW - timedelta(days=50))
    assert store.delete("access_logs", replace(selection, within=KeyRange(1, 100, 0))).rows == 50
    assert _ids(store.engine, access_logs) == set(range(1, 51))


def test_subject_selection_follows_a_two_hop_path(store):
    # users 1 and 2 own conversations 1,3,4,6 (c % 3 + 1); messages m with m % 6 + 1 in those.
    selection = Selection(subjects=("1", 2))
    expected = {m for m in range(1, 31) if (m % 6 + 1) % 3 + 1 in (1, 2)}
    assert _keys(store, "chat_messages", selection) == expected
    assert store.count("users", selection) == 2
    assert store.count("access_logs", selection) == sum(1 for n in range(1, 101) if n % 25 and n % 10 + 1 in (1, 2))


@pytest.mark.parametrize(
    "values, expected",
    [
        (["2", 3, "not-a-number"], {2, 3}),  # ids as text or numbers; a wrong shape matches nothing
        ([], set()),
        ([str(i) for i in range(1, 11)] * 3, set(range(1, 11))),
    ],
)
def test_one_of_selects_exactly_the_rows_among_the_values(store, values, expected):
    for column, wanted in ((users.c.id, expected), (users.c.email, {f"user{i}@example.com" for i in expected})):
        given = values if column is users.c.id else [f"user{v}@example.com" for v in values]
        column = store.column("users", column.name)
        with store.engine.connect() as conn:
            found = set(conn.execute(sa.select(column).where(store.one_of(column, given))).scalars())
        assert found == wanted, column.name


def test_held_subjects_are_excluded_and_unowned_rows_are_not(store):
    selection = Selection(older_than=NOW, exclude_subjects=("3", "not-a-number"))
    kept = {n for n in range(1, 101) if n % 25 and n % 10 + 1 == 3}
    assert _keys(store, "access_logs", selection) == set(range(1, 101)) - kept
    assert {25, 50, 75, 100} <= _keys(store, "access_logs", selection), "rows without a user are not held"


def test_anonymize_applies_each_strategy_and_keeps_the_rest(store):
    catalog = store.catalog
    selection = Selection(subjects=(4,))
    [key_range] = store.units("users", selection, 10)
    assert (
        store.anonymize(
            "users", replace(selection, within=key_range), catalog.personal_fields("users"), hmac_key=KEY
        ).rows
        == 1
    )
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.id == 4)).one()
        other = conn.execute(sa.select(users).where(users.c.id == 5)).one()
    assert row.email == hmac.new(KEY, b"user4@example.com", hashlib.sha256).hexdigest()
    assert row.name == "[redacted]" and row.password_hash is None
    assert row.tier == "basic" and row.created_at == NOW - timedelta(days=396)
    assert other.email == "user5@example.com"

    logs = Selection(subjects=(4,))
    ranges = store.units("access_logs", logs, 1000)
    ip_field = [f for f in catalog.personal_fields("access_logs") if f.column == "ip"]
    assert sum(store.anonymize("access_logs", replace(logs, within=r), ip_field).rows for r in ranges) == 10
    with store.engine.connect() as conn:
        ips = set(conn.execute(sa.select(access_logs.c.ip).where(access_logs.c.user_id == 4)).scalars())
    assert ips == {f"10.1.{n}.0" for n in range(1, 101) if n % 25 and n % 10 + 1 == 4}


def test_references_are_found_from_foreign_keys(store):
    assert sorted((r.dataset, r.columns, r.referred, r.on_delete, r.link) for r in store.references("users")) == [
        ("access_logs", ("user_id",), ("id",), "NO ACTION", True),
        ("conversations", ("user_id",), ("id",), "NO ACTION", True),
        ("orders", ("user_id",), ("id",), "NONE", True),
    ]  # a subject link in the catalog, no table here
    assert store.references("chat_messages") == []


def test_missing_table_is_a_terminal_error_naming_system_dataset_and_purpose(store):
    store.catalog.datasets["orders"]  # in the catalog, not in this database
    with pytest.raises(
        TerminalStoreError, match="system 'app_db', dataset 'orders': reflect the table: table 'orders' does not exist"
    ):
        store.count("orders")


def test_stream_of_a_selection_follows_the_subject_path_in_key_order(store):
    selection = Selection(subjects=("2",))
    streamed = [
        row
        for chunk in store.stream("chat_messages", ["id", "body"], selection=selection, fetch_rows=4)
        for row in chunk
    ]
    expected = sorted(m for m in range(1, 31) if (m % 6 + 1) % 3 + 1 == 2)
    assert [row[1] for row in streamed] == expected
    assert all(row[0] == "2" and row[2] == f"hello {row[1]}" for row in streamed)
    chunks = list(store.stream("access_logs", ["id", "logged_at"], selection=Selection(subjects=("3",)), fetch_rows=4))
    assert max(len(c) for c in chunks) <= 4 and all(isinstance(row[2], str) for c in chunks for row in c)
