"""Seed the demo world: fake buyers of "MIC (for Buyer)" and everything they leave behind.

``seed()`` creates the tables if missing and streams every user's rows
(``rows.user_rows``) into them in chunks: one batch per table per chunk, COPY
on PostgreSQL, ``executemany`` elsewhere, so memory stays flat at any size.
Objects go to a versioned S3 bucket (``media``).  Same arguments, same bytes.
Nothing here prints or returns personal data: ``seed()`` returns counts.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

import sqlalchemy as sa

from lifecycle.demo import schema
from lifecycle.demo.media import MEDIA_PREFIXES, MediaWriter, clear_media, ensure_versioned_bucket
from lifecycle.demo.plan import Plan, demo_holds, plan
from lifecycle.demo.rows import World, normalize_as_of, user_rows

__all__ = ["MEDIA_PREFIXES", "DemoError", "Plan", "demo_holds", "plan", "reset", "seed"]


class DemoError(RuntimeError):
    """The demo cannot be seeded as asked (e.g. the tables already hold data)."""


def reset(engine: sa.Engine, s3_client=None, bucket: str | None = None) -> None:
    """Drop the demo tables and empty the demo's prefixes in the media bucket."""
    schema.drop_all(engine)
    if s3_client is not None and bucket:
        clear_media(s3_client, bucket)


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    """One batch: COPY on PostgreSQL with psycopg2 (~2.5x an executemany), else executemany."""
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2":
        prep = conn.dialect.identifier_preparer
        columns = [c.name for c in table.c]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for row in rows:  # \N marks NULL; no demo value is that string
            writer.writerow(["\\N" if row[c] is None else row[c] for c in columns])
        buf.seek(0)
        sql = (
            f"COPY {prep.format_table(table)} ({', '.join(prep.quote(c) for c in columns)}) "
            "FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        )
        with conn.connection.dbapi_connection.cursor() as cursor:
            cursor.copy_expert(sql, buf)
    else:
        conn.execute(table.insert(), rows)


def _sync_sequences(conn: sa.Connection) -> None:
    """Rows carry explicit ids; PostgreSQL's sequences must then be moved past them."""
    if conn.dialect.name != "postgresql":
        return
    for table in schema.TABLES:
        name = conn.dialect.identifier_preparer.format_table(table)
        conn.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence(:t, 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {name}"
            ),
            {"t": name},
        )


def seed(
    engine: sa.Engine,
    s3_client=None,
    bucket: str | None = None,
    *,
    users: int = 200,
    as_of: datetime,
    seed: int = 0,
    chunk_size: int = 10_000,
) -> dict[str, int]:
    """Create the demo tables if missing and fill them; returns row counts per
    table (and ``s3_objects``, ``s3_versions``, ``s3_delete_markers`` when an
    S3 client is given).  Refuses tables that already hold users."""
    if users < 1:
        raise DemoError(f"users must be at least 1, not {users}")
    schema.create_all(engine)
    with engine.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(schema.users)).scalar():
            raise DemoError(
                "the demo tables already hold users; reset them first (python -m lifecycle.demo seed --reset)"
            )
    world = World(seed=seed, as_of=normalize_as_of(as_of), plan=plan(users, seed))
    media = None
    if s3_client is not None:
        if not bucket:
            raise DemoError("an S3 client needs a bucket")
        ensure_versioned_bucket(s3_client, bucket)
        media = MediaWriter(s3_client, bucket)
    counts = {t.name: 0 for t in schema.TABLES}
    buffers: dict[str, list[dict]] = {t.name: [] for t in schema.TABLES}

    def flush() -> None:
        with engine.begin() as conn:
            for table in schema.TABLES:  # parents first
                rows = buffers[table.name]
                if rows:
                    _insert(conn, table, rows)
                    counts[table.name] += len(rows)
                    buffers[table.name] = []
        if media is not None:
            media.drain()

    try:
        for uid in range(1, users + 1):
            rows, objects = user_rows(world, uid)
            full = False
            for name, new in rows.items():
                if new:
                    buffers[name].extend(new)
                    full = full or len(buffers[name]) >= chunk_size
            if media is not None and objects:
                media.add(objects)
            if full:
                flush()
        flush()
        with engine.begin() as conn:
            _sync_sequences(conn)
    finally:
        if media is not None:
            media.close()
    if media is not None:
        counts.update(media.counts)
    return counts
