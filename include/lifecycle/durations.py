"""Durations as the configuration writes them: ``30d``, ``12h``, ``6mo``, ``3y``.

Months and years are calendar units (``6mo`` before 31 Aug is 29 Feb in a leap
year), so a duration keeps months apart from seconds and is applied to a
date, never converted to a fixed number of days.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dateutil.relativedelta import relativedelta

_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MONTH_UNITS = {"mo": 1, "y": 12}
_PATTERN = re.compile(r"^\s*(\d+)\s*(s|min|h|d|w|mo|y)\s*$")
SYNTAX = "a whole number and a unit: s, min, h, d, w, mo or y (e.g. 30d, 12h, 6mo, 3y)"


@dataclass(frozen=True, order=False)
class Duration:
    text: str
    months: int = 0
    seconds: int = 0

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, Duration):
            return value
        match = _PATTERN.match(str(value)) if isinstance(value, (str, int)) else None
        if not match:
            raise ValueError(f"{value!r} is not a duration; write {SYNTAX}")
        amount, unit = int(match.group(1)), match.group(2)
        text = f"{amount}{unit}"
        if unit in _MONTH_UNITS:
            return cls(text, months=amount * _MONTH_UNITS[unit])
        return cls(text, seconds=amount * _UNITS[unit])

    def before(self, when: datetime) -> datetime:
        """The instant this long before ``when`` (calendar-aware)."""
        return when - relativedelta(months=self.months) - timedelta(seconds=self.seconds)

    def after(self, when: datetime) -> datetime:
        return when + relativedelta(months=self.months) + timedelta(seconds=self.seconds)

    def _day_bounds(self) -> tuple[float, float]:
        """Shortest and longest length in days over every calendar position."""
        shortest, longest = _month_span_days(self.months) if self.months else (0, 0)
        days = self.seconds / 86400
        return shortest + days, longest + days

    def surely_shorter_than(self, other: Duration) -> bool:
        """True when ``self`` can be shorter than ``other`` at some date.

        Like units compare exactly; mixed units compare conservatively, so a
        retention of ``365d`` is shorter than a floor of ``1y`` (leap years).
        """
        if self.seconds == other.seconds == 0 or self.months == other.months == 0:
            return (self.months, self.seconds) < (other.months, other.seconds)
        return self._day_bounds()[0] < other._day_bounds()[1]

    def __str__(self) -> str:
        return self.text


@functools.cache
def _month_span_days(months: int) -> tuple[int, int]:
    """The fewest and most days ``months`` calendar months span (``before`` a date), over end dates
    from 2095 to 2105: leap years on both sides of 2100, which is not one, so every pattern of
    month lengths and leap days the calendar has.  ``6mo`` spans 181 to 184 days, ``1y`` 365 or 366."""
    spans, day, last = set(), date(2095, 1, 1), date(2106, 1, 1)
    while day < last:
        spans.add((day - (day - relativedelta(months=months))).days)
        day += timedelta(days=1)
    return min(spans), max(spans)
