"""The SQL adapter of the store contract (SQLAlchemy Core): SQLite, PostgreSQL, MariaDB.

Tables are reflected, identifiers are quoted by SQLAlchemy (never spliced).
A dataset's rows reach their person through the catalog's join path,
compiled to nested ``IN (SELECT …)`` predicates, so selecting by subject
needs no join of the subject table.  Batches are ranges of the primary key,
whatever its type (integer, numeric, text, uuid, timestamp): boundaries come
from one ordered pass, never from ``min``/``max`` over the key.  Every
statement runs inside ``_failures``, which turns a driver's exception into a
``TransientStoreError`` (connection lost, timeout, deadlock, serialization
failure, lock wait) or a ``TerminalStoreError`` naming the system, the
dataset and the statement's purpose.

``SqlStore`` is composed of one part per responsibility, each in its own
module: ``tables`` (connections, reflection), ``selection`` (a ``Selection``
as SQL), ``references`` (foreign keys and subject links), ``counts``
(counting, key ranges, verification), ``writes`` (delete, anonymize),
``times`` (time columns: values read
as aware UTC, instants bound as each column holds them), ``rows``, ``consents``, ``people``,
``partitions`` and ``sampling`` (the ``Rows``, ``Consents``, ``SubjectDirectory``, ``Partitions``
and ``Sampling`` abilities).
The parts reach each other through ``self``; state lives in ``Tables``
(engine, reflected tables) and in ``ForeignKeys`` (the keys, read once).
"""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle.stores.sql.consents import ConsentRecords
from lifecycle.stores.sql.counts import Counting
from lifecycle.stores.sql.failures import failure_text, transient
from lifecycle.stores.sql.partitions import PartitionDrops
from lifecycle.stores.sql.people import Directory
from lifecycle.stores.sql.references import ForeignKeys
from lifecycle.stores.sql.rows import RowReading
from lifecycle.stores.sql.sampling import TableSampling
from lifecycle.stores.sql.selection import Predicates
from lifecycle.stores.sql.strategies import already_applied, fits
from lifecycle.stores.sql.tables import Tables
from lifecycle.stores.sql.times import Instants
from lifecycle.stores.sql.writes import Writes

__all__ = [
    "SqlStore",
    "already_applied",
    "failure_text",
    "fits",
    "sa",
    "transient",
]  # sa: lifecycle.failures matches SQLAlchemy's errors through it


class SqlStore(
    Writes,
    PartitionDrops,
    Counting,
    RowReading,
    TableSampling,
    ConsentRecords,
    Directory,
    ForeignKeys,
    Predicates,
    Instants,
    Tables,
):
    """Datasets of one SQL system: the store contract, and the ``References``, ``Rows``,
    ``Consents``, ``SubjectDirectory``, ``Partitions`` and ``Sampling`` abilities (see the module docstring)."""
