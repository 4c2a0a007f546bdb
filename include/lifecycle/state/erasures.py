"""Erasure states (``lifecycle_erasures``): one row per subject who asked to be erased.

A subject is *pending* (grace period), *withdrawn*, *held*, *rejected*, *due*,
*erasing* in a batch of a run (``<run_id>#<n>``), *done* (with its
certificate) or *failed*.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from lifecycle.batching import chunks
from lifecycle.clock import iso_utc
from lifecycle.state.schema import erasures

#: states of a cancellation not yet withdrawn, rejected or done
OPEN = ("pending", "due", "erasing", "purging", "failed", "held")


@dataclass(frozen=True)
class ErasureRecord:
    subject_id: str
    request_ids: tuple[str, ...]
    requested_at: str  # ISO UTC of the request that counts
    grace_end: str
    state: str
    reason: str | None
    batch: str | None
    first_seen: str
    updated_at: str
    completed_at: str | None
    certificate: str | None  # where the certificate was written


@dataclass(frozen=True)
class Intake:
    """What intake decided for one subject."""

    subject_id: str
    request_ids: tuple[str, ...]
    requested_at: str
    grace_end: str
    state: str
    reason: str | None


def _record(row) -> ErasureRecord:
    return ErasureRecord(**{**row._mapping, "request_ids": tuple(json.loads(row.request_ids))})


class Erasures:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def _select(self, where=None) -> list[ErasureRecord]:
        query = sa.select(erasures) if where is None else sa.select(erasures).where(where)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def all(self) -> list[ErasureRecord]:
        return self._select()

    def in_states(self, *states: str) -> list[ErasureRecord]:
        return self._select(erasures.c.state.in_(states))

    def erasing(self, batch: str) -> list[ErasureRecord]:
        """The subjects of ``batch`` still to be erased."""
        return self._select((erasures.c.batch == batch) & (erasures.c.state == "erasing"))

    def done_in_run(self, run_id: str) -> list[ErasureRecord]:
        """Subjects erased in a batch of ``run_id``."""
        return [r for r in self.in_states("done") if (r.batch or "").startswith(f"{run_id}#")]

    def touching(self, start: str, end: str) -> list[ErasureRecord]:
        """Cancellations a period [start, end) (ISO UTC) saw: requested before its end and not
        completed before its start."""
        completed = erasures.c.completed_at
        return self._select(
            (erasures.c.requested_at < end) & (completed.is_(None) | (completed >= start)),
        )

    def open_subjects(self) -> set[str]:
        """Subjects with a cancellation in an ``OPEN`` state."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(erasures.c.subject_id).where(erasures.c.state.in_(OPEN))).scalars())

    def counts(self) -> dict[str, int]:
        """Subjects by state."""
        with self.engine.connect() as conn:
            return dict(
                conn.execute(
                    sa.select(erasures.c.state, sa.func.count()).group_by(erasures.c.state).order_by(erasures.c.state)
                ).all()
            )

    def queue(self, *, overdue_before: str) -> tuple[str | None, int]:
        """Of the open cancellations: the oldest request's instant, and how many were
        requested before ``overdue_before`` (ISO UTC), i.e. are past their completion time."""
        open_rows = erasures.c.state.in_(OPEN)
        with self.engine.connect() as conn:
            oldest = conn.execute(sa.select(sa.func.min(erasures.c.requested_at)).where(open_rows)).scalar()
            late = conn.execute(
                sa.select(sa.func.count()).where(open_rows, erasures.c.requested_at < overdue_before)
            ).scalar()
        return oldest, int(late or 0)

    def per_day(self, *, excluding: Sequence[str] = ()) -> tuple[dict[str, int], dict[str, int]]:
        """``({day: first seen}, {day: completed})`` of the subjects not in a state of
        ``excluding``: days as ``YYYY-MM-DD``, for the queue over time."""
        out = []
        with self.engine.connect() as conn:
            for column in (erasures.c.first_seen, erasures.c.completed_at):
                day = sa.func.substr(column, 1, 10)
                where = [column.is_not(None), erasures.c.state.not_in(excluding)]
                rows = conn.execute(sa.select(day, sa.func.count()).where(*where).group_by(day)).all()
                out.append({d: int(n) for d, n in rows})
        return out[0], out[1]

    def record_intake(self, results: Sequence[Intake], *, at: str) -> None:
        """Write what intake decided, in one transaction; ``at`` (the run's time) dates the
        change and, for a subject seen for the first time, the first sighting."""
        with self.engine.begin() as conn:
            known: set[str] = set()
            for part in chunks([r.subject_id for r in results], 1000):
                known.update(
                    conn.execute(sa.select(erasures.c.subject_id).where(erasures.c.subject_id.in_(part))).scalars()
                )
            for result in results:
                values = {
                    "subject_id": result.subject_id,
                    "request_ids": json.dumps(list(result.request_ids)),
                    "requested_at": result.requested_at,
                    "grace_end": result.grace_end,
                    "state": result.state,
                    "reason": result.reason,
                    "updated_at": at,
                }
                if result.subject_id in known:
                    conn.execute(erasures.update().where(erasures.c.subject_id == result.subject_id).values(values))
                else:
                    conn.execute(erasures.insert().values({**values, "first_seen": at}))

    def batch_due(self, run_id: str, size: int) -> list[str]:
        """Put due (and failed or abandoned) subjects into batches of ``run_id`` of at most
        ``size``; the batches of the run still erasing.  A rerun finds the same ones and
        numbers new ones after them."""
        with self.engine.connect() as conn:
            ours = conn.execute(
                sa.select(erasures.c.batch, erasures.c.state).where(
                    erasures.c.batch.startswith(f"{run_id}#", autoescape=True)
                )
            ).all()
            waiting = [
                subject
                for subject, batch in conn.execute(
                    sa.select(erasures.c.subject_id, erasures.c.batch).where(
                        erasures.c.state.in_(["due", "failed", "erasing"])
                    )
                )
                if not (batch or "").startswith(f"{run_id}#")
            ]
        mine = sorted({batch for batch, state in ours if state == "erasing"})
        start = len({batch for batch, _ in ours})
        with self.engine.begin() as conn:
            for n, part in enumerate(chunks(waiting, size)):
                batch = f"{run_id}#{start + n}"
                conn.execute(
                    erasures.update().where(erasures.c.subject_id.in_(part)).values(state="erasing", batch=batch)
                )
                mine.append(batch)
        return mine

    def set_state(self, subjects: Iterable[str], state: str, reason: str | None, *, unbatch: bool = False) -> None:
        """Put ``subjects`` in ``state`` for ``reason`` (``unbatch``: out of their batch too)."""
        values = {"state": state, "reason": reason, "updated_at": iso_utc(datetime.now(UTC))}
        if unbatch:
            values["batch"] = None
        with self.engine.begin() as conn:
            conn.execute(erasures.update().where(erasures.c.subject_id.in_(list(subjects))).values(values))

    def mark_done(self, certificates: Sequence[tuple[str, str | None, str]]) -> None:
        """Each (subject, completed_at, certificate location) *done*, in one transaction."""
        if not certificates:
            return
        now = iso_utc(datetime.now(UTC))
        with self.engine.begin() as conn:
            conn.execute(
                erasures.update()
                .where(erasures.c.subject_id == sa.bindparam("_subject"))
                .values(
                    state="done",
                    completed_at=sa.bindparam("_completed"),
                    certificate=sa.bindparam("_location"),
                    updated_at=now,
                ),
                [
                    {"_subject": s, "_completed": completed, "_location": location}
                    for s, completed, location in certificates
                ],
            )
