"""Cancellation requests as the app records them, and who has one open.

One rule, used by the erasure intake and by the sharing exclusion (so it sits
below both ``erasure`` and ``sharing``): a request
counts from the moment it is made until it is withdrawn within the grace
period; a withdrawal after the grace ended does not stop the erasure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lifecycle.clock import aware_utc
from lifecycle.config import Config


@dataclass(frozen=True)
class Request:
    request_id: str
    requested_at: datetime  # aware UTC, whatever the column's type (the store reads it so)
    withdrawn_at: datetime | None

    def withdrawn_in_grace(self, as_of: datetime, grace_end: datetime) -> bool:
        """Withdrawn by ``as_of`` (aware UTC) and before the grace period ended."""
        return self.withdrawn_at is not None and self.withdrawn_at < grace_end and self.withdrawn_at <= as_of


class CancellationRequests:
    """The app's requests dataset (``cancellation.yaml: requests``), read through its store,
    and the erasure states in the state store."""

    def __init__(self, config: Config, state, stores):
        self.config, self.state, self.stores = config, state, stores

    def by_subject(self) -> dict[str, list[Request]]:
        """Every subject's requests, oldest first (rows without a subject or a date are ignored)."""
        req = self.config.cancellation.requests
        key = self.config.catalog.dataset(req.dataset).primary_key
        columns = [key, req.subject, req.requested_at] + ([req.withdrawn_at] if req.withdrawn_at else [])
        times = (req.requested_at, req.withdrawn_at) if req.withdrawn_at else (req.requested_at,)
        read = self.stores.of(req.dataset).read(req.dataset, columns, instants=times)
        rows = [(*row, None)[:4] for row in read]
        rows.sort(key=lambda row: (row[2] is None, row[2] or datetime.min.replace(tzinfo=UTC)))
        found: dict[str, list[Request]] = {}
        for request_id, subject, requested_at, withdrawn_at in rows:
            if subject is not None and requested_at is not None:
                found.setdefault(str(subject), []).append(Request(str(request_id), requested_at, withdrawn_at))
        return found

    def open_subjects(self, as_of: datetime) -> set[str]:
        """Subjects with a cancellation open at ``as_of``: pending, due, erasing, held or failed in
        the state store, or made by then in the app and not withdrawn within the grace period
        (intake may not have seen it yet)."""
        found = self.state.erasures.open_subjects()
        cancellation = self.config.cancellation
        if cancellation is None:
            return found
        when = aware_utc(as_of)
        for subject, requests in self.by_subject().items():
            if any(
                r.requested_at <= when
                and not r.withdrawn_in_grace(when, cancellation.grace_period.after(r.requested_at))
                for r in requests
            ):
                found.add(subject)
        return found
