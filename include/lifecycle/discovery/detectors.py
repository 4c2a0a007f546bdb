"""Detectors: small objects with a name, a kind and one verb, ``matches(value)``.

A detector checks, not only matches a pattern: an e-mail address's domain
labels, a phone number against its country's numbering plan
(``phonenumbers``), an address with ``ipaddress``, a card or an IMEI with
the Luhn digit, a PRC resident identity number with its ISO 7064 MOD 11-2
check character and its date of birth.  A column's verdict is the share of
its sampled values a detector accepts (``suggest``); a value is never kept,
logged or returned.  ``NameCue`` detectors read the column's name only
(names, addresses, passwords: nothing in a value proves them).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from datetime import date, datetime

import phonenumbers

EMAIL = re.compile(r"^([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)@([A-Za-z0-9.-]+)$")
EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
MAC = re.compile(
    r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}$|^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$"
)
CARD = re.compile(r"^\d{4}(?:[ -]?\d{4}){2}[ -]?\d{1,7}$|^\d{4}[ -]?\d{6}[ -]?\d{5}$")
CARD_IN_TEXT = re.compile(r"(?<!\d)\d{4}(?:[ -]?\d{4}){3}(?:\d{0,3})(?!\d)|(?<!\d)3[47]\d{2}[ -]?\d{6}[ -]?\d{5}(?!\d)")
PRC_ID = re.compile(r"^[1-8]\d{16}[\dXx]$")
PRC_ID_IN_TEXT = re.compile(r"(?<![\dA-Za-z])[1-8]\d{16}[\dXx](?![\dA-Za-z])")
IPV4_IN_TEXT = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
PHONE_IN_TEXT = re.compile(r"(?<![\w+])(\+\d[\d\s()\-]{6,18}\d|\(?\d{3}\)?[\s\-]\d{3,4}[\s\-]\d{4})(?![\w])")
PHONE_CHARS = re.compile(r"^\+?[\d\s()\-.]+$")
LONG_DIGITS = re.compile(r"\d(?:[ ()\-]{0,2}\d){6}")
WORD = re.compile(r"[^\W\d_]{2,}")
PHONE_SEPARATORS = re.compile(r"[+\s()\-.]")
DATE_LIKE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{4}$")
DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ]00:00(?::00(?:\.0+)?)?)?$")


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iso7064_mod11_2(body: str) -> str:
    """The check character of a PRC resident identity number's first 17 digits."""
    total = 0
    for ch in body:
        total = (total + ord(ch) - 48) * 2 % 11
    return "0123456789X"[(12 - total) % 11]


def card_issuer(digits: str) -> bool:
    """A known issuer's prefix and length (Visa, Mastercard, Amex, Discover, JCB, UnionPay)."""
    n, two, four = len(digits), int(digits[:2]), int(digits[:4])
    return (
        (digits[0] == "4" and n in (13, 16, 19))
        or ((51 <= two <= 55 or 2221 <= four <= 2720) and n == 16)
        or (two in (34, 37) and n == 15)
        or ((digits.startswith("6011") or two == 65) and 16 <= n <= 19)
        or (3528 <= four <= 3589 and 16 <= n <= 19)
        or (two == 62 and 16 <= n <= 19)
    )


@dataclass(frozen=True)
class Detector:
    """A kind of personal value and the check that recognizes one."""

    name: str
    kind: str

    def matches(self, value: str) -> bool:  # pragma: no cover - each detector answers
        raise NotImplementedError


class Email(Detector):
    def matches(self, value: str) -> bool:
        m = EMAIL.match(value)
        if not m or len(value) > 254 or len(m[1]) > 64:
            return False
        labels = m[2].split(".")
        return (
            len(labels) >= 2 and all(LABEL.match(x) for x in labels) and labels[-1].isalpha() and len(labels[-1]) >= 2
        )


class Phone(Detector):
    """International form (``+`` and a country code), or written with separators in one of ``regions``."""

    regions: tuple[str, ...] = ("CN", "US", "GB", "DE", "FR", "JP")

    def matches(self, value: str) -> bool:
        if len(value) > 24 or not PHONE_CHARS.match(value) or not 7 <= sum(map(str.isdigit, value)) <= 15:
            return False
        if IPV4_IN_TEXT.fullmatch(value) or DATE_LIKE.match(value):
            return False
        if value.startswith("+") or value.startswith("00"):
            return _valid_phone(value.replace("00", "+", 1) if value.startswith("00") else value, None)
        if not PHONE_SEPARATORS.search(value):  # a bare run of digits is an order number as often as a phone
            return False
        return any(_valid_phone(value, region) for region in self.regions)


def _valid_phone(value: str, region: str | None) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(value, region))
    except phonenumbers.NumberParseException:
        return False


@dataclass(frozen=True)
class IPAddress(Detector):
    version: int = 4

    def matches(self, value: str) -> bool:
        if (self.version == 4) != ("." in value and ":" not in value):
            return False
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return address.version == self.version and not address.is_unspecified


class MacAddress(Detector):
    def matches(self, value: str) -> bool:
        if not MAC.match(value):
            return False
        hexes = re.sub(r"[^0-9A-Fa-f]", "", value).lower()
        return hexes not in ("000000000000", "ffffffffffff")


class Imei(Detector):
    def matches(self, value: str) -> bool:
        return len(value) == 15 and value.isdigit() and value[:2] != "00" and luhn(value)


