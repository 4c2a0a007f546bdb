"""A small world with lake tables for the lake adapters' tests: people and orders in SQLite,
``events`` (linked to people directly) and ``order_events`` (linked through orders, two hops)
in an Iceberg or Delta system, opened by system name through Airflow connections."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.stores import Stores
from tests.support.s3 import aws_connection

NOW = datetime(2026, 6, 1, 12, 0, 0)
PEOPLE = 10
EVENTS = 200
ORDERS = 20  # order n: person n % 10 + 1
KEY = b"lake-test-hmac-key-0123456789"

EVENT_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("email", pa.string()),
        ("ip", pa.string()),
        ("path", pa.string()),
    ]
)
ORDER_EVENT_SCHEMA = pa.schema(
    [("id", pa.string()), ("order_id", pa.int64()), ("ts", pa.timestamp("us")), ("note", pa.string())]
)


def events(first: int = 0, count: int = EVENTS, ids=None) -> pa.Table:
    """Events ``first`` .. ``first + count - 1`` (or ``ids``): event n is person n % 10 + 1's, n hours old."""
    ids = range(first, first + count) if ids is None else ids
    return pa.table(
        {
            "id": list(ids),
            "user_id": [n % PEOPLE + 1 for n in ids],
            "ts": [NOW - timedelta(hours=n) for n in ids],
            "email": [f"user{n % PEOPLE + 1}@example.com" for n in ids],
            "ip": [f"10.0.{n % PEOPLE + 1}.{n % 250}" for n in ids],
            "path": [f"/page/{n % 7}" for n in ids],
        },
        schema=EVENT_SCHEMA,
    )


def order_events() -> pa.Table:
    ids = range(60)
    return pa.table(
        {
            "id": [f"oe-{n:03d}" for n in ids],
            "order_id": [n % ORDERS + 1 for n in ids],
            "ts": [NOW - timedelta(days=n) for n in ids],
            "note": [f"note {n}" for n in ids],
        },
        schema=ORDER_EVENT_SCHEMA,
    )


def owner_of_order(order: int) -> int:
    return (order - 1) % PEOPLE + 1


def app_database(path) -> sa.URL:
    url = sa.URL.create("sqlite", database=str(path / "app.db"))
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    users = sa.Table("users", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String(100)))
    orders = sa.Table("orders", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("user_id", sa.Integer))
    consents = sa.Table(
        "consents",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer),
        sa.Column("purpose", sa.String(20)),
        sa.Column("granted", sa.DateTime),
        sa.Column("withdrawn", sa.DateTime),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(users.insert(), [{"id": i, "email": f"user{i}@example.com"} for i in range(1, PEOPLE + 1)])
        day = timedelta(days=1)
        conn.execute(  # people 1 and 2 consent to analytics; 2 withdrew yesterday; 3 only to mail
            consents.insert(),
            [
                {"id": 1, "user_id": 1, "purpose": "analytics", "granted": NOW - 9 * day, "withdrawn": None},
                {"id": 2, "user_id": 2, "purpose": "analytics", "granted": NOW - 9 * day, "withdrawn": NOW - day},
                {"id": 3, "user_id": 3, "purpose": "mail", "granted": NOW - 9 * day, "withdrawn": None},
            ],
        )
        conn.execute(orders.insert(), [{"id": n, "user_id": owner_of_order(n)} for n in range(1, ORDERS + 1)])
    engine.dispose()
    return url


def catalog(lake_system: dict, events_table: str, order_events_table: str) -> Catalog:
    return Catalog(CatalogFile.model_validate(catalog_data(lake_system, events_table, order_events_table)))


def catalog_data(lake_system: dict, events_table: str, order_events_table: str) -> dict:
    """catalog.yaml of the world: the app's people, orders and consents, and the two lake tables."""
    return {
        "systems": {"app": {"type": "sql", "conn_id": "lake_app"}, "lake": lake_system},
        "purposes": {"account": {"title": "Run the account", "legal_basis": "contract"}},
        "categories": {"contact": {"purposes": ["account"]}, "usage": {"purposes": ["account"]}},
        "subject": {"dataset": "users", "key": "id", "contact": {"email": "email"}},
        "datasets": {
            "users": {
                "system": "app",
                "table": "users",
                "primary_key": "id",
                "fields": {"email": {"category": "contact"}},
            },
            "orders": {
                "system": "app",
                "table": "orders",
                "primary_key": "id",
                "subject": "user_id -> users.id",
                "category": "usage",
            },
            "consents": {
                "system": "app",
                "table": "consents",
                "primary_key": "id",
                "subject": "user_id -> users.id",
                "category": "usage",
                "consent": {"purpose": "purpose", "granted": "granted", "withdrawn": "withdrawn"},
            },
            "events": {
                "system": "lake",
                "table": events_table,
                "primary_key": "id",
                "subject": "user_id -> users.id",
                "created": "ts",
                "category": "usage",
                "fields": {
                    "email": {"category": "contact", "anonymize": "redact"},
                    "ip": {"anonymize": "truncate_ip"},
                    "path": {"personal": False},
                },
            },
            "order_events": {
                "system": "lake",
                "table": order_events_table,
                "primary_key": "id",
                "subject": "order_id -> orders.id",
                "created": "ts",
                "category": "usage",
                "fields": {"note": {"anonymize": "hmac"}},
            },
        },
    }


def connect_world(connect, tmp_path, s3_endpoint: str | None) -> str | None:
    """Define the app's and (with ``s3_endpoint``) S3's connections; the bucket made, if any."""
    connect("lake_app", app_database(tmp_path))
    if s3_endpoint is None:
        return None
    import boto3

    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    connect("lake_s3", aws_connection(s3_endpoint))
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return bucket


def stores(world: Catalog) -> Stores:
    return Stores(world)


# ----------------------------------------------------------- the independent oracle


def oracle(filesystem, root: str, column: str, values: list) -> tuple[int, int]:
    """(rows of ``values`` in ``column``, Parquet files read) over every Parquet file under
    ``root``, read with pyarrow alone: what storage still holds, whatever the table says."""
    import pyarrow.fs as pafs

    infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    rows = files = 0
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.endswith(".parquet") or "/_delta_log/" in info.path:
            continue
        files += 1
        with filesystem.open_input_file(info.path) as handle:
            table = pq.read_table(handle)
        if column in table.column_names:
            rows += pc.sum(pc.is_in(table[column], value_set=pa.array(values, type=table[column].type))).as_py() or 0
    return rows, files


def wall_now() -> datetime:
    """Purges judge files by when they were written (the machine's clock): a test purging at
    once asks as of a moment after its writes."""
    return datetime.now(UTC) + timedelta(seconds=2)


def newcomers(count: int) -> pa.Table:
    """Events another writer appends: ids -1 and 1000.. (their file's key range spans every
    existing key, so a commit deleting existing keys conflicts with it)."""
    return events(ids=[-1, *range(1000, 1000 + count - 1)])
