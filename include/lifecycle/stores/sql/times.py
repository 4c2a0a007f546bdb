"""Time columns between SQL and the domain, in one place.

Every column the catalog names as a time (``created``, consent ``granted`` /
``withdrawn``, the requests tables' ``requested_at`` / ``withdrawn_at``) has a
*kind*, from its reflected type and the dataset's ``times`` declaration:

- ``aware``: a timestamp with a time zone (PostgreSQL ``timestamptz``);
  instants are bound with their zone, so the session's ``TimeZone`` plays no part;
- ``naive``: a timestamp without one (PostgreSQL ``timestamp``, MariaDB
  ``DATETIME`` / ``TIMESTAMP`` in a UTC session, SQLite's text as SQLAlchemy
  writes it); it holds UTC;
- ``date``: a day (``DATE``); an instant is compared by its UTC date, so a row
  dated D is older than an instant only once D is over, and lies in a window
  when its day meets it;
- ``text``: ISO text in a SQLite ``TEXT`` column; compared after SQLite's
  ``strftime`` has brought it (and any offset it carries) to one UTC form;
- ``epoch_seconds`` / ``epoch_milliseconds``: numbers, declared in the catalog
  (``times: {column: epoch_seconds}``), since the type does not say.

Values read become aware UTC datetimes; instants bound into statements take
the column's kind (``TimeColumn.value``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import sqlalchemy as sa

from lifecycle.clock import aware_utc, naive_utc
from lifecycle.errors import TerminalStoreError

EPOCHS = {"epoch_seconds": 1, "epoch_milliseconds": 1000}
_SQLITE_TEXT = "%Y-%m-%d %H:%M:%f"  # strftime's form: seconds with milliseconds


def kind_of(column_type: sa.types.TypeEngine, declared: str | None, dialect: str) -> str | None:
    """The column's time kind, or None when it cannot hold instants the lifecycle compares
    (a number not declared as epoch time, text outside SQLite, anything else)."""
    numeric = isinstance(column_type, (sa.Integer, sa.Numeric)) and not isinstance(column_type, sa.Boolean)
    if declared in EPOCHS:
        return declared if numeric else None
    if isinstance(column_type, sa.DateTime):
        return "aware" if getattr(column_type, "timezone", False) else "naive"
    if isinstance(column_type, sa.Date):
        return "date"
    if isinstance(column_type, sa.String) and dialect == "sqlite":
        return "text"
    return None


def kind_problem(column_type, declared: str | None, dialect: str) -> str | None:
    """Why a column cannot serve as a time column, with the fix; None when it can."""
    if kind_of(column_type, declared, dialect) is not None:
        return None
    if declared in EPOCHS:
        return f"declared {declared} in times, but the column is {column_type}: epoch times need a number column"
    if isinstance(column_type, (sa.Integer, sa.Numeric)):
        return (
            f"is {column_type}, a number: say what it counts in the dataset's "
            "times (times: {<column>: epoch_seconds} or epoch_milliseconds)"
        )
    return f"is {column_type}, not a date or time type (timestamp, timestamp with time zone, date)"


@dataclass(frozen=True)
class TimeColumn:
    """One time column: what statements compare (``expression``) and how instants meet it."""

    kind: str
    expression: sa.ColumnElement

    def value(self, when: datetime):
        """``when`` (naive means UTC) as this column holds it, for comparing or writing."""
        moment = aware_utc(when)
        if self.kind == "aware":
            return moment
        if self.kind == "naive":
            return naive_utc(moment)
        if self.kind == "date":
            return moment.date()
        if self.kind == "text":
            return naive_utc(moment).strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
        scaled = moment.timestamp() * EPOCHS[self.kind]
        return int(scaled) if scaled == math.floor(scaled) else scaled

    def stored(self, when: datetime):
        """``when`` as a value to write into the column (epoch numbers whole)."""
        value = self.value(when)
        return round(value) if isinstance(value, float) else value


def read_as(kind: str | None, value) -> datetime | None:
    """A value of a column of ``kind`` as an aware UTC datetime (None stays None)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return aware_utc(value)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    if isinstance(value, str):
        return aware_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    if kind in EPOCHS:
        return datetime.fromtimestamp(float(value) / EPOCHS[kind], UTC)
    raise TypeError(f"a {type(value).__name__} is not a time; declare the column in the dataset's times")


class Instants:
    """Time columns of ``SqlStore``'s datasets (a part of the store; see ``lifecycle.stores.sql``)."""

    def time_column(self, dataset: str, name: str, source=None) -> TimeColumn:
        """The dataset's column ``name`` (on ``source``, the table or an alias) as a time column;
        a column that cannot be one is a terminal error naming the fix (``scan`` finds it first)."""
        column = self._col(source if source is not None else self.table(dataset), dataset, name)
        declared = self.catalog.dataset(dataset).times.get(name)
        kind = kind_of(column.type, declared, self.engine.dialect.name)
        if kind is None:
            problem = kind_problem(column.type, declared, self.engine.dialect.name)
            raise TerminalStoreError(self.system, dataset, "compare a time column", f"column {name!r} {problem}")
        expression = sa.func.strftime(_SQLITE_TEXT, column) if kind == "text" else column
        return TimeColumn(kind, expression)
