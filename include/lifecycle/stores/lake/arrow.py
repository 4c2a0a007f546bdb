"""A ``Selection`` as a boolean mask over an Arrow table of a lake dataset's rows, values
cast to their columns' types, and anonymization strategies applied to Arrow columns."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lifecycle import anonymize as strategies
from lifecycle.clock import aware_utc, naive_utc
from lifecycle.stores.contract import Selection


def plain(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """String views (delta-rs reads them) as strings: compute kernels and casts expect those."""
    if pa.types.is_string_view(column.type):
        return column.cast(pa.string())
    if pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    return column


def as_type(values: list, kind: pa.DataType) -> pa.Array:
    """JSON or text values (keys, subject ids) as an array of ``kind``; a value that does not
    fit matches nothing and is left out."""
    kind = pa.string() if pa.types.is_string_view(kind) or pa.types.is_large_string(kind) else kind
    out = []
    for value in values:
        try:
            out.append(scalar(value, kind))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError, TypeError):
            continue
    return pa.array([s.as_py() for s in out], type=kind)


def scalar(value: Any, kind: pa.DataType) -> pa.Scalar:
    if pa.types.is_timestamp(kind):
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
        when = aware_utc(when) if kind.tz else naive_utc(when)
        return pa.scalar(when, type=kind)
    if pa.types.is_date(kind):
        day = date.fromisoformat(value) if isinstance(value, str) else value
        return pa.scalar(day.date() if isinstance(day, datetime) else day, type=kind)
    if pa.types.is_string(kind):
        return pa.scalar(str(value), type=kind)
    return pa.scalar(value).cast(kind)


def _compare(column, op, value) -> pa.ChunkedArray:
    return op(column, scalar(value, column.type))


def mask(table: pa.Table, selection: Selection, *, pk: str, created: str | None, link: str | None, values: dict):
    """True for the rows ``selection`` takes.  ``values``: the link column's values of
    ``subjects`` (key ``subjects``) and of ``exclude_subjects`` (key ``excluded``)."""
    keep = pa.chunked_array([pa.array([True] * table.num_rows, type=pa.bool_())])
    parts = []
    if selection.subjects is not None:
        parts.append(pc.is_in(plain(table[link]), value_set=as_type(values["subjects"], plain(table[link]).type)))
    if selection.exclude_subjects and link:
        held = pc.is_in(plain(table[link]), value_set=as_type(values["excluded"], plain(table[link]).type))
        parts.append(pc.invert(pc.fill_null(held, False)))
    parts += _created_parts(table, selection, created)
    if selection.within is not None:
        parts.append(_compare(table[pk], pc.greater_equal, selection.within.low))
        parts.append(_compare(table[pk], pc.less_equal, selection.within.high))
    if selection.keys is not None:
        parts.append(pc.is_in(plain(table[pk]), value_set=as_type(list(selection.keys), plain(table[pk]).type)))
    for part in parts:
        keep = pc.and_kleene(keep, pc.fill_null(part, False))
    return pc.fill_null(keep, False)


def _created_parts(table: pa.Table, selection: Selection, created: str | None) -> list:
    if created is None:
        return []
    column, parts = table[created], []
    if selection.older_than is not None:
        parts.append(_compare(column, pc.less, selection.older_than))
    if selection.created_within is not None:
        parts.append(_compare(column, pc.greater_equal, selection.created_within[0]))
        parts.append(_compare(column, pc.less_equal, selection.created_within[1]))
    for start, until in selection.created_not_in:
        inside = pa.chunked_array([pa.array([True] * table.num_rows, type=pa.bool_())])
        if start is not None:
            inside = pc.and_kleene(inside, _compare(column, pc.greater_equal, start))
        if until is not None:
            inside = pc.and_kleene(inside, _compare(column, pc.less, until))
        parts.append(pc.invert(pc.fill_null(inside, False)))
    return parts


def pending(table: pa.Table, fields: tuple[str, ...], specs: dict) -> pa.ChunkedArray:
    """Rows where one of ``fields`` does not yet hold its strategy's output (``Shape``)."""
    out = pa.chunked_array([pa.array([False] * table.num_rows, type=pa.bool_())])
    for name in fields:
        applied = _applied(plain(table[name]), strategies.strategy(specs[name].strategy).shape(specs[name]))
        out = pc.or_kleene(out, pc.invert(pc.fill_null(applied, True)))
    return out


def _applied(column, shape: strategies.Shape):
    if shape.kind == "equals":
        return pc.equal(column, pa.scalar(shape.value))
    if shape.kind == "length":
        return pc.equal(pc.utf8_length(column), shape.value)
    if shape.kind == "suffix":
        ends = [pc.ends_with(column, suffix) for suffix in shape.value]
        return ends[0] if len(ends) == 1 else pc.or_kleene(*ends)
    if shape.kind == "date_cut":
        return _date_cut(column, shape.value)
    return pc.is_null(column)


def _date_cut(column, to: str):
    if pa.types.is_date(column.type):
        parts = {"day": [], "month": [pc.day], "year": [pc.day, pc.month]}[to]
    else:
        zero = [pc.hour, pc.minute, pc.second, pc.microsecond]
        parts = zero + {"day": [], "month": [pc.day], "year": [pc.day, pc.month]}[to]
    out = pa.chunked_array([pa.array([True] * len(column), type=pa.bool_())])
    for part in parts:
        expected = 1 if part in (pc.day, pc.month) else 0
        out = pc.and_kleene(out, pc.equal(part(column), expected))
    return out


def anonymized(table: pa.Table, fields: list, hmac_key: bytes | None, cleared: tuple[str, ...] = ()) -> pa.Table:
    """The rows with each field's strategy applied, and the ``cleared`` columns (a subject link
    unlinked) set to null; every other column as it was."""
    for f in fields:
        spec = f.spec.anonymize
        strategy = strategies.strategy(spec.strategy)
        index = table.schema.get_field_index(f.column)
        kind = table.schema.field(index).type
        if strategy.constant is not None:
            value = strategy.constant(spec)
            new = (
                pa.nulls(table.num_rows, type=kind) if value is None else pa.array([value] * table.num_rows, type=kind)
            )
        else:
            new = pa.array(
                [strategy.transform(v, spec, hmac_key) for v in table.column(index).to_pylist()],
                type=kind,
            )
        table = table.set_column(index, table.schema.field(index), new)
    for name in cleared:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), pa.nulls(table.num_rows, type=table[name].type))
    return table


def json_ready(value: Any) -> Any:
    """A value as the ``Rows`` ability hands it on: dates in ISO form, bytes as hex, decimals as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return str(value)
