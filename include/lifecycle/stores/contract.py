"""The store contract: what the lifecycle asks of any data system, by dataset name.

Every store answers the same few verbs for the datasets that live in it —
``count`` and ``count_by_subject``, ``units`` (how to cut the work into
batches), ``delete`` and ``remaining`` (verification) — for a
``Selection`` of rows or objects: by age, by subjects, by key range.  A change
reports what it did and, item by item, what it had to leave (``Change``):
rows still referenced by rows that stay, object versions under Object Lock.

Abilities only some stores have are small separate protocols: ``Anonymizing``
(rewriting rows' personal fields in place: tables, not objects), ``Rows``
(reading and streaming columns: sharing, cancellation requests, access
packages), ``Consents`` (a person's consent periods for a purpose, and
withdrawing them), ``ObjectReading`` (current object versions, streamed
bodies, expiring links: access packages), ``Partitions`` (range partitions
of a table on its ``created`` column, dropped whole by retention),
``SubjectDirectory`` (contacts and reach of people), ``References`` (foreign
keys between datasets), ``Documents`` (whole files: reports, manifests,
announcements), ``Sampling`` (a bounded sample of any live table: discovery).  Domain modules speak only this contract; the adapters in
``stores/sql/`` and ``stores/s3/`` are the only code that knows SQLAlchemy
or boto3, and they turn their drivers' failures into ``TerminalStoreError`` or
``TransientStoreError`` (``lifecycle.errors``).

Key values cross task boundaries as JSON (plans in the ledger, units in XCom):
a key is an int, or text (uuid, decimal, timestamp in ISO form); each adapter
turns it back into its column's type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from lifecycle.errors import TerminalStoreError

# (rows or versions per subject, primary keys of rows rewritten) -> None; raising undoes the change
BeforeCommit = Callable[[dict, list], None]


@dataclass(frozen=True)
class KeyRange:
    """Inclusive bounds of one batch (JSON-safe key values; None: open on that side) and the
    items it held when planned (about as many, where the plan sampled its boundaries)."""

    low: Any
    high: Any
    rows: int

    def as_list(self) -> list:
        return [self.low, self.high, self.rows]


@dataclass(frozen=True)
class Selection:
    """Which rows (or objects) of a dataset.

    ``older_than``: created strictly before (retention).  ``created_within``:
    created in [start, end] (incident scope).  ``subjects``: only these
    people's; ``exclude_subjects``: never these (legal holds; rows that reach
    nobody stay selectable).  ``within``: one batch's key range.  ``keys``:
    these primary keys.  ``pending_anonymization``: only rows where one of
    these fields does not yet have its strategy's output.  ``created_not_in``:
    leave out rows created in these [from, until) spans (partitions dropped
    whole; None: unbounded on that side).
    ``kept_if_referenced``: leave out rows that rows staying behind still
    point at through a foreign key (a cascade would delete them, a plain key
    would refuse); ``going_with`` names the other datasets' selections that
    go in the same run, whose rows do not count as staying; ``held`` names
    the subjects under legal hold per dataset, whose rows keep what they
    point at even through ``ON DELETE SET NULL`` (it would rewrite a held row).
    """

    older_than: datetime | None = None
    created_within: tuple[datetime, datetime] | None = None
    subjects: tuple[str, ...] | None = None
    exclude_subjects: tuple[str, ...] = ()
    within: KeyRange | None = None
    keys: tuple | None = None
    pending_anonymization: tuple[str, ...] = ()
    created_not_in: tuple[tuple[datetime | None, datetime | None], ...] = ()
    kept_if_referenced: bool = False
    going_with: tuple[tuple[str, Selection], ...] = ()
    held: tuple[tuple[str, tuple[str, ...]], ...] = ()


ALL = Selection()


@dataclass(frozen=True)
class Kept:
    """One item a change had to leave, and why (``locked``: S3 Object Lock)."""

    reason: str
    subject: str | None
    detail: dict = field(default_factory=dict)


@dataclass
class Change:
    """What one ``delete`` or ``anonymize`` did."""

    rows: int = 0  # rows deleted or rewritten; object versions and markers deleted
    objects: int = 0  # object keys left with nothing
    kept: list[Kept] = field(default_factory=list)
    requests: int = 0  # requests made to the store (objects)


@dataclass
class Remaining:
    """Verification: what still matches a selection after the work."""

    items: int  # rows, or object keys with a version that could have gone
    by_subject: dict[str, int] = field(default_factory=dict)  # rows or versions per subject (with ``subjects``)
    kept: dict[str, int] = field(default_factory=dict)  # left for the store's own reasons: {"locked": n}


@runtime_checkable
class DatasetStore(Protocol):
    """The verbs every store answers for the datasets it holds."""

    system: str

    def snapshot(self) -> AbstractContextManager: ...

    def count(self, dataset: str, selection: Selection = ALL) -> int: ...

    def count_by_subject(self, dataset: str, selection: Selection = ALL) -> dict[str, int]: ...

    def tally(self, dataset: str, selection: Selection, within: Selection = ALL) -> tuple[int, int]: ...

    def units(
        self, dataset: str, selection: Selection, size: int, *, expected: int | None = None
    ) -> list[KeyRange]: ...

    def delete(self, dataset: str, selection: Selection, *, before_commit: BeforeCommit | None = None) -> Change: ...

    def remaining(self, dataset: str, selection: Selection) -> Remaining: ...


@runtime_checkable
class Anonymizing(Protocol):
    """Rewriting the selected rows' personal fields in place (SQL tables, lake tables): objects
    have no fields to rewrite, so object stores do not anonymize (the catalog refuses it)."""

    def anonymize(
        self,
        dataset: str,
        selection: Selection,
        fields: list,
        *,
        hmac_key: bytes | None = None,
        unlink: bool = False,
        before_commit: BeforeCommit | None = None,
    ) -> Change: ...


def anonymizing(store: DatasetStore, dataset: str) -> Anonymizing:
    """``store`` as one that anonymizes ``dataset``; refused, naming both, when it cannot."""
    if not isinstance(store, Anonymizing):
        message = "this store cannot anonymize (objects have no fields to rewrite); use action: delete"
        raise TerminalStoreError(store.system, dataset, "anonymize", message)
    return store


@dataclass(frozen=True)
class Reference:
    """Rows of ``dataset`` pointing at another dataset's rows: a foreign key, or the catalog's
    subject link (``link``), declared as a foreign key or not."""

    dataset: str
    columns: tuple[str, ...]
    referred: tuple[str, ...]
    on_delete: str  # NO ACTION | RESTRICT | CASCADE | SET NULL | SET DEFAULT | NONE (no foreign key)
    link: bool = False  # the referencing rows reach their person through it

    @property
    def protects(self) -> bool:
        """Whether a referencing row that stays keeps the row it points at: always through a subject
        link (without it the row would reach nobody: no erasure or hold could find it again), else
        unless the foreign key clears the link (SET NULL / SET DEFAULT)."""
        return self.link or self.on_delete not in ("SET NULL", "SET DEFAULT")


@runtime_checkable
class References(Protocol):
    """Foreign keys between datasets of one store (SQL)."""

    def references(self, dataset: str) -> list[Reference]: ...

    def referenced(self, dataset: str, selection: Selection, reference: Reference) -> int: ...


@dataclass(frozen=True)
class TablePartition:
    """One range partition of a dataset's table on its ``created`` column: rows created in
    [``low``, ``high``) (naive UTC; ``low`` None: unbounded below, ``high`` None: above).
    ``name`` is the partition's own (schema-qualified where it is a table of its own);
    ``state``: ``attached``, ``detaching`` (a detach was interrupted) or ``detached``
    (a table of its own, no longer a partition)."""

    name: str
    low: datetime | None
    high: datetime | None
    state: str = "attached"


@runtime_checkable
class Partitions(Protocol):
    """Range partitions of a table on its ``created`` column (PostgreSQL declarative
    partitioning, MariaDB ``PARTITION BY RANGE``): found in the live schema, probed for rows
    that must stay, counted, and dropped in short transactions.  Nothing is ever left
    detached: a drop either finishes or is finished by the next call for that partition."""

    def partitions(self, dataset: str) -> list[TablePartition]: ...

    def partition_state(self, dataset: str, name: str) -> str:
        """``attached``, ``detaching``, ``detached`` or ``gone``."""
        ...

    def partition_rows(self, dataset: str, partition: TablePartition) -> int: ...

    def partition_keeps(self, dataset: str, partition: TablePartition, selection: Selection) -> str | None:
        """Why the partition may not be dropped whole for a delete of ``selection`` (rows that are
        held, still referenced by rows that stay, or undated), or None: every row of it goes."""
        ...

    def drop_partition(self, dataset: str, name: str) -> None:
        """Detach (where the database detaches) and drop; finishes a drop an earlier call left."""
        ...


@runtime_checkable
class PartitionBatches(Protocol):
    """Several partitions dropped in one commit (lake tables: one delete on their bounds, no
    file rewritten); a partition an earlier call dropped is dropped again as a no-op."""

    def drop_partitions(self, dataset: str, names: list[str]) -> None: ...


@runtime_checkable
class PartitionEstimates(Protocol):
    """A partition's rows read from the database's statistics, where they are current for it:
    a count without a scan, an estimate (PostgreSQL's ``ANALYZE`` samples large tables)."""

    def partition_rows_estimate(self, dataset: str, partition: TablePartition) -> int | None:
        """The estimate, or None: no current statistics (then ``partition_rows`` counts)."""
        ...


@runtime_checkable
class Rows(Protocol):
    """Reading columns of a dataset: values come back JSON-ready (text for dates, decimals, uuids)."""

    def read(
        self, dataset: str, columns: list[str], selection: Selection = ALL, *, instants: tuple[str, ...] = ()
    ) -> list[tuple]:
        """The columns of the selected rows in key order; the ``instants`` among them (time
        columns, whatever their type) as aware UTC datetimes."""
        ...

    def stream(
        self,
        dataset: str,
        columns: list[str],
        *,
        consent: tuple[str, str, datetime] | None = None,
        selection: Selection | None = None,
        fetch_rows: int = 5000,
    ) -> Iterator[list[tuple]]:
        """Rows of ``(subject, *columns)`` in key order, in lists of at most ``fetch_rows``,
        from a server-side cursor: memory does not grow with the result.  ``consent``: only
        subjects whose consent for a purpose is in force; ``selection``: only the rows it
        selects (by ``subjects``, every hop of the subject path)."""
        ...


@dataclass(frozen=True)
class StoredObject:
    """The current version of one object: what a person's access package copies."""

    key: str
    version_id: str  # "null" in a bucket that was never versioned
    size: int
    last_modified: datetime  # tz-aware UTC


@runtime_checkable
class ObjectReading(Protocol):
    """Reading objects' current versions (S3): listing them by selection, streaming their
    bodies in chunks (never a whole object in memory), and links that expire."""

    def current_objects(self, dataset: str, selection: Selection = ALL) -> list[StoredObject]: ...

    def chunks(self, key: str, *, version_id: str | None = None, chunk_size: int = 1024 * 1024) -> Iterator[bytes]: ...

    def presigned_get(self, key: str, expires_in: int) -> str: ...


@dataclass(frozen=True)
class ConsentPeriod:
    """One consent row of a person for a purpose: granted at ``granted``, in force until
    ``withdrawn`` (None: not withdrawn).  ``key``: the row's primary key as text."""

    key: str
    granted: datetime
    withdrawn: datetime | None

    def in_force(self, at: datetime) -> bool:
        return self.granted <= at and (self.withdrawn is None or self.withdrawn > at)


@runtime_checkable
class Consents(Protocol):
    """Consent records (a dataset with ``consent: {purpose, granted, withdrawn}``)."""

    def consent_periods(self, dataset: str, subject: str, purpose: str) -> list[ConsentPeriod]: ...

    def withdraw_consent(self, dataset: str, subject: str, purpose: str, at: datetime) -> int: ...


@runtime_checkable
class SubjectDirectory(Protocol):
    """How to reach people: the catalog's ``subject.contact`` columns."""

    def contacts(self, subjects: list, fields: Iterable[str] | None = None) -> dict[str, dict]: ...

    def reach(self, subjects: list) -> Iterator[tuple]: ...

    def find(self, field: str, value: str) -> list[str]: ...


@runtime_checkable
class Documents(Protocol):
    """Whole files: reports, manifests, announcements, lists of subjects."""

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> str: ...

    def get_bytes(self, key: str) -> bytes: ...


@dataclass(frozen=True)
class Purge:
    """What one ``purge`` of a lake table did: snapshots expired (Iceberg; a Delta table keeps its
    log, so 0: its old versions stop being readable when their files go), files removed from
    storage and their bytes.  ``due``: when the purge may run (``deleted_at`` + the system's
    ``purge_after``); ``done`` False: not yet due, nothing done."""

    dataset: str
    due: datetime
    done: bool
    snapshots_expired: int = 0
    files_removed: int = 0
    bytes_freed: int = 0


@runtime_checkable
class Purging(Protocol):
    """Physical removal of what deleted rows leave in a lake table (Iceberg, Delta): the
    snapshots older than the deleting commit and the files no remaining snapshot references.
    Idempotent: a purge killed half-way is finished by the next call.  ``deleted_at`` and
    ``at`` are the runs' logical times; ``committed_by``, the wall-clock time by which the
    deleting commit had been made (its ledger record), for a store whose files carry only
    their writers' clocks (Delta: a run whose logical date is ahead of or behind the wall
    clock still removes what that commit left)."""

    def purge(
        self, dataset: str, *, deleted_at: datetime, at: datetime, committed_by: datetime | None = None
    ) -> Purge: ...


@dataclass(frozen=True)
class StoredRows:
    """Verification from storage: rows of the given people found in every data file under a
    table's location (live or not), and how much was read to know it."""

    rows: int
    by_subject: dict[str, int]
    files: int
    bytes: int


@runtime_checkable
class StorageVerification(Protocol):
    """Reading the subject column of every data file under a table's location, not only the
    files the live snapshot references: what a purge must have removed."""

    def stored(
        self,
        dataset: str,
        subjects: tuple[str, ...],
        values: dict[str, str] | None = None,
        anonymized: tuple[str, ...] = (),
    ) -> StoredRows:
        """``anonymized``: fields the people's rows keep anonymized under their link (an
        anonymization that kept the link): only their rows where one still differs from its
        strategy's output count."""
        ...


@runtime_checkable
class Describing(Protocol):
    """The live columns of a dataset's table, as SQLAlchemy's inspector describes a SQL table's
    (``name``, ``type`` as a SQLAlchemy type, ``nullable``); None: there is no such table."""

    def describe(self, dataset: str) -> dict[str, dict] | None: ...


@dataclass(frozen=True)
class LiveColumn:
    """One column of a live table as discovery sees it: its name, its type as the database names
    it, and the anonymization strategies whose output the type can hold."""

    name: str
    type: str
    fits: tuple[str, ...]
    nullable: bool = True


@dataclass(frozen=True)
class LiveKeys:
    """A live table's primary key columns and foreign keys ``(columns, referred table, referred columns)``."""

    primary: tuple[str, ...]
    foreign: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] = ()


@runtime_checkable
class Sampling(Protocol):
    """A bounded, read-only sample of any table of the system, in the catalog or not (discovery):
    values go to the caller's detectors and nowhere else."""

    def live_tables(self, schemas: Iterable[str] = ()) -> dict[str, list[LiveColumn]]:
        """Every table of the default schema and of ``schemas`` (``schema.table`` outside the
        default), with its columns; a partitioned table's partitions are its rows, not tables."""
        ...

    def live_keys(self, tables: Iterable[str]) -> dict[str, LiveKeys]:
        """Each table's primary key and foreign keys, as the database declares them."""
        ...

    def sample(self, table: str, columns: list[str], size: int) -> dict[str, list]:
        """At most ``size`` rows of ``table`` (the first the database returns), per column its
        non-null values."""
        ...
