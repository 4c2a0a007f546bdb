"""The demo's analytics lake: ``analytics.events`` (Iceberg, partitioned by day, keyed by user)
and ``orders_daily`` (Delta), the copies data engineers make of what buyers do.

``seed()`` writes both, through the lake systems the catalog names (the stores' own catalog,
storage and connections): events spread over the last ``EVENT_DAYS`` days, every user with
some, the demo plan's special users (due, held, requests) with some in every day range, so
retention has expired days to drop and a cancellation has people to erase.  Same arguments,
same rows.  ``summary()`` is the lake's part of ``make demo``'s closing lines, from the ledger:
days dropped, purges, and what the verification read from storage.  Counts only.
"""

from __future__ import annotations

import random
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from lifecycle.demo.plan import plan

LAKE_ROWS = 1_000_000  # events; ``seed --lake-rows`` (tests use a few thousand)
EVENT_DAYS = 94  # the events rule keeps 90 days: three days expire whole, one in part
KEPT_DAYS = 90  # retention.yaml analytics-events-90d
ORDER_DAYS = 60
KINDS = ["view", "search", "inquiry", "favorite", "share"]
PATHS = [f"/{p}" for p in ("home", "search", "product", "supplier", "cart", "inquiry", "messages")]
CITIES = ["Hangzhou", "Shenzhen", "Yiwu", "Lyon", "Porto", "Austin", "Nairobi", "Lima"]

EVENTS = pa.schema(
    [
        ("id", pa.int64()),
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("event", pa.string()),
        ("path", pa.string()),
        ("ip", pa.string()),
    ]
)
ORDERS_DAILY = pa.schema(
    [
        ("id", pa.int64()),
        ("user_id", pa.int64()),
        ("day", pa.timestamp("us")),
        ("orders", pa.int64()),
        ("amount_cents", pa.int64()),
        ("ship_city", pa.string()),
    ]
)


def lake_datasets(catalog) -> dict[str, str]:
    """The catalog's lake datasets: {dataset: system type}."""
    out = {}
    for name in catalog.datasets:
        kind = catalog.systems[catalog.dataset(name).system].type
        if kind in ("iceberg", "delta"):
            out[name] = kind
    return out


def _below(rng: random.Random, n: int, high: int) -> pa.Array:
    """``n`` integers in [0, ``high``), from the seeded generator's bytes (vectorized, repeatable)."""
    raw = pa.Array.from_buffers(pa.uint32(), n, [None, pa.py_buffer(rng.randbytes(4 * n))]).cast(pa.int64())
    return pc.shift_right(pc.multiply(raw, high), 32)


