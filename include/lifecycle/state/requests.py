"""The requests register (``lifecycle_subject_requests``): one row per request a person made
about their own information, with its due date and state.

A request is *received*, *planned* (a dry run counted what it would do),
*purging* (an erase waits for a lake table's purge before its certificate), *done*, *rejected* (no such person, nothing to do it with) or *failed* (the
reason names the dataset and system).  Receiving is idempotent: a request id
seen before keeps its first row, so its due date never moves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from lifecycle.clock import iso_utc
from lifecycle.state.schema import subject_requests

#: states a request can still move out of; the deadline counts for these
OPEN = ("received", "planned", "purging", "failed")
KINDS = ("access", "erase", "withdraw_consent")


@dataclass(frozen=True)
class SubjectRequest:
    request_id: str
    kind: str
    subject_id: str | None
    source: str  # form | table
    categories: tuple[str, ...]
    purpose: str | None
    state: str
    reason: str | None
    received_at: str
    due_at: str
    run_id: str | None
    updated_at: str
    # what a request gets on its way: none when it is received
    plan: dict | None = None
    result: dict | None = None
    completed_at: str | None = None

    @property
    def open(self) -> bool:
        return self.state in OPEN


def _request(row) -> SubjectRequest:
    values = dict(row._mapping)
    values["categories"] = tuple(json.loads(values["categories"] or "[]"))
    for key in ("plan", "result"):
        values[key] = json.loads(values[key]) if values[key] else None
    return SubjectRequest(**values)


class SubjectRequests:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def receive(self, request: SubjectRequest) -> tuple[SubjectRequest, bool]:
        """Record ``request`` unless its id is known; return the row as stored and whether it is new."""
        row = {
            **request.__dict__,
            "categories": json.dumps(list(request.categories)),
            "plan": None,
            "result": None,
        }
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(subject_requests.insert().values(row))
                created = True
            except sa.exc.IntegrityError:
                created = False
        return self.get(request.request_id), created

    def get(self, request_id: str) -> SubjectRequest | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subject_requests).where(subject_requests.c.request_id == request_id)).first()
        return _request(row) if row else None

    def known(self, request_ids: list[str]) -> set[str]:
        if not request_ids:
            return set()
        with self.engine.connect() as conn:
            query = sa.select(subject_requests.c.request_id).where(subject_requests.c.request_id.in_(request_ids))
            return set(conn.execute(query).scalars())

    def update(
        self,
        request_id: str,
        state: str,
        *,
        at: datetime,
        run_id: str | None = None,
        reason: str | None = None,
        plan: dict | None = None,
        result: dict | None = None,
    ) -> SubjectRequest:
        """Move a request to ``state``; ``plan`` and ``result`` replace what was stored when given."""
        values: dict = {"state": state, "reason": reason, "updated_at": iso_utc(at)}
        if run_id is not None:
            values["run_id"] = run_id
        if plan is not None:
            values["plan"] = json.dumps(plan, sort_keys=True)
        if result is not None:
            values["result"] = json.dumps(result, sort_keys=True)
        if state == "done":
            values["completed_at"] = iso_utc(at)
        with self.engine.begin() as conn:
            conn.execute(subject_requests.update().where(subject_requests.c.request_id == request_id).values(values))
        return self.get(request_id)

    def in_states(self, *states: str) -> list[SubjectRequest]:
        query = sa.select(subject_requests).where(subject_requests.c.state.in_(states))
        with self.engine.connect() as conn:
            return [_request(row) for row in conn.execute(query.order_by(subject_requests.c.due_at))]

    def received_between(self, start: str, end: str) -> list[SubjectRequest]:
        """Requests received in [start, end) (ISO UTC), in the order received."""
        received = subject_requests.c.received_at
        query = sa.select(subject_requests).where(received >= start, received < end)
        with self.engine.connect() as conn:
            return [_request(row) for row in conn.execute(query.order_by(received, subject_requests.c.request_id))]

    def open_requests(self) -> list[SubjectRequest]:
        """Requests not yet done or rejected, soonest due first."""
        return self.in_states(*OPEN)

    def counts(self) -> dict[str, int]:
        """Requests by state."""
        column = subject_requests.c.state
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(column, sa.func.count()).group_by(column).order_by(column)).all())
