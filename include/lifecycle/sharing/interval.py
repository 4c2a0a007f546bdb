"""The run's data interval, and every object key of a delivery derived from it.

A rerun of the same interval has the same keys, so it rewrites the same
objects and updates the same register entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lifecycle.sharing.encoding import FILE_FORMATS

if TYPE_CHECKING:
    from lifecycle.config.recipients import Recipient


@dataclass(frozen=True)
class Interval:
    """The run's data interval (UTC); a point when the schedule has none."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, run) -> Interval:
        end = run.as_of.astimezone(UTC)
        start = (run.interval_start or run.as_of).astimezone(UTC)
        return cls(min(start, end), end)

    @property
    def key(self) -> str:
        return f"{_compact(self.start)}-{_compact(self.end)}"

    def prefix(self, template: str) -> str:
        return template.format(ds=self.start.date().isoformat(), start=_compact(self.start), end=_compact(self.end))


def _compact(when: datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class DeliveryKeys:
    """Every object key of one delivery, from the interval alone."""

    prefix: str
    manifest: str
    html: str
    files: dict[str, str]  # dataset -> key of its file

    @classmethod
    def of(cls, recipient: Recipient, interval: Interval) -> DeliveryKeys:
        prefix = interval.prefix(recipient.delivery.prefix)
        extension = FILE_FORMATS[recipient.delivery.format][0]
        return cls(
            prefix=prefix,
            manifest=f"{prefix}manifest.json",
            html=f"{prefix}manifest.html",
            files={d: f"{prefix}{d}.{extension}" for d in recipient.share},
        )
