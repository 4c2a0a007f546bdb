"""The lifecycle's own state: ledger, legal holds, erasure states and notices, the
incident, sharing and requests registers, deletion requests to recipients, send rates.  Only the repositories here touch its tables."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import sqlalchemy as sa

from lifecycle.state.deletions import RecipientDeletions
from lifecycle.state.erasures import Erasures
from lifecycle.state.holds import Hold, Holds
from lifecycle.state.incidents import Incidents
from lifecycle.state.ledger import Entry, Ledger, Verification
from lifecycle.state.migrations import migrate
from lifecycle.state.notices import Notices
from lifecycle.state.rates import SendRates
from lifecycle.state.requests import SubjectRequests
from lifecycle.state.sharing import SharingEntries

__all__ = ["Entry", "Hold", "StateStore", "Verification"]


class StateStore:
    """The state's repositories over one engine; the schema is migrated on first use."""

    def __init__(self, engine: sa.Engine, *, dataset_names: set[str] | None = None):
        self.engine = engine
        _migrated(engine)
        self.ledger = Ledger(engine)
        self.holds = Holds(engine, self.ledger, dataset_names)
        self.erasures = Erasures(engine)
        self.notices = Notices(engine)
        self.incidents = Incidents(engine)
        self.sharing = SharingEntries(engine)
        self.requests = SubjectRequests(engine)
        self.deletions = RecipientDeletions(engine)
        self.send_rates = SendRates(engine)

    @classmethod
    def for_catalog(cls, catalog) -> StateStore:
        from lifecycle.connections import sql_engine

        conn_id = catalog.systems[catalog.model.state].conn_id
        return cls(sql_engine(conn_id), dataset_names=set(catalog.datasets))


@functools.cache
def _migrated(engine: sa.Engine) -> None:
    migrate(engine, now=datetime.now(UTC).isoformat(timespec="seconds"))
