"""The suggestion scan over a wide schema (see bench/README.md).

A SQLite file of ``--tables`` tables × ``--columns`` columns × ``--rows`` rows: per table ten
columns of personal kinds (e-mail, phone, IP, MAC, IMEI, card, PRC resident ID, date of birth,
free text, cycling) and the rest look-alikes (order numbers, hashes, SKUs, version strings,
timestamps, dates, UUIDs, digit strings, product text).  The catalog names one table; every
other column is unclassified, so every column is sampled (``--sample`` values) and judged.
Reported: seconds to build the database (not measured against anything), seconds of the scan
(sampling and judging), and, as the raw baseline, seconds to read the same samples alone.

    .venv/bin/python bench/discovery_bench.py [--tables 200] [--columns 50] [--rows 1000] [--sample 1000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "include")]

from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.discovery.coverage import suggest
from lifecycle.stores.sql import SqlStore
from tests.support import pii_corpus

PERSONAL = [m for makers in pii_corpus.KNOWN.values() for m in makers if m is not pii_corpus.ipv6]
ORDINARY = list(pii_corpus.LOOK_ALIKES.values())


def build(path: Path, tables: int, columns: int, rows: int) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")
    r = random.Random(11)
    meta = sa.MetaData()
    for t in range(tables):
        makers = [PERSONAL[(t + i) % len(PERSONAL)] for i in range(10)]
        makers += [ORDINARY[(t + i) % len(ORDINARY)] for i in range(columns - 1 - len(makers))]
        table = sa.Table(
            f"t{t:03d}",
            meta,
            sa.Column("id", sa.Integer, primary_key=True),
            *(sa.Column(f"c{i:02d}", sa.Text) for i in range(len(makers))),
        )
        meta.create_all(engine, tables=[table])
        data = [{"id": n, **{f"c{i:02d}": _text(make(r)) for i, make in enumerate(makers)}} for n in range(rows)]
        with engine.begin() as conn:
            conn.execute(table.insert(), data)
    return engine


def _text(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def catalog() -> Catalog:
    return Catalog(
        CatalogFile.model_validate(
            {
                "systems": {"app_db": {"type": "sql", "conn_id": "app_db"}},
                "categories": {"basic_info": {"title": "Basic information"}},
                "subject": {"dataset": "people", "key": "id"},
                "datasets": {"people": {"system": "app_db", "table": "t000", "primary_key": "id", "fields": {}}},
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tables", type=int, default=200)
    p.add_argument("--columns", type=int, default=50)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--sample", type=int, default=1000)
    p.add_argument("--db", help="reuse (or keep) the database file here")
    args = p.parse_args()
    path = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="discovery-bench-")) / "wide.db"
    started = time.perf_counter()
    engine = (
        build(path, args.tables, args.columns, args.rows)
        if not path.exists()
        else sa.create_engine(f"sqlite:///{path}")
    )
    print(
        f"database: {args.tables} tables × {args.columns} columns × {args.rows} rows, {time.perf_counter() - started:.1f} s"
    )
    cat = catalog()
    store = SqlStore(engine, cat, "app_db")
    started = time.perf_counter()
    live = store.live_tables()
    for table, columns in live.items():
        store.sample(table, [c.name for c in columns], args.sample)
    raw = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    coverage = suggest(cat, lambda system: store, as_of=date(2026, 12, 8), sample_size=args.sample)
    scan, cpu = time.perf_counter() - started, time.process_time() - cpu
    kinds: dict[str | None, int] = {}
    for c in coverage.columns:
        kinds[c.verdict.kind] = kinds.get(c.verdict.kind, 0) + 1
    print(f"columns sampled and judged: {len(coverage.columns)}; verdicts: {dict(sorted(kinds.items(), key=str))}")
    print(f"reading the samples alone (raw): {raw:.1f} s")
    per_column = scan / max(len(coverage.columns), 1) * 1000
    print(f"suggestion scan: {scan:.1f} s wall, {cpu:.1f} s on a core ({per_column:.2f} ms per column); target < 60 s")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared)")


if __name__ == "__main__":
    main()
