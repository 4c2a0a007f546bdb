"""Legal holds: subjects (optionally limited to datasets) that no DAG may touch.

Holds are never deleted: removing one stamps ``removed_at``; adding and
removing are both written to the ledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlalchemy as sa

from lifecycle.errors import LifecycleError
from lifecycle.state.ledger import Ledger
from lifecycle.state.schema import legal_holds


@dataclass(frozen=True)
class Hold:
    id: int
    subject_id: str
    datasets: tuple[str, ...] | None  # None: every dataset
    reason: str
    until: date | None
    created_at: str

    def covers(self, dataset: str) -> bool:
        return self.datasets is None or dataset in self.datasets

    def active_on(self, day: date) -> bool:
        return self.until is None or self.until >= day


def _hold(row) -> Hold:
    datasets = tuple(json.loads(row.datasets)) if row.datasets else None
    return Hold(row.id, row.subject_id, datasets, row.reason, row.until, row.created_at)


class Holds:
    def __init__(self, engine: sa.Engine, ledger: Ledger, dataset_names: set[str] | None = None):
        self.engine = engine
        self.ledger = ledger
        self.dataset_names = dataset_names

    def add(
        self,
        subject_id: str,
        *,
        reason: str,
        datasets: list[str] | None = None,
        until: date | None = None,
        today: date | None = None,
    ) -> Hold:
        subject_id = str(subject_id).strip()
        if not subject_id:
            raise LifecycleError("holds add: --subject is empty")
        if not reason or not reason.strip():
            raise LifecycleError("holds add: --reason is required (why the data must be kept)")
        if datasets is not None and self.dataset_names is not None:
            unknown = sorted(set(datasets) - self.dataset_names)
            if unknown:
                raise LifecycleError(
                    f"holds add: --datasets names unknown dataset(s) {unknown}; the catalog has {sorted(self.dataset_names)}"
                )
        if until is not None and until < (today or datetime.now(UTC).date()):
            raise LifecycleError(f"holds add: --until {until} is in the past")
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self.engine.begin() as conn:
            result = conn.execute(
                legal_holds.insert().values(
                    subject_id=subject_id,
                    datasets=json.dumps(sorted(datasets)) if datasets else None,
                    reason=reason.strip(),
                    until=until,
                    created_at=created,
                )
            )
            hold_id = result.inserted_primary_key[0]
        self.ledger.append(
            "hold.added",
            {
                "hold": hold_id,
                "subject": subject_id,
                "datasets": sorted(datasets) if datasets else None,
                "until": until.isoformat() if until else None,
            },
        )
        return Hold(hold_id, subject_id, tuple(sorted(datasets)) if datasets else None, reason.strip(), until, created)

    def remove(self, subject_id: str) -> int:
        """End every open hold of the subject; returns how many."""
        removed = datetime.now(UTC).isoformat(timespec="seconds")
        open_holds = (legal_holds.c.subject_id == str(subject_id)) & legal_holds.c.removed_at.is_(None)
        with self.engine.begin() as conn:
            ids = [r.id for r in conn.execute(sa.select(legal_holds.c.id).where(open_holds))]
            conn.execute(legal_holds.update().where(open_holds).values(removed_at=removed))
        if ids:
            self.ledger.append("hold.removed", {"holds": ids, "subject": str(subject_id)})
        return len(ids)

    def active(self, on: date) -> list[Hold]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(legal_holds).where(legal_holds.c.removed_at.is_(None)).order_by(legal_holds.c.id)
            ).all()
        return [h for h in map(_hold, rows) if h.active_on(on)]

    def held_subjects(self, dataset: str, on: date) -> set[str]:
        """Subject ids whose data in ``dataset`` is held on ``on``."""
        return {h.subject_id for h in self.active(on) if h.covers(dataset)}
