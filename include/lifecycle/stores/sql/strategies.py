"""What SQL can tell of anonymization strategies: whether a column can hold a strategy's
output (``scan``, validation) and whether a value already has it (idempotent runs)."""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle import anonymize


def already_applied(column: sa.ColumnElement, spec) -> sa.ColumnElement:
    """True where the value is NULL or already has its strategy's output shape (``anonymize.Shape``):
    such a row is left out of the next run, so anonymizing is idempotent."""
    shape = anonymize.strategy(spec.strategy).shape(spec)
    if shape.kind == "equals":
        applied = column == shape.value
    elif shape.kind == "length":
        applied = sa.func.length(column) == shape.value
    elif shape.kind == "suffix":
        applied = sa.or_(*(column.like(f"%{suffix}") for suffix in shape.value))
    elif shape.kind == "date_cut":
        parts = {
            "day": ["hour", "minute", "second"],
            "month": ["day", "hour", "minute", "second"],
            "year": ["month", "day", "hour", "minute", "second"],
        }[shape.value]
        if isinstance(column.type, sa.Date) and not isinstance(column.type, sa.DateTime):
            parts = [p for p in parts if p in ("month", "day")]
        applied = sa.and_(*(sa.extract(p, column) == (1 if p in ("month", "day") else 0) for p in parts))
    else:
        applied = sa.false()
    return column.is_(None) | applied


def fits(column_type: sa.types.TypeEngine, kind: str) -> bool:
    """Whether a column of this type can hold a strategy's output (``Strategy.fits``)."""
    text = isinstance(column_type, (sa.String, sa.Text))
    if kind == "text":
        return text
    if kind == "long_text":
        return text and (getattr(column_type, "length", None) is None or column_type.length >= 64)
    if kind == "temporal":
        return isinstance(column_type, (sa.Date, sa.DateTime))
    return True
