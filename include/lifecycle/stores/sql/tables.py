"""The base of ``SqlStore``: connections whose failures become store errors, and tables
reflected once per store."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import sqlalchemy as sa

from lifecycle.catalog import Catalog
from lifecycle.errors import TerminalStoreError, store_failures
from lifecycle.stores.sql.failures import failure_text, transient


class Tables:
    """One SQL system's engine and its reflected tables; every other part of the store builds on these."""

    def __init__(self, engine: sa.Engine, catalog: Catalog, system: str | None = None):
        self.engine = engine
        self.catalog = catalog
        self.system = system or _system_of(catalog, engine)
        self._tables: dict[str, sa.Table] = {}
        self._schemas: dict[str, sa.MetaData] = {}  # schema ('' the default) -> its reflected tables
        self._reflecting = threading.Lock()
        self._snapshots = threading.local()  # inside snapshot(): this thread's shared read connection

    def _failures(self, dataset: str | None, purpose: str):
        return store_failures(
            self.system,
            dataset,
            purpose,
            catching=(sa.exc.SQLAlchemyError, OSError),
            transient=transient,
            describe=failure_text,
        )

    @contextlib.contextmanager
    def _connect(self, dataset: str | None, purpose: str, *, begin: bool = False) -> Iterator[sa.Connection]:
        """A connection (``begin``: a transaction) whose failures, on opening and inside, become store errors."""
        with self._failures(dataset, purpose), self.engine.begin() if begin else self.engine.connect() as conn:
            yield conn

    def _begin(self, dataset: str | None, purpose: str):
        return self._connect(dataset, purpose, begin=True)

    @contextlib.contextmanager
    def snapshot(self):
        """Counts inside share one connection of this thread (one transaction, not one per count:
        under repeatable read, one state of the store; under read committed each statement reads
        its own).  Writes, streams and DDL open their own connections."""
        if getattr(self._snapshots, "held", None) is not None:
            yield
            return
        self._snapshots.held = held = []
        try:
            yield
        finally:
            self._snapshots.held = None
            for conn in held:
                conn.close()

    @contextlib.contextmanager
    def _read(self, dataset: str | None, purpose: str) -> Iterator[sa.Connection]:
        """A connection for one counting read: inside ``snapshot()`` the shared one (closed after
        a failure, so a later read starts afresh), else one of its own."""
        held = getattr(self._snapshots, "held", None)
        if held is None:
            with self._connect(dataset, purpose) as conn:
                yield conn
            return
        with self._failures(dataset, purpose):
            if not held:
                held.append(self.engine.connect())
            try:
                yield held[0]
            except BaseException:
                held.pop().close()
                raise

    def table(self, dataset: str) -> sa.Table:
        """The reflected table of a dataset (``schema.table`` allowed), reflected once per store.

        The first miss in a schema reflects every catalog table found there in
        one pass.  Threads sharing a store must get the same ``Table`` object:
        a statement built on one and filtered by another's columns would name
        the table twice (``DELETE FROM t USING t``), so reflection is serialized.
        """
        found = self._tables.get(dataset)
        if found is not None:
            return found
        with self._reflecting, self._failures(dataset, "reflect the table"):
            if dataset not in self._tables:
                self._tables[dataset] = self._reflect(dataset)
            return self._tables[dataset]

    def _reflect(self, dataset: str) -> sa.Table:
        name = self.catalog.dataset(dataset).table
        schema, _, table = name.rpartition(".")
        meta = self._schemas.get(schema)
        if meta is None:
            meta = self._schemas[schema] = sa.MetaData(schema=schema or None)
            wanted = {
                d.table.rpartition(".")[2]
                for d in self.catalog.datasets.values()
                if d.is_table and d.table.rpartition(".")[0] == schema
            }
            meta.reflect(self.engine, only=lambda table_name, _meta: table_name in wanted)
        try:
            reflected = meta.tables.get(name if schema else table)
            return reflected if reflected is not None else sa.Table(table, meta, autoload_with=self.engine)
        except sa.exc.NoSuchTableError:
            raise TerminalStoreError(
                self.system, dataset, "reflect the table", f"table {name!r} does not exist"
            ) from None

    def column(self, dataset: str, name: str) -> sa.Column:
        return self._col(self.table(dataset), dataset, name)

    def _col(self, source, dataset: str, name: str):
        if name not in source.c:
            raise TerminalStoreError(
                self.system,
                dataset,
                "find a column",
                f"column {name!r} does not exist in table {self.catalog.dataset(dataset).table!r}",
            )
        return source.c[name]

    def _pk(self, dataset: str, source=None) -> sa.Column:
        return self._col(
            source if source is not None else self.table(dataset), dataset, self.catalog.dataset(dataset).primary_key
        )


def _system_of(catalog: Catalog, engine: sa.Engine) -> str:
    """A name for messages when the caller gave none: the catalog's only SQL system, else the database."""
    sql = [name for name, s in catalog.systems.items() if s.type == "sql" and name != catalog.model.state]
    return sql[0] if len(sql) == 1 else (engine.url.database or engine.url.get_backend_name())
