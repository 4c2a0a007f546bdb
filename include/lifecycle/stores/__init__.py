"""Stores: the only code that talks to data systems.

``SqlStore`` (SQLAlchemy Core) and ``S3Store`` (boto3) share parameter names:
a dataset name, a ``Selection`` of what to touch, and batch boundaries.
``open_store`` picks the adapter by the system's type in the catalog.
"""

from __future__ import annotations

import threading
from typing import Callable

from lifecycle.catalog import Catalog


def open_store(catalog: Catalog, system_name: str):
    """The store for a catalog system, connected through its Airflow connection."""
    system = catalog.systems[system_name]
    if system.type == "sql":
        from lifecycle.connections import sql_engine
        from lifecycle.stores.sql import SqlStore

        return SqlStore(sql_engine(system.conn_id), catalog)
    from lifecycle.stores.s3 import S3Store

    return S3Store.from_connection(system.conn_id, system.bucket)


class Stores:
    """One store per system, opened on first use and shared (thread-safe:
    batches erased side by side share their stores and reflected tables).
    ``opener`` replaces ``open_store`` (tests hand in their own stores)."""

    def __init__(self, catalog: Catalog, opener: Callable[[str], object] | None = None):
        self._open = opener or (lambda system: open_store(catalog, system))
        self._stores: dict[str, object] = {}
        self._opening = threading.Lock()

    def __call__(self, system: str):
        with self._opening:
            if system not in self._stores:
                self._stores[system] = self._open(system)
            return self._stores[system]
