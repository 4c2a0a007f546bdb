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
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from lifecycle import anonymize
from lifecycle.batching import chunks
from lifecycle.catalog import Catalog, PersonalField
from lifecycle.clock import naive_utc
from lifecycle.errors import TerminalStoreError, store_failures
from lifecycle.stores.contract import ALL, BeforeCommit, Change, KeyRange, Reference, Remaining, Selection

# PostgreSQL SQLSTATE classes and codes that a retry may get past
_PG_TRANSIENT_CLASSES = ("08", "40", "53", "57")  # connection, rollback (serialization, deadlock), resources, operator
_PG_TRANSIENT_CODES = {"55P03"}  # lock not available
# MySQL/MariaDB error numbers that a retry may get past
_MYSQL_TRANSIENT = {1040, 1053, 1205, 1213, 1927, 2002, 2003, 2005, 2006, 2013, 2026, 2055, 4031}
# a connection refused for good: a retry would be refused again
_CONNECT_TERMINAL = ("does not exist", "authentication failed", "no pg_hba.conf", "access denied", "unknown database")


def transient(exc: BaseException) -> bool:
    """Whether a SQLAlchemy/DBAPI failure may pass on retry."""
    if isinstance(exc, sa.exc.TimeoutError):  # the connection pool was exhausted
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return isinstance(exc, (ConnectionError, TimeoutError))
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    code = getattr(orig, "pgcode", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
    if code:
        return code[:2] in _PG_TRANSIENT_CLASSES or code in _PG_TRANSIENT_CODES
    number = orig.args[0] if getattr(orig, "args", None) and isinstance(orig.args[0], int) else None
    if number is not None:
        return number in _MYSQL_TRANSIENT
    text = str(orig).lower()
    if "database is locked" in text or "database table is locked" in text:  # SQLite
        return True
    if isinstance(exc, sa.exc.OperationalError) and not any(t in text for t in _CONNECT_TERMINAL):
        return "connect" in text or "timeout" in text or "timed out" in text or "server closed" in text
    return False


def failure_text(exc: BaseException) -> str:
    """The driver's own first line, never the statement or its parameters.  Errors about data
    (a duplicate entry, a value of the wrong shape) may quote the value, which may be personal:
    of those only the code and the names of the constraint, table and column are kept."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(exc, (sa.exc.IntegrityError, sa.exc.DataError)) and not _names_only(orig):
        diag = getattr(orig, "diag", None)
        names = [
            f"{what} {getattr(diag, attr)}"
            for what, attr in (("constraint", "constraint_name"), ("table", "table_name"), ("column", "column_name"))
            if diag is not None and getattr(diag, attr, None)
        ]
        code = getattr(orig, "pgcode", None) or (orig.args[0] if getattr(orig, "args", None) else "")
        return f"{type(orig).__name__} {code} ({', '.join(names) or 'the value is withheld'})"
    first = (str(orig).strip().splitlines() or [""])[0]
    return f"{type(orig).__name__}: {first}"[:500]


def _names_only(orig) -> bool:
    """Foreign-key refusals name tables and constraints only: PostgreSQL's first line
    (23503; the key values are on its DETAIL line), MySQL's 1216/1217/1451/1452."""
    code = getattr(orig, "pgcode", None)
    if code:
        return code == "23503"
    return bool(getattr(orig, "args", None)) and orig.args[0] in (1216, 1217, 1451, 1452)


class SqlStore:
    """Datasets of one SQL system (see the module docstring)."""

    def __init__(self, engine: sa.Engine, catalog: Catalog, system: str | None = None):
        self.engine = engine
        self.catalog = catalog
        self.system = system or _system_of(catalog, engine)
        self._tables: dict[str, sa.Table] = {}
        self._schemas: dict[str, sa.MetaData] = {}  # schema ('' the default) -> its reflected tables
        self._references: dict[str, list[Reference]] | None = None
        self._reflecting = threading.Lock()

    # ------------------------------------------------------------- failures

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

    def snapshot(self):
        """Reads inside see one state of the store (the contract's; each statement reads its own here)."""
        return contextlib.nullcontext()

    # ------------------------------------------------------------ reflection

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
                    self._tables[dataset] = (
                        reflected if reflected is not None else sa.Table(table, meta, autoload_with=self.engine)
                    )
                except sa.exc.NoSuchTableError:
                    raise TerminalStoreError(
                        self.system, dataset, "reflect the table", f"table {name!r} does not exist"
                    ) from None
            return self._tables[dataset]

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

    # ------------------------------------------------------------ references

    def references(self, dataset: str) -> list[Reference]:
        """Foreign keys of the system's datasets onto this dataset's table (live schema, read once)."""
        if self._references is None:
            with self._failures(dataset, "read the foreign keys"):
                found = self._read_references()
            self._references = found
        return self._references.get(dataset, [])

    def _read_references(self) -> dict[str, list[Reference]]:
        inspector = sa.inspect(self.engine)
        default = inspector.default_schema_name
        fold = str.lower if self.engine.dialect.name == "sqlite" else (lambda s: s)
        mine = [n for n in self.catalog.table_datasets if self.catalog.dataset(n).system == self.system]

        def place(schema: str | None, table: str) -> tuple[str, str]:
            return fold(schema or default or ""), fold(table)

        by_table = {place(*_split(self.catalog.dataset(n).table)): n for n in mine}
        found: dict[str, list[Reference]] = {}
        for name in mine:
            schema, table = _split(self.catalog.dataset(name).table)
            try:
                keys = inspector.get_foreign_keys(table, schema=schema)
            except sa.exc.NoSuchTableError:
                continue  # scan names the missing table
            for fk in keys:
                referred = fk["referred_table"]
                parent = (
                    by_table.get(place(fk.get("referred_schema"), referred))
                    if fk.get("referred_schema")
                    else by_table.get(place(schema, referred)) or by_table.get(place(None, referred))
                )
                if parent is None:
                    continue
                on_delete = ((fk.get("options") or {}).get("ondelete") or "NO ACTION").upper()
                found.setdefault(parent, []).append(
                    Reference(name, tuple(fk["constrained_columns"]), tuple(fk["referred_columns"]), on_delete)
                )
        for name in mine:  # subject links, declared as foreign keys or not
            link = self.catalog.dataset(name).subject
            if link is None or link.dataset not in mine:
                continue
            columns, referred = (link.column,), (link.target_column,)
            known = [
                r
                for r in found.get(link.dataset, [])
                if (r.dataset, r.columns, r.referred) == (name, columns, referred)
            ]
            declared = known[0].on_delete if known else "NONE"
            found[link.dataset] = [r for r in found.get(link.dataset, []) if r not in known] + [
                Reference(name, columns, referred, declared, link=True)
            ]
        return found

    def referenced(self, dataset: str, selection: Selection, reference: Reference) -> int:
        """Selected rows that rows of ``reference.dataset`` which stay still point at
        (rows of that dataset in ``selection.going_with`` go in the same run; through
        ``ON DELETE SET NULL``, held rows only)."""
        parent = self.table(dataset)
        child = self.table(reference.dataset).alias()
        base = replace(selection, kept_if_referenced=False)
        query = (
            sa.select(sa.func.count())
            .select_from(parent)
            .where(
                self._where(dataset, base, parent),
                sa.exists(
                    sa.select(sa.literal(1))
                    .select_from(child)
                    .where(self._staying(reference, parent, child, selection))
                ),
            )
        )
        with self._connect(dataset, f"count rows referenced by {reference.dataset}") as conn:
            return conn.execute(query).scalar_one()

    def _staying(self, reference: Reference, parent, child, selection: Selection) -> sa.ColumnElement:
        """Rows of ``child`` that point at the ``parent`` row and keep it: rows that do not go in
        this run, or, where the foreign key would only set their link to NULL, held rows."""
        link = sa.and_(*(child.c[c] == parent.c[r] for c, r in zip(reference.columns, reference.referred)))
        if not reference.protects:
            held = dict(selection.held).get(reference.dataset, ())
            return sa.and_(link, self._owned(reference.dataset, held, self._link_of(reference.dataset, child)))
        going = dict(selection.going_with).get(reference.dataset)
        if going is None:
            return link
        return sa.and_(link, sa.not_(self._where(reference.dataset, going, child)))

    # ------------------------------------------------------------- selection

    def one_of(self, column: sa.ColumnElement, values: Iterable) -> sa.ColumnElement:
        """``column`` is one of ``values`` (coerced to its type).  On PostgreSQL one array
        parameter (``= ANY``): a batch's 500 ids are bound and parsed as one value, where an
        IN list is rendered again per statement, a parameter each; elsewhere an IN list."""
        values = _coerce(column, values)
        if self.engine.dialect.name == "postgresql":
            array = postgresql.ARRAY(column.type)
            return column == sa.any_(sa.cast(sa.bindparam(None, values, type_=array), array))
        return column.in_(values)

    def _owned(self, dataset: str, subjects: Iterable, column) -> sa.ColumnElement:
        """``column`` (the first hop's link of ``dataset``, or its subject key) belongs to ``subjects``."""
        hops = self.catalog.path_to_subject(dataset)
        if len(hops) <= 1:
            return self.one_of(column, subjects)
        predicate = self.one_of(self.column(hops[-1].dataset, hops[-1].column), subjects)
        for hop in reversed(hops[1:-1]):
            target = self.column(hop.target, hop.target_column)
            predicate = self.column(hop.dataset, hop.column).in_(sa.select(target).where(predicate).correlate(None))
        first = hops[0]
        return column.in_(sa.select(self.column(first.target, first.target_column)).where(predicate).correlate(None))

    def _link_of(self, dataset: str, source) -> sa.ColumnElement:
        hops = self.catalog.path_to_subject(dataset)
        return self._col(source, dataset, hops[0].column if hops else self.catalog.subject.key)

    def _where(self, dataset: str, selection: Selection, source) -> sa.ColumnElement:
        """The selection as a predicate on ``source`` (the dataset's table or an alias of it)."""
        ds = self.catalog.dataset(dataset)
        clauses = []
        if selection.older_than is not None or selection.created_within is not None:
            if not ds.created:
                raise TerminalStoreError(
                    self.system, dataset, "select rows by age", "the dataset has no created column in catalog.yaml"
                )
            created = self._col(source, dataset, ds.created)
            if selection.older_than is not None:
                clauses.append(created < naive_utc(selection.older_than))
            if selection.created_within is not None:
                start, end = selection.created_within
                clauses.append(created.between(naive_utc(start), naive_utc(end)))
        if selection.subjects is not None:
            clauses.append(self._owned(dataset, selection.subjects, self._link_of(dataset, source)))
        if selection.exclude_subjects:
            link = self._link_of(dataset, source)  # a row that reaches nobody is nobody's held row
            clauses.append(sa.or_(link.is_(None), sa.not_(self._owned(dataset, selection.exclude_subjects, link))))
        if selection.within is not None:
            pk = self._pk(dataset, source)
            clauses += [pk >= _value(pk, selection.within.low), pk <= _value(pk, selection.within.high)]
        if selection.keys is not None:
            clauses.append(self.one_of(self._pk(dataset, source), selection.keys))
        if selection.pending_anonymization:
            specs = ds.fields
            clauses.append(
                sa.not_(
                    sa.and_(
                        *(
                            already_applied(self._col(source, dataset, name), specs[name].anonymize)
                            for name in selection.pending_anonymization
                        )
                    )
                )
            )
        if selection.kept_if_referenced:
            held = dict(selection.held)
            for reference in self.references(dataset):
                if reference.protects or held.get(reference.dataset):
                    child = self.table(reference.dataset).alias()
                    staying = self._staying(reference, source, child, selection)
                    clauses.append(sa.not_(sa.exists(sa.select(sa.literal(1)).select_from(child).where(staying))))
        return sa.and_(sa.true(), *clauses)

    def where(self, dataset: str, selection: Selection) -> sa.ColumnElement:
        return self._where(dataset, selection, self.table(dataset))

    def subject_source(self, dataset: str) -> tuple[sa.FromClause, sa.Column]:
        """The dataset's table joined along its subject path, and the column holding the subject key."""
        hops = self.catalog.path_to_subject(dataset)
        source = self.table(dataset)
        if not hops:
            return source, self.column(dataset, self.catalog.subject.key)
        for hop in hops[:-1]:
            source = source.join(
                self.table(hop.target),
                self.column(hop.dataset, hop.column) == self.column(hop.target, hop.target_column),
            )
        return source, self.column(hops[-1].dataset, hops[-1].column)

    # ----------------------------------------------------------------- reads

    def count(self, dataset: str, selection: Selection = ALL) -> int:
        query = sa.select(sa.func.count()).select_from(self.table(dataset)).where(self.where(dataset, selection))
        with self._connect(dataset, "count rows") as conn:
            return conn.execute(query).scalar_one()

    def count_by_subject(self, dataset: str, selection: Selection = ALL) -> dict[str, int]:
        """Selected rows per subject (as text), joining along the subject path (one GROUP BY)."""
        source, subject = self.subject_source(dataset)
        query = (
            sa.select(subject, sa.func.count())
            .select_from(source)
            .where(self.where(dataset, selection), subject.is_not(None))
            .group_by(subject)
        )
        with self._connect(dataset, "count rows per subject") as conn:
            return {str(s): n for s, n in conn.execute(query)}

    def units(self, dataset: str, selection: Selection, size: int) -> list[KeyRange]:
        """Split the selected rows into primary-key ranges of ``size`` rows.

        One ordered pass numbers the rows (``ROW_NUMBER`` over the key) and
        keeps each range's first and last key: this works for every orderable
        key type (PostgreSQL has no ``min``/``max`` over uuid) and the
        database's own ordering decides, the same ordering the range
        predicates use.  Batches are then deleted by range, never by
        re-running a ``LIMIT`` query that walks dead rows.
        """
        pk = self._pk(dataset)
        numbered = (
            sa.select(
                pk.label("pk"),
                (sa.func.row_number().over(order_by=pk) - 1).label("rn"),
                sa.func.count().over().label("n"),
            )
            .where(self.where(dataset, selection))
            .subquery()
        )
        rn, n = numbered.c.rn, numbered.c.n
        bounds = (
            sa.select(numbered.c.pk, rn, n)
            .where(sa.or_(rn % size == 0, rn % size == size - 1, rn == n - 1))
            .order_by(rn)
        )
        ranges, low = [], None
        with self._connect(dataset, "plan key ranges") as conn:
            for key, number, total in conn.execute(bounds):
                if number % size == 0:
                    low, first = key, number
                if number % size == size - 1 or number == total - 1:
                    ranges.append(KeyRange(_json_key(low), _json_key(key), number - first + 1))
        return ranges

    def remaining(self, dataset: str, selection: Selection) -> Remaining:
        """What still matches: rows (per subject with ``subjects``), and with
        ``kept_if_referenced`` the rows kept because rows that stay point at them."""
        left = Remaining(self.count(dataset, selection))
        if selection.subjects is not None:
            left.by_subject = self.count_by_subject(dataset, selection)
        if selection.kept_if_referenced:
            left.kept["referenced"] = self.count(dataset, replace(selection, kept_if_referenced=False)) - left.items
        return left

    def read(self, dataset: str, columns: list[str], selection: Selection = ALL) -> list[tuple]:
        """The columns of the selected rows as Python values (datetimes naive UTC), in key order."""
        table = self.table(dataset)
        query = (
            sa.select(*(self.column(dataset, c) for c in columns))
            .where(self.where(dataset, selection))
            .order_by(self._pk(dataset))
        )
        with self._connect(dataset, f"read {', '.join(columns)}") as conn:
            return [tuple(row) for row in conn.execute(query.select_from(table))]

    def stream(
        self,
        dataset: str,
        columns: list[str],
        *,
        consent: tuple[str, str, datetime] | None = None,
        fetch_rows: int = 5000,
    ) -> Iterator[list[tuple]]:
        """Rows of ``(subject, *columns)`` in key order, in lists of ``fetch_rows`` from a
        server-side cursor (memory does not grow with the result); values JSON-ready
        (dates in ISO form, decimals and uuids as text, bytes as hex), the subject as text.
        ``consent=(consent dataset, purpose, as_of)``: only subjects whose consent is in force."""
        source, subject = self.subject_source(dataset)
        selected = [self.column(dataset, c) for c in columns]
        query = sa.select(subject, *selected).select_from(source)
        if consent is not None:
            query = query.where(subject.in_(self._consenting(*consent)))
        query = query.order_by(self._pk(dataset))
        convert = [str] + [_converter(c.type) for c in selected]
        converted = [(i, f) for i, f in enumerate(convert) if f is not None]
        with self._connect(dataset, f"read {', '.join(columns)}") as conn:
            result = conn.execution_options(stream_results=True, yield_per=fetch_rows).execute(query)
            for chunk in result.partitions(fetch_rows):
                rows = []
                for row in chunk:
                    values = list(row)
                    for i, f in converted:
                        if values[i] is not None:
                            values[i] = f(values[i])
                    rows.append(values)
                yield rows

    def _consenting(self, dataset: str, purpose: str, as_of: datetime) -> sa.Select:
        """Subject keys whose consent for ``purpose`` is in force at ``as_of``.

        ``dataset`` records consent (``consent: {purpose, granted, withdrawn}``);
        a re-grant is a new row, so the row in force is the latest one granted
        by ``as_of``, and it counts unless withdrawn by then.
        """
        spec = self.catalog.dataset(dataset).consent
        if spec is None:
            raise TerminalStoreError(
                self.system,
                dataset,
                "select consenting subjects",
                "the dataset has no consent: {purpose, granted, withdrawn} in catalog.yaml",
            )
        source, subject = self.subject_source(dataset)
        when = naive_utc(as_of)
        about, granted = self.column(dataset, spec.purpose) == purpose, self.column(dataset, spec.granted)
        latest = (
            sa.select(subject.label("subject"), sa.func.max(granted).label("granted"))
            .select_from(source)
            .where(about, granted <= when)
            .group_by(subject)
            .subquery()
        )
        in_force = sa.true()
        if spec.withdrawn:
            withdrawn = self.column(dataset, spec.withdrawn)
            in_force = sa.or_(withdrawn.is_(None), withdrawn > when)
        joined = source.join(latest, sa.and_(subject == latest.c.subject, granted == latest.c.granted))
        return sa.select(subject).select_from(joined).where(about, in_force)

    # ------------------------------------------------------------ people

    def contacts(self, subjects: list, fields: Iterable[str] | None = None, chunk: int = 5000) -> dict[str, dict]:
        """How to reach ``subjects``: the catalog's ``subject.contact`` columns
        (``fields`` of them; default every configured one) by subject id, read
        in chunks of ``chunk`` ids.  A field the catalog does not map is None."""
        name = self.catalog.subject.dataset
        contact = self.catalog.subject.contact
        fields = list(fields) if fields is not None else [f for f, column in contact.model_dump().items() if column]
        key = self.column(name, self.catalog.subject.key)
        columns = [self.column(name, getattr(contact, f)).label(f) for f in fields if getattr(contact, f)]
        found: dict[str, dict] = {}
        with self._connect(name, "read contact columns") as conn:
            for part in chunks(subjects, chunk):
                for row in conn.execute(sa.select(key, *columns).where(self.one_of(key, part))):
                    found[str(row[0])] = {f: row._mapping.get(f) for f in fields}
        return found

    def reach(self, subjects: list, chunk: int = 5000) -> Iterator[tuple]:
        """(id, has e-mail, has phone, has postal address, country, locale) per subject,
        the flags computed in the database: addresses do not leave it."""
        name = self.catalog.subject.dataset
        contact = self.catalog.subject.contact
        key = self.column(name, self.catalog.subject.key)

        def flag(field):
            if not field:
                return sa.literal(0)
            column = self.column(name, field)
            return sa.case((sa.and_(column.is_not(None), column != ""), 1), else_=0)

        def plain(field):
            return self.column(name, field) if field else sa.null()

        columns = [
            key,
            flag(contact.email),
            flag(contact.phone),
            flag(contact.address),
            plain(contact.country),
            plain(contact.locale),
        ]
        with self._connect(name, "classify how people can be reached") as conn:
            for part in chunks(subjects, chunk):
                for row in conn.execute(sa.select(*columns).where(self.one_of(key, part))):
                    yield (str(row[0]), *row[1:])

    # ---------------------------------------------------------------- writes

    def delete(self, dataset: str, selection: Selection, *, before_commit: BeforeCommit | None = None) -> Change:
        """Delete every selected row in one committed statement.

        ``before_commit(rows_per_subject, [])`` is called inside the
        transaction, after the DELETE and before its commit, with the deleted
        rows counted per subject (text) — from ``DELETE … RETURNING`` the
        subject link where the database has it (PostgreSQL, MariaDB, SQLite
        3.35+), else from a GROUP BY first.  If it raises, nothing is deleted.
        """
        statement = self.table(dataset).delete().where(self.where(dataset, selection))
        if before_commit is not None and self._file_locking:
            with self._connect(dataset, "count rows to delete per subject") as conn:
                counts = self._selected_by_subject(conn, dataset, self.where(dataset, selection))
            before_commit(counts, [])
            before_commit = None
        with self._begin(dataset, "delete rows") as conn:
            if before_commit is None:
                return Change(rows=conn.execute(statement).rowcount)
            if conn.dialect.delete_returning:
                returned = (
                    conn.execute(statement.returning(self._link_of(dataset, self.table(dataset)))).scalars().all()
                )
                counts, rows = self._owners(conn, dataset, returned), len(returned)
            else:
                counts = self._selected_by_subject(conn, dataset, self.where(dataset, selection))
                rows = conn.execute(statement).rowcount
            before_commit(counts, [])
            return Change(rows=rows)

    def anonymize(
        self,
        dataset: str,
        selection: Selection,
        fields: list[PersonalField],
        *,
        hmac_key: bytes | None = None,
        unlink: bool = False,
        before_commit: BeforeCommit | None = None,
    ) -> Change:
        """Apply each field's strategy to the selected rows.

        Strategies SQL can express become one set-based UPDATE; the others are
        computed in Python and written with one executemany, in the same
        transaction.  ``unlink``: also set the subject-link column to NULL, so
        the row no longer leads to its person (erasure keeps it only
        anonymized).  ``before_commit(rows_per_subject, primary_keys)``: the
        selected rows, read in the same transaction before they change (one
        query), reported after the updates and before the commit; if it
        raises, nothing changes.
        """
        table = self.table(dataset)
        where = self.where(dataset, selection)
        constants, computed = {}, []
        for f in fields:
            spec = f.spec.anonymize
            if spec is None:
                raise TerminalStoreError(
                    self.system, dataset, "anonymize rows", f"field {f.column!r} has no anonymize strategy"
                )
            strategy = anonymize.strategy(spec.strategy)
            if strategy.needs_key and not hmac_key:
                raise TerminalStoreError(
                    self.system,
                    dataset,
                    "anonymize rows",
                    f"field {f.column!r} uses {spec.strategy}, which needs the HMAC key",
                )
            if strategy.constant is not None:
                constants[f.column] = strategy.constant(spec)
            else:
                computed.append(f)
        if unlink:
            hops = self.catalog.path_to_subject(dataset)
            if hops:
                constants[hops[0].column] = None
        pk = self._pk(dataset)
        if before_commit is not None and self._file_locking:
            with self._connect(dataset, "read the rows to anonymize") as conn:
                before_commit(*self._keys_by_subject(conn, dataset, where))
            before_commit = None
        with self._begin(dataset, "anonymize rows") as conn:
            touched = 0
            if before_commit is not None:
                counts, keys = self._keys_by_subject(conn, dataset, where)
            if computed:
                columns = [self.column(dataset, f.column) for f in computed]
                rows = conn.execute(sa.select(pk, *columns).where(where)).all()
                if rows:
                    params = [
                        {
                            "_pk": row[0],
                            **{
                                f"_{f.column}": anonymize.strategy(f.spec.anonymize.strategy).transform(
                                    value, f.spec.anonymize, hmac_key
                                )
                                for f, value in zip(computed, row[1:])
                            },
                        }
                        for row in rows
                    ]
                    update = (
                        table.update()
                        .where(pk == sa.bindparam("_pk"))
                        .values({f.column: sa.bindparam(f"_{f.column}") for f in computed})
                    )
                    conn.execute(update, params)
                touched = len(rows)
            if constants:
                touched = conn.execute(table.update().where(where).values(constants)).rowcount
            if before_commit is not None:
                before_commit(counts, keys)
            return Change(rows=touched)

    @property
    def _file_locking(self) -> bool:
        """SQLite: a write transaction locks the whole file, and a ledger in the same file
        could not be appended inside it; there ``before_commit`` hears of the rows first
        (nothing else writes meanwhile), then they change."""
        return self.engine.dialect.name == "sqlite"

    def _keys_by_subject(self, conn: sa.Connection, dataset: str, where) -> tuple[dict[str, int], list]:
        """Rows per subject and the primary keys (JSON-safe) of the rows ``where`` selects."""
        source, subject = self.subject_source(dataset)
        pk = self._pk(dataset)
        selected = conn.execute(sa.select(pk, subject).select_from(source).where(where).order_by(pk)).all()
        counts: dict[str, int] = {}
        for _, owner in selected:
            if owner is not None:
                counts[str(owner)] = counts.get(str(owner), 0) + 1
        return counts, [_json_key(key) for key, _ in selected]

    def _owners(self, conn: sa.Connection, dataset: str, links: list) -> dict[str, int]:
        """Rows per subject (text), given each row's value of the dataset's link column.

        One hop: the link is the subject key.  Deeper: the link values are
        resolved to subjects through the next dataset on the path (its rows
        still exist: children go first), by primary-key lookups.
        """
        per_link: dict = {}
        for value in links:
            if value is not None:
                per_link[value] = per_link.get(value, 0) + 1
        hops = self.catalog.path_to_subject(dataset)
        if len(hops) <= 1:
            return {str(value): n for value, n in per_link.items()}
        target = self.column(hops[0].target, hops[0].target_column)
        source, subject = self.subject_source(hops[0].target)
        counts: dict[str, int] = {}
        by_text = {str(value): n for value, n in per_link.items()}
        for part in chunks(list(per_link), 5000):
            query = sa.select(target, subject).select_from(source).where(self.one_of(target, part))
            for value, owner in conn.execute(query):
                if owner is not None:
                    counts[str(owner)] = counts.get(str(owner), 0) + by_text.get(str(value), 0)
        return counts

    def _selected_by_subject(self, conn: sa.Connection, dataset: str, where: sa.ColumnElement) -> dict[str, int]:
        source, subject = self.subject_source(dataset)
        query = sa.select(subject, sa.func.count()).select_from(source).where(where).group_by(subject)
        return {str(s): n for s, n in conn.execute(query) if s is not None}


def already_applied(column: sa.ColumnElement, spec) -> sa.ColumnElement:
    """True where the value is NULL or already has its strategy's output shape (``anonymize.Shape``):
    such a row is left out of the next run, so anonymizing is idempotent."""
    shape = anonymize.strategy(spec.strategy).shape(spec)
    if shape.kind == "equals":
        applied = column == shape.value
    elif shape.kind == "length":
        applied = sa.func.length(column) == shape.value
    elif shape.kind == "suffix":
        applied = sa.or_(*(column.like(f"%{suffix}") for suffix in shape.value))
    elif shape.kind == "date_cut":
        parts = {
            "day": ["hour", "minute", "second"],
            "month": ["day", "hour", "minute", "second"],
            "year": ["month", "day", "hour", "minute", "second"],
        }[shape.value]
        if isinstance(column.type, sa.Date) and not isinstance(column.type, sa.DateTime):
            parts = [p for p in parts if p in ("month", "day")]
        applied = sa.and_(*(sa.extract(p, column) == (1 if p in ("month", "day") else 0) for p in parts))
    else:
        applied = sa.false()
    return column.is_(None) | applied


def fits(column_type: sa.types.TypeEngine, kind: str) -> bool:
    """Whether a column of this type can hold a strategy's output (``Strategy.fits``)."""
    text = isinstance(column_type, (sa.String, sa.Text))
    if kind == "text":
        return text
    if kind == "long_text":
        return text and (getattr(column_type, "length", None) is None or column_type.length >= 64)
    if kind == "temporal":
        return isinstance(column_type, (sa.Date, sa.DateTime))
    return True


def _system_of(catalog: Catalog, engine: sa.Engine) -> str:
    """A name for messages when the caller gave none: the catalog's only SQL system, else the database."""
    sql = [name for name, s in catalog.systems.items() if s.type == "sql" and name != catalog.model.state]
    return sql[0] if len(sql) == 1 else (engine.url.database or engine.url.get_backend_name())


def _split(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return schema or None, table


def _json_key(value: Any) -> Any:
    """A key value as JSON carries it (plans in the ledger, units in XCom): ints as they
    are, everything else as text (ISO dates, decimals, uuids)."""
    if value is None or (isinstance(value, (int, str)) and not isinstance(value, bool)):
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def _python_type(column) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def _value(column, value: Any) -> Any:
    """A value from JSON or text (a key, a subject id), bound as the column's type."""
    if value is None:
        return None
    kind = _python_type(column)
    if kind is None or isinstance(value, kind):
        return value
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is date:
        return date.fromisoformat(value)
    if kind is uuid.UUID:
        return uuid.UUID(str(value))
    if kind is bytes:
        return bytes.fromhex(value)
    return kind(value)


def _coerce(column, values: Iterable) -> list:
    """Subject ids arrive as text (holds, the CLI, the ledger); an id of the wrong shape matches no row."""
    out = []
    for value in values:
        try:
            out.append(_value(column, value))
        except (TypeError, ValueError, ArithmeticError):
            continue
    return out


def _converter(column_type: sa.types.TypeEngine):
    """How a column's non-NULL values become JSON/CSV text (None: as they are)."""
    if isinstance(column_type, (sa.DateTime, sa.Date, sa.Time)):
        return lambda v: v.isoformat()
    if isinstance(column_type, sa.Numeric) and getattr(column_type, "asdecimal", False):
        return str
    if isinstance(column_type, sa.LargeBinary):
        return lambda v: bytes(v).hex()
    if isinstance(column_type, sa.Uuid):
        return str
    return None
