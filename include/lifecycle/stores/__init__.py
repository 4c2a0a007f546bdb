"""Stores: the only code that talks to data systems (the contract is ``stores.contract``).

``ADAPTERS`` maps a system's ``type`` in catalog.yaml to the adapter that
opens it through its Airflow connection: a new kind of store is one adapter
and one entry here.  ``Stores`` keeps one open store per system name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from lifecycle.catalog import Catalog
from lifecycle.errors import LifecycleError


def _open_sql(catalog: Catalog, name: str, system):
    from lifecycle.connections import sql_engine
    from lifecycle.stores.sql import SqlStore

    return SqlStore(sql_engine(system.conn_id), catalog, name)


def _open_s3(catalog: Catalog, name: str, system):
    from lifecycle.stores.s3 import S3Store

    store = S3Store.from_connection(system.conn_id, system.bucket, catalog, name)
    store.list_concurrency = system.list_concurrency
    return store


def _open_iceberg(catalog: Catalog, name: str, system):
    from lifecycle.stores.lake.iceberg import IcebergStore

    return IcebergStore(catalog, name, system, open_store=lambda other: open_store(catalog, other))


def _open_delta(catalog: Catalog, name: str, system):
    from lifecycle.stores.lake.delta import DeltaStore

    return DeltaStore(catalog, name, system, open_store=lambda other: open_store(catalog, other))


ADAPTERS: dict[str, Callable] = {"sql": _open_sql, "s3": _open_s3, "iceberg": _open_iceberg, "delta": _open_delta}


def open_store(catalog: Catalog, system_name: str):
    """The store of a catalog system, connected through its Airflow connection."""
    system = catalog.systems.get(system_name)
    if system is None:
        raise LifecycleError(
            f"no system {system_name!r} in catalog.yaml (systems: {', '.join(sorted(catalog.systems))})"
        )
    return ADAPTERS[system.type](catalog, system_name, system)


class Stores:
    """One store per system, opened on first use and shared (thread-safe:
    batches erased side by side share their stores and reflected tables).
    ``opener`` replaces ``open_store`` in unit tests of logic; every path a
    task takes is also tested through connections."""

    def __init__(self, catalog: Catalog, opener: Callable[[str], object] | None = None):
        self.catalog = catalog
        self._open = opener or (lambda system: open_store(catalog, system))
        self._stores: dict[str, object] = {}
        self._opening = threading.Lock()

    def __call__(self, system: str):
        with self._opening:
            if system not in self._stores:
                self._stores[system] = self._open(system)
            return self._stores[system]

    def of(self, dataset: str):
        """The store holding ``dataset``."""
        return self(self.catalog.dataset(dataset).system)
