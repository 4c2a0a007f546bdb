"""Anonymization strategies, one registry keyed by the name the YAML uses.

Each strategy turns a value into one that no longer identifies the person
(PIPL art. 73: cannot identify, cannot be restored).  A strategy is data the
stores read: the column kind it fits, a ``transform`` per value, a
``constant`` where every value becomes the same (``null``, ``redact``: one
set-based UPDATE), and the ``shape`` of its output, so a store can leave out
values already anonymized (an HMAC is never hashed twice).  The SQL adapter
renders fits and shapes for its database (``stores/sql.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from lifecycle.shapes import Model


class Anonymize(Model):
    """A strategy and its options (catalog.yaml ``fields.<column>.anonymize``); ``anonymize: hmac``
    is short for ``{strategy: hmac}``.  Each option belongs to the strategies whose ``options`` name it."""

    strategy: str
    text: str | None = None  # redact: the replacement
    to: Literal["day", "month", "year"] | None = None  # generalize_date: the precision kept


def shorthand(value):
    """``anonymize: <name>`` as ``{strategy: <name>}``; an unquoted null is refused."""
    if value is None:
        raise ValueError(
            'unquoted null is ambiguous: write anonymize: "null" for the null strategy, or leave the key out'
        )
    return {"strategy": value} if isinstance(value, str) else value


@dataclass(frozen=True)
class Shape:
    """What an anonymized value looks like: ``kind`` is ``never`` (NULL only), ``equals``
    (the redaction text), ``length`` (characters), ``suffix`` (one of ``values``), ``date_cut``
    (time parts zero down to ``value``: day, month or year)."""

    kind: str
    value: object = None


@dataclass(frozen=True)
class Strategy:
    name: str
    options: frozenset[str]
    fits: str  # the column kind: any | text | long_text | temporal
    transform: Callable[[object, Anonymize, bytes | None], object]
    shape: Callable[[Anonymize], Shape]
    constant: Callable[[Anonymize], object] | None = None  # the one value a set-based UPDATE writes
    needs_key: bool = False

    def describe_fit(self) -> str:
        return {
            "text": "a text column",
            "temporal": "a date or timestamp column",
            "long_text": "a text column of at least 64 characters",
        }.get(self.fits, "any nullable column")


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


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in [
        Strategy("null", frozenset(), "any", lambda v, o, k: None, lambda o: Shape("never"), constant=lambda o: None),
        Strategy(
            "redact",
            frozenset({"text"}),
            "text",
            lambda v, o, k: None if v is None else _redact_text(o),
            lambda o: Shape("equals", _redact_text(o)),
            constant=_redact_text,
        ),
        Strategy("hmac", frozenset(), "long_text", _keyed_hash, lambda o: Shape("length", 64), needs_key=True),
        Strategy("truncate_ip", frozenset(), "text", _truncate_ip, lambda o: Shape("suffix", (".0", "::"))),
        Strategy(
            "generalize_date",
            frozenset({"to"}),
            "temporal",
            _generalize_date,
            lambda o: Shape("date_cut", o.to or "month"),
        ),
    ]
}


def strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown anonymization strategy {name!r}; valid: {', '.join(STRATEGIES)}") from None


def option_problems(spec: Anonymize) -> list[str]:
    """Options set that the named strategy does not take."""
    known = strategy(spec.strategy).options
    given = {name for name in ("text", "to") if getattr(spec, name) is not None}
    return [f"option {name!r} does not apply to strategy {spec.strategy!r}" for name in sorted(given - known)]
