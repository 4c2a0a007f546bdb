"""The lifecycle's own state: ledger, legal holds (and, later, registers)."""

from __future__ import annotations

import functools
from datetime import datetime, timezone

import sqlalchemy as sa

from lifecycle.state.holds import Hold, Holds
from lifecycle.state.ledger import Entry, Ledger, Verification
from lifecycle.state.schema import migrate

__all__ = ["StateStore", "Entry", "Hold", "Verification"]


class StateStore:
    """Ledger and holds over one engine; the schema is migrated on first use."""

    def __init__(self, engine: sa.Engine, *, dataset_names: set[str] | None = None):
        self.engine = engine
        _migrated(engine)
        self.ledger = Ledger(engine)
        self.holds = Holds(engine, self.ledger, dataset_names)

    @classmethod
    def for_catalog(cls, catalog) -> "StateStore":
        from lifecycle.connections import sql_engine

        conn_id = catalog.systems[catalog.model.state].conn_id
        return cls(sql_engine(conn_id), dataset_names=set(catalog.datasets))


@functools.cache
def _migrated(engine: sa.Engine) -> None:
    migrate(engine, now=datetime.now(timezone.utc).isoformat(timespec="seconds"))
