"""Statutory floors (``retention.yaml: statutory``): the legal minimums that keep a dataset's
rows, found here only, for retention, cancellation erasure and a person's requests alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from lifecycle.durations import Duration

if TYPE_CHECKING:
    from lifecycle.config import Config


@dataclass(frozen=True)
class Floor:
    """One statutory minimum covering a dataset; ``cutoff``: rows created after it are inside
    the floor at the run's time (None when no time was given)."""

    name: str
    basis: str
    minimum: Duration
    cutoff: datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.name}: {self.basis}"


def statutory_floors(config: Config, dataset: str, as_of: datetime | None = None) -> list[Floor]:
    """Every statutory minimum covering ``dataset``; with ``as_of``, the longest (earliest
    cutoff) first, so ``[0]`` is the floor that binds; without, in the file's order."""
    catalog = config.catalog
    found = [
        Floor(f.name, f.basis, f.minimum, f.minimum.before(as_of) if as_of else None)
        for f in config.retention.statutory
        if dataset in catalog.resolve(f.applies_to.categories, f.applies_to.datasets)
    ]
    return sorted(found, key=lambda floor: floor.cutoff) if as_of else found
