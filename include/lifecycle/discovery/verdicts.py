"""A column's verdict from its sample: the detector that accepts the largest share of the
values (at least its threshold), else a column-name cue, else nothing; and what to write in
catalog.yaml for it (a category of the catalog's own vocabulary and a strategy that fits)."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import date

from lifecycle.discovery.detectors import DETECTORS, NAME_CUES, DateOfBirth, Detector, as_text, is_prose

SHARE = 0.8  # a column is of a kind when at least this share of its sampled values is
FREE_TEXT_SHARE = 0.05  # ... but free text is personal when a few of its values hold something
FREE_TEXT = "free_text"
PROBE = 40  # distinct values a detector must do well on before it reads the rest
RARE_PROBE = 200  # the same for free text: 5% of 200 values is 10, and half of that must be there

# the strategies to propose per kind, the first that fits the column (type, NOT NULL) wins
STRATEGIES: dict[str, tuple] = {
    "email": ("hmac", "redact", "null"),
    "phone": ("null", "redact"),
    "ip_address": ("truncate_ip", "null"),
    "mac_address": ("null", "redact"),
    "imei": ("hmac", "null", "redact"),
    "payment_card": ("null", "redact"),
    "national_id": ("null", "redact"),
    "date_of_birth": ({"strategy": "generalize_date", "to": "year"}, "null"),
    "free_text": ("redact", "null"),
    "person_name": ("redact", "null"),
    "postal_address": ("redact", "null"),
    "password": ("null", "redact"),
    "account": ("hmac", "redact", "null"),
}

# words looked for in the catalog's category names and titles, best first
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "email": ("contact", "basic", "identity", "personal", "profile"),
    "phone": ("contact", "basic", "identity", "personal", "profile"),
    "person_name": ("basic", "identity", "contact", "personal", "profile"),
    "postal_address": ("address", "contact", "basic", "personal", "profile"),
    "date_of_birth": ("birth", "basic", "identity", "demographic", "personal", "profile"),
    "national_id": ("identity", "government", "document", "basic", "personal"),
    "ip_address": ("network", "online", "access", "device"),
    "mac_address": ("device", "equipment", "hardware", "network"),
    "imei": ("device", "equipment", "hardware", "network"),
    "payment_card": ("payment", "financial", "card", "billing", "transaction"),
    "password": ("credential", "password", "secret", "security", "auth"),
    "account": ("network", "account", "online", "identity", "basic"),
    "free_text": ("content", "message", "communication", "text"),
}


@dataclass(frozen=True)
class Verdict:
    """What one column looks like: ``kind`` None when nothing matched; ``detector`` names the
    detector or name cue; ``matched`` of ``sampled`` non-null values (0 of n for a name cue)."""

    kind: str | None
    detector: str | None
    matched: int
    sampled: int

    @property
    def share(self) -> float:
        return self.matched / self.sampled if self.sampled else 0.0

    def evidence(self) -> str:
        if self.kind is None:
            return f"no detector matched ({self.sampled} sampled value(s))"
        if self.detector and self.detector.startswith("name:"):
            return f"{self.kind}: by the column's name ({self.sampled} sampled value(s))"
        return f"{self.kind}: {self.detector} accepted {self.share:.0%} of {self.sampled} sampled value(s)"


def detectors_at(as_of: date) -> tuple[Detector, ...]:
    """The registry with the date of birth detector reading ages at ``as_of``."""
    return tuple(d.at(as_of) if isinstance(d, DateOfBirth) else d for d in DETECTORS)


def judge(table: str, column: str, values: list, detectors: tuple[Detector, ...]) -> Verdict:
    texts: Counter = Counter()
    for value, n in Counter(values).items():
        text = as_text(value)
        if text is not None:
            texts[text] += n
    sampled = sum(texts.values())
    best: Verdict | None = None
    prose = _mostly_prose(texts)
    for detector in detectors:
        if detector.kind == FREE_TEXT and not prose:
            continue
        need = FREE_TEXT_SHARE if detector.kind == FREE_TEXT else SHARE
        matched = _matched(detector, texts, sampled, need)
        if matched and matched >= need * sampled and (best is None or matched > best.matched):
            best = Verdict(detector.kind, detector.name, matched, sampled)
    if best is not None:
        return best
    for cue in NAME_CUES:
        if cue.names(table, column):
            return Verdict(cue.kind, cue.name, 0, sampled)
    return Verdict(None, None, 0, sampled)


def _mostly_prose(texts: Counter) -> bool:
    """Whether at least half of the first ``PROBE`` distinct values are prose (free text's gate)."""
    first = list(itertools.islice(texts, PROBE))
    return bool(first) and sum(map(is_prose, first)) * 2 >= len(first)


def _matched(detector: Detector, texts: Counter, sampled: int, need: float) -> int:
    """Values the detector accepts; gives up (0) once too many were refused to reach ``need``,
    or when fewer than half of ``need`` of the first ``PROBE`` (``RARE_PROBE`` for a small
    ``need``) distinct values were accepted."""
    allowed = sampled - need * sampled
    matched = refused = 0
    probe = need >= 0.5  # else free text: a small share, judged on more values
    for seen, (text, n) in enumerate(texts.items(), 1):
        if detector.matches(text):
            matched += n
        else:
            refused += n
            if refused > allowed:
                return 0
        if seen == (PROBE if probe else RARE_PROBE) and matched < need * (matched + refused) / 2:
            return 0
    return matched


def category_for(kind: str, categories: dict, chosen: dict[str, str] | None = None) -> str:
    """The catalog's category for a kind: named in ``chosen``, else the best match of its words
    in the catalog's category names and titles, else the kind itself (a category to add)."""
    if chosen and kind in chosen:
        return chosen[kind]
    best, rank = kind, len(CATEGORY_WORDS.get(kind, ()))
    for name, spec in categories.items():
        said = f"{name} {getattr(spec, 'title', None) or ''}".lower()
        for i, word in enumerate(CATEGORY_WORDS.get(kind, ())[:rank]):
            if word in said:
                best, rank = name, i
                break
    return best


def strategy_for(kind: str, fits: tuple[str, ...], nullable: bool):
    """The first strategy of the kind's list that the column can hold (None: none fits)."""
    for choice in STRATEGIES.get(kind, ("null",)):
        name = choice["strategy"] if isinstance(choice, dict) else choice
        if name in fits and (nullable or name != "null"):
            return choice
    return None
