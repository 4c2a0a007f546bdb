"""Key and column values between SQL and JSON: keys cross task boundaries as JSON (plans in
the ledger, units in XCom) and subject ids arrive as text, so each is turned back by its
column's Python type."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import Any

import sqlalchemy as sa


def json_key(value: Any) -> Any:
    """A key value as JSON carries it: ints as they are, everything else as text (ISO dates,
    decimals, uuids)."""
    if value is None or (isinstance(value, (int, str)) and not isinstance(value, bool)):
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def bound(column, value: Any) -> Any:
    """A value from JSON or text (a key, a subject id), bound as the column's type."""
    if value is None:
        return None
    kind = _python_type(column)
    if kind is None or isinstance(value, kind):
        return value
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is date:
        return date.fromisoformat(value)
    if kind is uuid.UUID:
        return uuid.UUID(str(value))
    if kind is bytes:
        return bytes.fromhex(value)
    return kind(value)


def coerced(column, values: Iterable) -> list:
    """Subject ids arrive as text (holds, the CLI, the ledger); an id of the wrong shape matches no row."""
    out = []
    for value in values:
        try:
            out.append(bound(column, value))
        except (TypeError, ValueError, ArithmeticError):
            continue
    return out


def to_text(column_type: sa.types.TypeEngine):
    """How a column's non-NULL values become JSON/CSV text (None: as they are)."""
    if isinstance(column_type, sa.DateTime) and getattr(column_type, "timezone", False):
        return lambda v: v.astimezone(UTC).isoformat()  # one zone, whatever the session's
    if isinstance(column_type, (sa.DateTime, sa.Date, sa.Time)):
        return lambda v: v.isoformat()
    if isinstance(column_type, sa.Numeric) and getattr(column_type, "asdecimal", False):
        return str
    if isinstance(column_type, sa.LargeBinary):
        return lambda v: bytes(v).hex()
    if isinstance(column_type, sa.Uuid):
        return str
    return None


def split_name(name: str) -> tuple[str | None, str]:
    """``schema.table`` as (schema or None, table)."""
    schema, _, table = name.rpartition(".")
    return schema or None, table


def _python_type(column) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None