def _pick(rng: random.Random, n: int, words: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(_below(rng, n, len(words)).cast(pa.int32()), words).cast(pa.string())


def events(users: int, as_of: datetime, rows: int, seed: int = 0) -> pa.Table:
    """``rows`` events over the last ``EVENT_DAYS`` days; the plan's special users first, one an
    hour, so each has events on every day (the expired days too)."""
    rng = random.Random(f"mic-demo:{seed}:events")
    special = sorted(plan(users, seed).rich)
    hours = EVENT_DAYS * 24
    rich = min(rows, hours * len(special))
    user = pa.concat_arrays(
        [
            pa.array([special[i // hours] for i in range(rich)], pa.int64()),
            pc.add(_below(rng, rows - rich, users), 1),
        ]
    )
    ages = pa.concat_arrays(
        [pa.array([(i % hours) * 3600 + 1800 for i in range(rich)], pa.int64()), _below(rng, rows - rich, hours * 3600)]
    )
    user = _unheld_when_expired(user, ages, plan(users, seed))
    end = pa.scalar(as_of.replace(tzinfo=None), pa.timestamp("us"))
    ts = pc.subtract(end, pc.multiply(ages, 1_000_000).cast(pa.duration("us")))
    octets = [pc.remainder(user, 250), pc.add(_below(rng, rows, 254), 1)]
    return pa.table(
        {
            "id": pa.array(range(1, rows + 1), pa.int64()),
            "user_id": user,
            "ts": ts,
            "event": _pick(rng, rows, KINDS),
            "path": _pick(rng, rows, PATHS),
            "ip": pc.binary_join_element_wise("203", "0", *(o.cast(pa.string()) for o in octets), "."),
        },
        schema=EVENTS,
    )


def _unheld_when_expired(user: pa.Array, ages: pa.Array, the_plan) -> pa.Array:
    """Events of users held in every dataset only within the last ``KEPT_DAYS`` days: the expired
    days then hold nobody a hold keeps, and retention drops them whole."""
    held = [uid for uid, datasets, _ in the_plan.holds if datasets is None]
    if not held:
        return user
    stand_in = next(uid for uid in range(1, len(the_plan.rich) + 2) if uid not in the_plan.rich)
    old = pc.greater_equal(ages, (KEPT_DAYS - 1) * 86400)
    moved = pc.and_(pc.is_in(user, value_set=pa.array(held, pa.int64())), old)
    return pc.if_else(moved, stand_in, user)


def orders_daily(users: int, as_of: datetime, seed: int = 0) -> pa.Table:
    """A row per buyer and day with orders: every user on a few of the last ``ORDER_DAYS`` days."""
    rng = random.Random(f"mic-demo:{seed}:orders_daily")
    user = pa.array([u for u in range(1, users + 1) for _ in range(rng.randint(2, 8))], pa.int64())
    count = len(user)
    day0 = pa.scalar(datetime(as_of.year, as_of.month, as_of.day), pa.timestamp("us"))
    days = pc.multiply(_below(rng, count, ORDER_DAYS), 86_400_000_000).cast(pa.duration("us"))
    return pa.table(
        {
            "id": pa.array(range(1, count + 1), pa.int64()),
            "user_id": user,
            "day": pc.subtract(day0, days),
            "orders": pc.add(_below(rng, count, 4), 1),
            "amount_cents": pc.add(_below(rng, count, 250_000), 500),
            "ship_city": _pick(rng, count, CITIES),
        },
        schema=ORDERS_DAILY,
    )


def seed(catalog, *, users: int, as_of: datetime, rows: int = LAKE_ROWS, seed: int = 0, reset: bool = False) -> dict:
    """Create and fill the catalog's lake datasets named ``events`` (Iceberg) and ``orders_daily``
    (Delta); ``reset`` drops them first.  Returns rows per dataset."""
    from lifecycle.stores import Stores

    stores, counts = Stores(catalog), {}
    for dataset, kind in lake_datasets(catalog).items():
        store = stores.of(dataset)
        _bucket(catalog, dataset)
        data = events(users, as_of, rows, seed) if kind == "iceberg" else orders_daily(users, as_of, seed)
        if kind == "iceberg":
            _iceberg(store, catalog.dataset(dataset).table, data, reset)
        else:
            _delta(store, dataset, data, reset)
        counts[dataset] = data.num_rows
    return counts


def _bucket(catalog, dataset: str) -> None:
    """The bucket of an S3 warehouse or location (moto starts empty)."""
    from lifecycle.catalog.lake import is_s3
    from lifecycle.connections import s3_client

    system = catalog.systems[catalog.dataset(dataset).system]
    where = getattr(system, "warehouse", None) or system.location
    if not is_s3(where):
        return
    client, bucket = s3_client(system.conn_id), where.split("://", 1)[1].split("/", 1)[0]
    try:
        client.head_bucket(Bucket=bucket)
    except Exception:
        client.create_bucket(Bucket=bucket)


def _iceberg(store, name: str, data: pa.Table, reset: bool) -> None:
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
    from pyiceberg.transforms import DayTransform

    catalog = store.iceberg
    namespace, table_name = name.rsplit(".", 1)
    if reset:
        locations = {f"{store.spec.warehouse.rstrip('/')}/{namespace}.db/{table_name}"}  # pyiceberg's default
        try:
            locations.add(catalog.load_table(name).location())
        except Exception:  # no such table, or its metadata gone with an earlier S3 server
            pass
        try:
            catalog.drop_table(name)
        except NoSuchTableError:
            pass
        for location in locations:
            store.storage.remove([f.path for f in store.storage.files(location)])
    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        pass
    table = catalog.create_table(name, schema=data.schema)
    with table.update_spec() as spec:
        spec.add_field("ts", DayTransform(), "ts_day")
    table.append(data)


def _delta(store, dataset: str, data: pa.Table, reset: bool) -> None:
    from deltalake import write_deltalake

    location = store.location(dataset)
    if reset:
        store.storage.remove([f.path for f in store.storage.files(location)])
    write_deltalake(location, data, mode="append", storage_options=store.options)


def summary(ledger_entries, datasets) -> list[str]:
    """The lake's lines for the demo's summary, from this run's ledger entries (kind, payload) on
    the lake ``datasets``: day partitions retention dropped, the rows a cancellation deleted or
    anonymized, and each purge with what the verification read.  Counts only."""
    drops: dict[str, int] = {}
    erased: dict[tuple[str, str], list[int]] = {}
    purges = []
    for kind, payload in ledger_entries:
        if payload.get("dataset") not in datasets:
            continue
        if kind == "retention.drop_partition":
            drops[payload["dataset"]] = drops.get(payload["dataset"], 0) + 1
        elif kind == "erasure.plan" and payload.get("rows"):
            counts = erased.setdefault((payload["dataset"], payload["action"]), [0, 0])
            counts[0] += sum(payload["rows"].values())
            counts[1] += len(payload["rows"])
        elif kind == "erasure.purged":
            purges.append(payload)
    if not (drops or erased or purges):
        return []
    lines = ["\nlake (Iceberg, Delta):"]
    for dataset, n in sorted(drops.items()):
        lines.append(f"  retention dropped {n} expired day partition(s) of {dataset} whole (no file rewritten)")
    for (dataset, action), (rows, people) in sorted(erased.items()):
        lines.append(f"  cancellation: {dataset}: {rows:,} row(s) of {people} person(s) {action}d")
    for p in purges:
        lines.append(
            f"  purge {p['dataset']}: {p['snapshots_expired']} snapshot(s) expired, {p['files_removed']} file(s) "
            f"removed ({_size(p['bytes_freed'])}); verification read {p['files_read']} file(s), "
            f"{_size(p['bytes_read'])}: 0 rows of the batch's people"
        )
    return lines


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n:,} bytes"