class PaymentCard(Detector):
    def matches(self, value: str) -> bool:
        if not CARD.match(value):
            return False
        digits = value.replace(" ", "").replace("-", "")
        return 13 <= len(digits) <= 19 and card_issuer(digits) and luhn(digits)


class PrcResidentId(Detector):
    """18 characters: region, date of birth (YYYYMMDD), sequence, ISO 7064 MOD 11-2 check character."""

    def matches(self, value: str) -> bool:
        if not PRC_ID.match(value) or iso7064_mod11_2(value[:17]) != value[17].upper():
            return False
        try:
            born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
        except ValueError:
            return False
        return born.year >= 1900


@dataclass(frozen=True)
class DateOfBirth(Detector):
    """A calendar date (no time of day) at least ``min_age`` years before ``as_of``, after 1900."""

    as_of: date | None = None
    min_age: int = 12

    def matches(self, value: str) -> bool:
        m = DATE.match(value)
        if not m:
            return False
        try:
            when = date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return False
        latest = (self.as_of.year if self.as_of else 2100) - self.min_age
        return 1900 <= when.year <= latest

    def at(self, as_of: date) -> DateOfBirth:
        return replace(self, as_of=as_of)


class FreeText(Detector):
    """Text of several words holding an e-mail address, a phone number, an IP address, a card
    number or a PRC resident identity number, each checked as its own detector checks it."""

    def matches(self, value: str) -> bool:
        if not is_prose(value):
            return False
        if "@" in value and _email_in(value):
            return True
        if "." in value and _ip_in(value):
            return True
        return bool(LONG_DIGITS.search(value)) and (_card_in(value) or _prc_id_in(value) or _phone_in(value))


def is_prose(value: str) -> bool:
    """Several words, two of them of letters: text a person wrote, not a code or a number."""
    if len(value) < 12 or value.count(" ") < 2:
        return False
    first = WORD.search(value)
    return first is not None and WORD.search(value, first.end()) is not None


def _email_in(text: str) -> bool:
    return any(EMAIL_DETECTOR.matches(m) for m in EMAIL_IN_TEXT.findall(text))


def _phone_in(text: str) -> bool:
    return any(PHONE_DETECTOR.matches(m.strip()) for m in PHONE_IN_TEXT.findall(text))


def _ip_in(text: str) -> bool:
    return any(IPV4_DETECTOR.matches(m) for m in IPV4_IN_TEXT.findall(text))


def _card_in(text: str) -> bool:
    return any(CARD_DETECTOR.matches(m) for m in CARD_IN_TEXT.findall(text))


def _prc_id_in(text: str) -> bool:
    return any(PRC_DETECTOR.matches(m) for m in PRC_ID_IN_TEXT.findall(text))


EMAIL_DETECTOR = Email("email", "email")
PHONE_DETECTOR = Phone("phone", "phone")
IPV4_DETECTOR = IPAddress("ipv4", "ip_address", version=4)
CARD_DETECTOR = PaymentCard("payment_card", "payment_card")
PRC_DETECTOR = PrcResidentId("prc_resident_id", "national_id")

# the registry, in order of precedence when two accept the same share of a column
DETECTORS: tuple[Detector, ...] = (
    EMAIL_DETECTOR,
    PRC_DETECTOR,
    CARD_DETECTOR,
    Imei("imei", "imei"),
    MacAddress("mac_address", "mac_address"),
    IPV4_DETECTOR,
    IPAddress("ipv6", "ip_address", version=6),
    PHONE_DETECTOR,
    DateOfBirth("date_of_birth", "date_of_birth"),
    FreeText("free_text", "free_text"),
)


@dataclass(frozen=True)
class NameCue:
    """A kind told by the column's name alone: ``names(table, column)`` is the one verb."""

    name: str
    kind: str
    pattern: re.Pattern
    people_tables_only: re.Pattern | None = None  # a bare ``name`` is a person's only in a table of people
    unless: re.Pattern | None = None

    def names(self, table: str, column: str) -> bool:
        column = column.lower()
        if self.unless and self.unless.search(column):
            return False
        if self.pattern.search(column):
            return True
        return bool(self.people_tables_only and self.people_tables_only.match(column) and _PEOPLE.search(table.lower()))


_PEOPLE = re.compile(r"user|customer|member|contact|employee|person|people|account|profile|client|patient|buyer")

NAME_CUES: tuple[NameCue, ...] = (
    NameCue(
        "name:account", "account", re.compile(r"^(account|username|user_name|login|login_name|nickname|screen_name)$")
    ),
    NameCue(
        "name:password", "password", re.compile(r"passw|passwd|pwd|secret|security_answer|pin_hash|pin_code|otp_seed")
    ),
    NameCue(
        "name:person",
        "person_name",
        re.compile(
            r"(^|_)(first|last|given|family|full|middle|maiden|sur|nick|display|contact|real|legal)_?name$|^surname$"
        ),
        re.compile(r"^name$"),
    ),
    NameCue(
        "name:address",
        "postal_address",
        re.compile(r"(^|_)(street|address|addr|postcode|postal_code|zip_code|zipcode|house_number)(_|$|\d)"),
        unless=re.compile(r"(^|_)(ip|mac|e?mail|wallet|web|url|host|server|hardware|bluetooth|wifi)(_|$)"),
    ),
)


def as_text(value) -> str | None:
    """A sampled value as the detectors read it (None: nothing to read)."""
    if type(value) is str:
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    text = str(value).strip()
    return text or None
