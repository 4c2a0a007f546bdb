"""The sharing register's rows (``lifecycle_sharing_register``): one per recipient and
data interval, keyed by ``entry_key``, so a rerun of the interval updates its row."""

from __future__ import annotations

import json
from datetime import date, timedelta

import sqlalchemy as sa

from lifecycle.state.schema import sharing_register


class SharingEntries:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def save(self, entry: dict) -> dict:
        """Insert or update the row of ``entry['entry_key']``; returns the row as stored
        (``categories`` and ``fields`` as JSON text)."""
        row = {
            **entry,
            "categories": json.dumps(entry["categories"]),
            "fields": json.dumps(entry["fields"], sort_keys=True),
        }
        mine = sharing_register.c.entry_key == entry["entry_key"]
        with self.engine.begin() as conn:
            if not conn.execute(sharing_register.update().where(mine).values(row)).rowcount:
                try:
                    with conn.begin_nested():
                        conn.execute(sharing_register.insert().values(row))
                except sa.exc.IntegrityError:  # inserted meanwhile by a concurrent attempt
                    conn.execute(sharing_register.update().where(mine).values(row))
        return row

    def ending_between(self, start: str, end: str) -> list[dict]:
        """Rows whose data interval ends in [start, end) (ISO UTC), oldest first, ``categories``
        and ``fields`` as lists and mappings."""
        ends = sharing_register.c.interval_end
        query = sa.select(sharing_register).where(ends >= start, ends < end)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(ends, sharing_register.c.recipient_id)).all()
        return [
            {**row._mapping, "categories": json.loads(row.categories), "fields": json.loads(row.fields)} for row in rows
        ]

    def ending_within(
        self, start: date | None = None, end: date | None = None, *, recipient: str | None = None
    ) -> list[dict]:
        """Rows whose data interval ends within [start, end] (days, UTC), oldest first,
        ``categories`` and ``fields`` as lists and mappings."""
        query = sa.select(sharing_register)
        if start is not None:
            query = query.where(sharing_register.c.interval_end >= start.isoformat())
        if end is not None:
            query = query.where(sharing_register.c.interval_end < (end + timedelta(days=1)).isoformat())
        if recipient is not None:
            query = query.where(sharing_register.c.recipient_id == recipient)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(sharing_register.c.interval_end, sharing_register.c.recipient_id)).all()
        return [
            {**row._mapping, "categories": json.loads(row.categories), "fields": json.loads(row.fields)} for row in rows
        ]
