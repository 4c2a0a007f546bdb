"""The period of an evidence pack: days, UTC, both ends included; its time is its last second."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from lifecycle.errors import LifecycleError


@dataclass(frozen=True)
class Period:
    """Days ``start`` through ``end`` (UTC), both included."""

    start: date
    end: date

    def __post_init__(self):
        if self.end < self.start:
            raise LifecycleError(f"--to {self.end} is before --from {self.start}: a period ends on or after its start")

    @classmethod
    def month_before(cls, as_of: datetime) -> Period:
        """The calendar month before the one ``as_of`` falls in (a monthly run packs the month just ended)."""
        last = as_of.date().replace(day=1) - timedelta(days=1)
        return cls(last.replace(day=1), last)

    @classmethod
    def parse(cls, key: str) -> Period:
        """The period of a key ``<from>_<to>``."""
        start, _, end = key.partition("_")
        return cls(date.fromisoformat(start), date.fromisoformat(end))

    @property
    def key(self) -> str:
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

    @property
    def begins(self) -> datetime:
        """The period's first instant (its first day's midnight, UTC)."""
        return datetime.combine(self.start, time(), UTC)

    @property
    def until(self) -> datetime:
        """The instant the period ends before (the midnight after its last day): [begins, until)."""
        return datetime.combine(self.end + timedelta(days=1), time(), UTC)

    @property
    def closes(self) -> datetime:
        """The pack's time: the last second of the period."""
        return datetime.combine(self.end, time(23, 59, 59), UTC)

    def includes(self, instant: str | None) -> bool:
        """An ISO instant (as records keep it) falls on a day of the period."""
        return bool(instant) and self.start.isoformat() <= instant[:10] <= self.end.isoformat()

    def to_json(self) -> dict:
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}
