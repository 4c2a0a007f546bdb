"""Range partitions of a dataset's table on its ``created`` column (the ``Partitions`` ability):
found in the live schema, probed for rows that must stay, counted, and dropped.

PostgreSQL: partitions from ``pg_inherits`` with their bounds from
``pg_get_expr(relpartbound)``; a drop is ``DETACH PARTITION … CONCURRENTLY`` (plain
``DETACH`` where the table has a default partition, which forbids the concurrent form),
``DETACH PARTITION … FINALIZE`` for a detach left pending, then ``DROP TABLE``.  MariaDB:
``information_schema.PARTITIONS`` (``RANGE COLUMNS(created)`` or ``RANGE(TO_DAYS(created))``)
and ``ALTER TABLE … DROP PARTITION``, which never leaves a table behind.  Every statement
runs alone under a ``lock_timeout`` and is retried a few times when it times out.
Identifiers are quoted by the server (``format('%I')``) or SQLAlchemy, never spliced.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import UTC, date, datetime

import sqlalchemy as sa

from lifecycle.errors import StoreError, TerminalStoreError, TransientStoreError
from lifecycle.stores.contract import Selection, TablePartition
from lifecycle.stores.sql.times import EPOCHS

log = logging.getLogger(__name__)

_PG_BOUND = re.compile(r"^FOR VALUES FROM \((.*)\) TO \((.*)\)$")
_MY_EXPRESSION = re.compile(r"^(?:(to_days)\()?`?([^`()]+)`?\)?$", re.IGNORECASE)

# the catalog reads that find a table's partitions: PostgreSQL's key and children, MariaDB's list
_PG_PARTITION_KEY = sa.text(
    "SELECT pt.partstrat, a.attname FROM pg_partitioned_table pt JOIN pg_attribute a "
    "ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0] "
    "WHERE pt.partrelid = to_regclass(:parent) AND pt.partnatts = 1"
)
_PG_PARTITIONS = sa.text(
    "SELECT format('%I.%I', n.nspname, c.relname), c.relkind, pg_get_expr(c.relpartbound, c.oid), "
    "i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = to_regclass(:parent)"
)
_MY_PARTITIONS = sa.text(
    "SELECT PARTITION_NAME, SUBPARTITION_NAME, PARTITION_METHOD, PARTITION_EXPRESSION, "
    "PARTITION_DESCRIPTION FROM information_schema.PARTITIONS "
    "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table "
    "AND PARTITION_NAME IS NOT NULL ORDER BY PARTITION_ORDINAL_POSITION"
)
# a partition's live rows as PostgreSQL's statistics hold them, when nothing was written to it
# since it was last analyzed (its counters are then the analyze's, or a later vacuum's)
_PG_ANALYZED_ROWS = sa.text(
    "SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = to_regclass(:name) "
    "AND n_mod_since_analyze = 0 AND coalesce(last_analyze, last_autoanalyze) IS NOT NULL"
)


class PartitionDrops:
    """The ``Partitions`` ability of ``SqlStore`` (PostgreSQL and MariaDB; SQLite has none)."""

    partition_lock_timeout = 2.0  # seconds a drop's statement waits for its lock
    partition_attempts = 5  # tries of one statement that timed out

    # ------------------------------------------------------------------ finding

    def partitions(self, dataset: str) -> list[TablePartition]:
        """The table's range partitions on its ``created`` column, in order; [] when it has none
        (or ``created`` holds epoch numbers: such a table goes the row path)."""
        dialect, created = self.engine.dialect.name, self.catalog.dataset(dataset).created
        if dialect not in ("postgresql", "mysql", "mariadb") or not created:
            return []
        if self.time_column(dataset, created).kind in EPOCHS:
            return []
        with self._connect(dataset, "read the table's partitions") as conn:
            if dialect == "postgresql":
                return self._pg_partitions(conn, dataset)
            return self._my_partitions(conn, dataset)

    def _pg_partitions(self, conn: sa.Connection, dataset: str) -> list[TablePartition]:
        parent = self._qualified(dataset)
        key = conn.execute(_PG_PARTITION_KEY, {"parent": parent}).first()
        if key is None or key[0] != "r" or key[1] != self.catalog.dataset(dataset).created:
            return []
        rows = conn.execute(_PG_PARTITIONS, {"parent": parent}).all()
        found = []
        for name, kind, bound, pending in rows:
            match = _PG_BOUND.match(bound or "")
            if kind != "r" or match is None:  # DEFAULT, or partitioned again: rows go the row path
                continue
            found.append(
                TablePartition(name, _pg_value(match[1]), _pg_value(match[2]), "detaching" if pending else "attached")
            )
        return sorted(found, key=lambda p: (p.low is not None, p.low or datetime.min))

    def _my_partitions(self, conn: sa.Connection, dataset: str) -> list[TablePartition]:
        table = self.table(dataset)
        rows = conn.execute(_MY_PARTITIONS, {"schema": table.schema, "table": table.name}).all()
        created = self.catalog.dataset(dataset).created
        found, low = [], None
        for name, sub, method, expression, description in rows:
            match = _MY_EXPRESSION.match((expression or "").strip())
            if sub is not None or match is None or match[2] != created:
                return []
            days = bool(match[1])
            if (method, days) not in (("RANGE COLUMNS", False), ("RANGE", True)):
                return []
            high = _my_value(description, days)
            found.append(TablePartition(name, low, high))
            low = high
        return found

    def partition_state(self, dataset: str, name: str) -> str:
        with self._connect(dataset, f"read the state of partition {name}") as conn:
            if self.engine.dialect.name == "postgresql":
                return self._pg_state(conn, dataset, name)[0]
            return "attached" if self._my_partition(conn, dataset, name) else "gone"

    def _pg_state(self, conn: sa.Connection, dataset: str, name: str) -> tuple[str, str | None]:
        row = conn.execute(
            sa.text(
                "SELECT format('%I.%I', n.nspname, c.relname), i.inhdetachpending, "
                "i.inhparent = to_regclass(:parent) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_inherits i ON i.inhrelid = c.oid "
                "WHERE c.oid = to_regclass(:name) AND c.relkind = 'r'"
            ),
            {"parent": self._qualified(dataset), "name": name},
        ).first()
        if row is None:
            return "gone", None
        quoted, pending, ours = row
        if pending is None:
            return "detached", quoted
        if not ours:
            raise TerminalStoreError(
                self.system, dataset, f"drop partition {name}", f"{name} is a partition of another table"
            )
        return ("detaching" if pending else "attached"), quoted

    def _my_partition(self, conn: sa.Connection, dataset: str, name: str) -> str | None:
        table = self.table(dataset)
        return conn.execute(
            sa.text(
                "SELECT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = "
                "COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table AND PARTITION_NAME = :name"
            ),
            {"schema": table.schema, "table": table.name, "name": name},
        ).scalar()

    # ------------------------------------------------------------------ probing

    def _inside(self, dataset: str, partition: TablePartition, source) -> sa.ColumnElement:
        time = self.time_column(dataset, self.catalog.dataset(dataset).created, source)
        clauses = [time.expression < time.value(partition.high)] if partition.high else []
        if partition.low is not None:
            clauses.append(time.expression >= time.value(partition.low))
        return sa.and_(sa.true(), *clauses)

    def partition_rows(self, dataset: str, partition: TablePartition) -> int:
        """The partition's rows, counted through the parent (the bounds prune to the one partition)."""
        table = self.table(dataset)
        query = sa.select(sa.func.count()).select_from(table).where(self._inside(dataset, partition, table))
        with self._connect(dataset, f"count the rows of partition {partition.name}") as conn:
            return conn.execute(query).scalar_one()

    def partition_rows_estimate(self, dataset: str, partition: TablePartition) -> int | None:
        """The partition's rows from PostgreSQL's statistics where they are current for it (analyzed,
        nothing inserted, updated or deleted since): no scan.  None elsewhere (then count)."""
        if self.engine.dialect.name != "postgresql":
            return None
        with self._connect(dataset, f"read the statistics of partition {partition.name}") as conn:
            return conn.execute(_PG_ANALYZED_ROWS, {"name": partition.name}).scalar()

    def partition_keeps(self, dataset: str, partition: TablePartition, selection: Selection) -> str | None:
        """The first reason a row of the partition stays, each asked by an ``EXISTS`` that stops
        at its first row and reaches rows through indexes where the schema has them: a held
        subject's row, a row that rows staying behind point at, a row without a created date
        (MariaDB keeps those in the lowest partition).  ``selection``: the delete's (holds,
        ``held`` pairs, ``going_with``)."""
        table = self.table(dataset)
        inside = self._inside(dataset, partition, table)
        probes = []
        if partition.low is None and self.engine.dialect.name != "postgresql":
            created = self.column(dataset, self.catalog.dataset(dataset).created)
            probes.append(("rows without a created date", sa.select(sa.literal(1)).where(created.is_(None))))
        if selection.exclude_subjects:
            owned = self._owned(dataset, selection.exclude_subjects, self._link_of(dataset, table))
            probes.append(("rows of held subjects", sa.select(sa.literal(1)).where(inside, owned)))
        held = dict(selection.held)
        for reference in self.references(dataset):
            if reference.protects or held.get(reference.dataset):
                child = self.table(reference.dataset).alias()
                staying = sa.exists(
                    sa.select(sa.literal(1)).select_from(child).where(self._staying(reference, table, child, selection))
                )
                probes.append(
                    (
                        f"rows referenced by rows of {reference.dataset} that stay",
                        sa.select(sa.literal(1)).where(inside, staying),
                    )
                )
        with self._connect(dataset, f"look for rows that keep partition {partition.name}") as conn:
            for reason, probe in probes:
                if conn.execute(sa.select(sa.exists(probe.select_from(table).limit(1)))).scalar():
                    return reason
        return None

    # ------------------------------------------------------------------ dropping

    def drop_partition(self, dataset: str, name: str) -> None:
        """Detach and drop ``name`` (MariaDB: drop it), finishing whatever an earlier call left:
        a detach left pending is finalized, a detached table dropped; gone is done."""
        if self.engine.dialect.name != "postgresql":
            with self._connect(dataset, f"find partition {name}") as conn:
                found = self._my_partition(conn, dataset, name)
            if found:
                quote = self.engine.dialect.identifier_preparer.quote
                self._ddl(
                    dataset,
                    f"drop partition {name}",
                    f"ALTER TABLE {self._qualified(dataset)} DROP PARTITION {quote(found)}",
                )
            return
        with self._detaching:  # a table has one detach pending at most: threads take turns, their DROPs overlap
            quoted = self._pg_detach(dataset, name)
        if quoted is not None:
            self._ddl(dataset, f"drop detached partition {name}", f"DROP TABLE IF EXISTS {quoted}")

    @property
    def _detaching(self) -> threading.Lock:
        return self.__dict__.setdefault("_detach_lock", threading.Lock())

    def _pg_detach(self, dataset: str, name: str) -> str | None:
        """Detach ``name`` if it is still attached or pending; its quoted name, None when gone."""
        parent = self._qualified(dataset)
        with self._connect(dataset, f"read the state of partition {name}") as conn:
            state, quoted = self._pg_state(conn, dataset, name)
        if state == "gone":
            return None
        if state == "attached":
            how = "" if self._pg_has_default(dataset) else " CONCURRENTLY"
            try:
                self._ddl(dataset, f"detach partition {name}", f"ALTER TABLE {parent} DETACH PARTITION {quoted}{how}")
            except StoreError:
                with self._connect(dataset, f"read the state of partition {name}") as conn:
                    state = self._pg_state(conn, dataset, name)[0]
                if state != "detaching":  # the concurrent detach failed in its second step: finish it
                    raise
        if state == "detaching":
            self._ddl(dataset, f"finish detaching {name}", f"ALTER TABLE {parent} DETACH PARTITION {quoted} FINALIZE")
        return quoted

    def _pg_has_default(self, dataset: str) -> bool:
        """Whether the table has a default partition (read once per store and dataset)."""
        known = self.__dict__.setdefault("_defaults", {})
        if dataset in known:
            return known[dataset]
        with self._connect(dataset, "look for a default partition") as conn:
            known[dataset] = bool(
                conn.execute(
                    sa.text("SELECT partdefid <> 0 FROM pg_partitioned_table WHERE partrelid = to_regclass(:parent)"),
                    {"parent": self._qualified(dataset)},
                ).scalar()
            )
        return known[dataset]

    def _ddl(self, dataset: str, purpose: str, statement: str) -> None:
        """One statement alone (autocommit: ``DETACH … CONCURRENTLY`` may not run in a transaction),
        waiting at most ``partition_lock_timeout`` for its lock; a timeout is retried with backoff."""
        timeout, reset = _lock_wait(self.engine.dialect.name == "postgresql", self.partition_lock_timeout)
        for attempt in range(1, self.partition_attempts + 1):
            try:
                with self._connect(dataset, purpose) as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                    conn.execute(sa.text(timeout))
                    try:
                        conn.execute(sa.text(statement))
                    finally:
                        conn.execute(sa.text(reset))
                return
            except TransientStoreError as exc:
                if attempt == self.partition_attempts:
                    raise
                log.warning("%s: %s: attempt %d failed (%s); trying again", dataset, purpose, attempt, exc)
                time.sleep(min(5.0, 0.25 * 2**attempt))

    def _qualified(self, dataset: str) -> str:
        """The dataset's table as the dialect quotes it, schema included."""
        return self.engine.dialect.identifier_preparer.format_table(self.table(dataset))


def _lock_wait(postgres: bool, seconds: float) -> tuple[str, str]:
    """The statements that bound a session's wait for a lock to ``seconds``, and that restore it."""
    if postgres:
        return f"SET lock_timeout = '{int(seconds * 1000)}ms'", "RESET lock_timeout"
    return f"SET SESSION lock_wait_timeout = {max(1, int(seconds))}", "SET SESSION lock_wait_timeout = DEFAULT"


def _pg_value(text: str) -> datetime | None:
    text = text.strip()
    if text in ("MINVALUE", "MAXVALUE"):
        return None
    return _naive(datetime.fromisoformat(text.strip("'")))


def _my_value(description: str, days: bool) -> datetime | None:
    text = (description or "").strip()
    if text.upper() == "MAXVALUE":
        return None
    if days:  # TO_DAYS counts from year 0; Python's ordinal from 0001-01-01 = 1
        day = date.fromordinal(int(text) - 365)
        return datetime(day.year, day.month, day.day)
    return _naive(datetime.fromisoformat(text.strip("'")))


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
