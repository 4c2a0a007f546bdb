"""Anonymization strategies, one registry keyed by the name the YAML uses.

Each strategy turns a value into one that no longer identifies the person
(PIPL art. 73: cannot identify, cannot be restored).  Where SQL can express
the change portably (``null``, ``redact``) the store writes one set-based
UPDATE; otherwise the store transforms values in Python per key range.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable

import sqlalchemy as sa

from lifecycle.config.models import Anonymize


@dataclass(frozen=True)
class Strategy:
    name: str
    options: frozenset[str]
    fits: Callable[[sa.types.TypeEngine], bool]
    transform: Callable[[object, Anonymize, bytes | None], object]
    applied: Callable[[sa.ColumnElement, Anonymize], sa.ColumnElement] = None   # the value already has the strategy's shape
    sql: Callable[[Anonymize], object] | None = None   # the constant a set-based UPDATE writes
    needs_key: bool = False

    def describe_fit(self) -> str:
        return {
            "truncate_ip": "a text column",
            "generalize_date": "a date or timestamp column",
            "hmac": "a text column of at least 64 characters",
            "redact": "a text column",
        }.get(self.name, "any nullable column")


def _is_text(t: sa.types.TypeEngine) -> bool:
    return isinstance(t, (sa.String, sa.Text))


def _long_text(t: sa.types.TypeEngine) -> bool:
    return _is_text(t) and (getattr(t, "length", None) is None or t.length >= 64)


def _is_temporal(t: sa.types.TypeEngine) -> bool:
    return isinstance(t, (sa.Date, sa.DateTime))


def _truncate_ip(value, options, key):
    """IPv4 keeps its /24, IPv6 its /48; anything else becomes NULL."""
    if value is None:
        return None
    try:
        ip = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None
    bits = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False).network_address)


def _generalize_date(value, options, key):
    if value is None:
        return None
    to = options.to or "month"
    replace = {"day": {}, "month": {"day": 1}, "year": {"day": 1, "month": 1}}[to]
    if isinstance(value, datetime):
        return value.replace(hour=0, minute=0, second=0, microsecond=0, **replace)
    if isinstance(value, date):
        return value.replace(**replace)
    return None


def _keyed_hash(value, options, key):
    if value is None:
        return None
    if not key:
        raise ValueError("the hmac strategy needs a key (Airflow variable named by anonymization.hmac_key_variable)")
    return hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()


REDACTED = "[redacted]"


def _redact_text(options: Anonymize) -> str:
    return options.text if options.text is not None else REDACTED


def _truncated_ip(column, options):
    return column.like("%.0") | column.like("%::")


def _generalized_date(column, options):
    to = options.to or "month"
    parts = {"day": ["hour", "minute", "second"], "month": ["day", "hour", "minute", "second"],
             "year": ["month", "day", "hour", "minute", "second"]}[to]
    if isinstance(column.type, sa.Date) and not isinstance(column.type, sa.DateTime):
        parts = [p for p in parts if p in ("month", "day")]
    return sa.and_(*(sa.extract(p, column) == (1 if p in ("month", "day") else 0) for p in parts))


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in [
        Strategy("null", frozenset(), lambda t: True, lambda v, o, k: None,
                 applied=lambda c, o: sa.false(), sql=lambda o: None),
        Strategy("redact", frozenset({"text"}), _is_text, lambda v, o, k: None if v is None else _redact_text(o),
                 applied=lambda c, o: c == _redact_text(o), sql=_redact_text),
        Strategy("hmac", frozenset(), _long_text, _keyed_hash,
                 applied=lambda c, o: sa.func.length(c) == 64, needs_key=True),
        Strategy("truncate_ip", frozenset(), _is_text, _truncate_ip, applied=_truncated_ip),
        Strategy("generalize_date", frozenset({"to"}), _is_temporal, _generalize_date, applied=_generalized_date),
    ]
}


def strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown anonymization strategy {name!r}; valid: {', '.join(STRATEGIES)}") from None


def already_applied(column: sa.ColumnElement, spec: Anonymize) -> sa.ColumnElement:
    """True where the column's value is NULL or already has the strategy's output shape.

    A row whose every anonymized field is already applied is left out of the
    next run, so anonymizing is idempotent (an HMAC is never hashed again).
    """
    return column.is_(None) | strategy(spec.strategy).applied(column, spec)


def option_problems(spec: Anonymize) -> list[str]:
    """Options set that the named strategy does not take."""
    known = strategy(spec.strategy).options
    given = {name for name in ("text", "to") if getattr(spec, name) is not None}
    return [f"option {name!r} does not apply to strategy {spec.strategy!r}" for name in sorted(given - known)]
