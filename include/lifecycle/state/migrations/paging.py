"""Reading a table page by page inside a migration (data moves of any size)."""

from __future__ import annotations

import sqlalchemy as sa


def pages(conn: sa.Connection, query, size: int = 10_000):
    """The rows of ``query`` as mappings, ``size`` at a time."""
    result = conn.execute(query).mappings()
    while part := result.fetchmany(size):
        yield part
