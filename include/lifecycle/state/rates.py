"""One send rate shared by every process of a run: start times handed out in blocks.

Each scope (``incident:<run_id>``, ``erasure:<run_id>``) has one row, the
earliest start the next mail may take.  ``Starts.take`` moves it on by a
block of intervals and returns the starts it took, so processes on any
number of machines draw distinct starts at least an interval apart: together
they keep ``email.max_per_second``, whatever the number of connections.  Losing the
latest move in a crash only lets one more block go early; the row is not
evidence, so PostgreSQL commits it without waiting for the disk.
"""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle.state.schema import send_rates

_NOW, _SPAN, _SCOPE = sa.bindparam("now_us"), sa.bindparam("span_us"), sa.bindparam("_scope")
_MOVE = (
    send_rates.update()
    .where(send_rates.c.scope == _SCOPE)
    .values(next_start_us=sa.case((send_rates.c.next_start_us > _NOW, send_rates.c.next_start_us), else_=_NOW) + _SPAN)
)
_READ = sa.select(send_rates.c.next_start_us).where(send_rates.c.scope == _SCOPE)


class SendRates:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def open(self, scope: str, interval: float) -> Starts:
        """Starts ``interval`` seconds apart under ``scope``, drawn over a connection of their own."""
        return Starts(self.engine.connect(), scope, interval)


class Starts:
    """Where the database can return what an UPDATE wrote (PostgreSQL, SQLite), a start is one
    statement in autocommit; elsewhere (MariaDB) an UPDATE and a SELECT in one transaction."""

    def __init__(self, conn: sa.Connection, scope: str, interval: float):
        self.scope, self._interval_us = scope, max(1, round(interval * 1e6))
        self._returning = conn.dialect.update_returning
        if self._returning:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET synchronous_commit TO OFF")  # this connection writes nothing else
        self._conn = conn

    def take(self, now: float, count: int = 1) -> list[float]:
        """The starts (Unix time) of ``count`` more mails, an interval apart: from ``now``, or
        from an interval after the start handed out last under the scope (by any process)
        when that is later."""
        span = self._interval_us * count
        params = {"_scope": self.scope, "now_us": round(now * 1e6), "span_us": span}
        moved = self._move(params)
        if moved is None:  # the scope's first start
            try:
                self._conn.execute(send_rates.insert(), {"scope": self.scope, "next_start_us": params["now_us"]})
                self._conn.commit()
            except sa.exc.IntegrityError:  # another process made the row meanwhile
                self._conn.rollback()
            moved = self._move(params)
        first = moved - span
        return [(first + n * self._interval_us) / 1e6 for n in range(count)]

    def _move(self, params: dict) -> int | None:
        """The scope's next start moved on by ``span_us``; what it is now (None: no row yet)."""
        conn = self._conn
        if self._returning:
            moved = conn.execute(_MOVE.returning(send_rates.c.next_start_us), params).scalar()
        else:
            conn.execute(_MOVE, params)
            moved = conn.execute(_READ, params).scalar()
        conn.commit()
        return moved

    def close(self) -> None:
        self._conn.close()
