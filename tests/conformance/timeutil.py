"""Durations and calendar arithmetic, written from docs/configuration.md (not from the engine).

``6mo`` before 31 August is the last day of February; ``1y`` before 29 February
2028 is 28 February 2027.  Mixed-unit comparisons are conservative: a retention
``keep`` is valid against a statutory ``minimum`` when it can never be shorter,
i.e. its shortest calendar length is at least the minimum's longest.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^(\d+)(s|min|h|d|w|mo|y)$")


def months_before(when: datetime, months: int) -> datetime:
    """The same wall-clock time ``months`` calendar months earlier, the day clipped to the month's end."""
    index = when.year * 12 + (when.month - 1) - months
    year, month0 = divmod(index, 12)
    day = min(when.day, calendar.monthrange(year, month0 + 1)[1])
    return when.replace(year=year, month=month0 + 1, day=day)


@dataclass(frozen=True)
class Dur:
    text: str
    months: int = 0
    seconds: int = 0

    @classmethod
    def parse(cls, text: str) -> Dur:
        m = _PATTERN.match(text)
        if not m:
            raise ValueError(text)
        n, unit = int(m[1]), m[2]
        if unit == "mo":
            return cls(text, months=n)
        if unit == "y":
            return cls(text, months=12 * n)
        return cls(text, seconds=n * _UNITS[unit])

    def before(self, when: datetime) -> datetime:
        return months_before(when, self.months) - timedelta(seconds=self.seconds)

    def after(self, when: datetime) -> datetime:
        return months_before(when, -self.months) + timedelta(seconds=self.seconds)

    def day_bounds(self) -> tuple[float, float]:
        """Shortest and longest length in days over calendar positions."""
        if not self.months:
            return self.seconds / 86400, self.seconds / 86400
        low, high = _month_bounds(self.months)
        return low + self.seconds / 86400, high + self.seconds / 86400


@functools.cache
def _month_bounds(months: int) -> tuple[int, int]:
    """Min and max days spanned by ``months`` calendar months, over every start day of a
    four-year leap cycle (and the day-clipping at month ends)."""
    lengths = set()
    start = date(2001, 1, 1)
    for offset in range(4 * 366):
        d = start + timedelta(days=offset)
        later = months_before(datetime(d.year, d.month, d.day), -months).date()
        lengths.add((later - d).days)
    return min(lengths), max(lengths)


def valid_against_floor(keep: Dur, minimum: Dur) -> bool:
    """docs/configuration.md: like units compare exactly, mixed units conservatively."""
    if (keep.months == 0 and minimum.months == 0) or (keep.seconds == 0 and minimum.seconds == 0):
        return (keep.months, keep.seconds) >= (minimum.months, minimum.seconds)
    return keep.day_bounds()[0] >= minimum.day_bounds()[1]


def naive(when: datetime) -> datetime:
    """Naive UTC (the stored convention)."""
    if when.tzinfo is None:
        return when
    return (when - when.utcoffset()).replace(tzinfo=None)
