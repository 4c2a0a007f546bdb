"""The SQL store: set-based selection, key ranges, batched delete and anonymize.

Tables are reflected, identifiers are quoted by SQLAlchemy (never spliced),
and every statement works on SQLite, PostgreSQL and MariaDB.  A dataset's
rows reach their person through the catalog's join path, compiled here to
nested ``IN (SELECT …)`` predicates, so selecting by subject needs no join
of the subject table.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from lifecycle import anonymize
from lifecycle.batching import chunks
from lifecycle.catalog import Catalog, PersonalField
from lifecycle.errors import LifecycleError


BeforeCommit = Callable[[dict, list], None]   # (rows per subject, primary keys) -> None; raising rolls back


@dataclass(frozen=True)
class Selection:
    """Which rows of a dataset: older than a cutoff, of some subjects, never of others."""

    older_than: datetime | None = None
    subjects: tuple | None = None               # None: any subject
    exclude_subjects: tuple = field(default=())  # legal holds
    pending_anonymization: tuple[str, ...] = ()  # only rows where one of these fields is not yet anonymized


@dataclass(frozen=True)
class Reference:
    """A foreign key of another table onto a dataset's table."""

    table: str
    columns: tuple[str, ...]
    referred: tuple[str, ...]


@dataclass(frozen=True)
class KeyRange:
    """Inclusive primary-key bounds of one batch and the rows it held when planned."""

    low: Any
    high: Any
    rows: int


class SqlStore:
    def __init__(self, engine: sa.Engine, catalog: Catalog):
        self.engine = engine
        self.catalog = catalog
        self._tables: dict[str, sa.Table] = {}
        self._schemas: dict[str, sa.MetaData] = {}      # schema ('' the default) -> its reflected tables
        self._reflecting = threading.Lock()

    # ------------------------------------------------------------ reflection

    def table(self, dataset: str) -> sa.Table:
        """The reflected table of a dataset (``schema.table`` allowed), reflected once per store.

        The first miss in a schema reflects every catalog table found there in
        one pass (PostgreSQL answers for all tables in a few queries, where one
        table at a time costs a round of queries each, its referenced tables
        again).  Threads sharing a store must get the same ``Table`` object: a
        statement built on one and filtered by another's columns would name
        the table twice (``DELETE FROM t USING t``), so reflection is serialized.
        """
        found = self._tables.get(dataset)
        if found is not None:
            return found
        with self._reflecting:
            if dataset not in self._tables:
                name = self.catalog.dataset(dataset).table
                schema, _, table = name.rpartition(".")
                meta = self._schemas.get(schema)
                if meta is None:
                    meta = self._schemas[schema] = sa.MetaData(schema=schema or None)
                    wanted = {d.table.rpartition(".")[2] for d in self.catalog.datasets.values()
                              if d.is_table and d.table.rpartition(".")[0] == schema}
                    meta.reflect(self.engine, only=lambda table_name, _meta: table_name in wanted)
                try:
                    reflected = meta.tables.get(name if schema else table)
                    self._tables[dataset] = (reflected if reflected is not None
                                             else sa.Table(table, meta, autoload_with=self.engine))
                except sa.exc.NoSuchTableError:
                    raise LifecycleError(f"dataset {dataset!r}: table {name!r} does not exist in {self.engine.url.render_as_string()}") from None
            return self._tables[dataset]

    def column(self, dataset: str, name: str) -> sa.Column:
        table = self.table(dataset)
        if name not in table.c:
            raise LifecycleError(f"dataset {dataset!r}: column {name!r} does not exist in table {table.fullname!r}")
        return table.c[name]

    def children(self, dataset: str) -> list[Reference]:
        """Foreign keys of other tables onto this dataset's table (live schema)."""
        target = self.table(dataset)
        inspector = sa.inspect(self.engine)
        found = []
        for name in sorted(inspector.get_table_names(schema=target.schema)):
            for fk in inspector.get_foreign_keys(name, schema=target.schema):
                if fk["referred_table"] == target.name and name != target.name:
                    found.append(Reference(name, tuple(fk["constrained_columns"]), tuple(fk["referred_columns"])))
        return found

    def referenced(self, dataset: str, selection: Selection, ref: Reference,
                   unless: tuple[str, Selection] | None = None) -> int:
        """Selected rows that rows of ``ref.table`` still point at.

        ``unless=(child_dataset, child_selection)`` ignores child rows that
        selection will remove first.
        """
        parent = self.table(dataset)
        if unless is not None:
            child = self.table(unless[0])     # the same Table object its selection is built on
        else:
            child = sa.Table(ref.table, sa.MetaData(), schema=parent.schema, autoload_with=self.engine)
        link = sa.and_(*(child.c[c] == parent.c[r] for c, r in zip(ref.columns, ref.referred)))
        if unless is not None:
            link = sa.and_(link, sa.not_(self.where(*unless)))
        query = sa.select(sa.func.count()).select_from(parent).where(
            self.where(dataset, selection), sa.exists(sa.select(1).select_from(child).where(link))
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    # ------------------------------------------------------------- selection

    def one_of(self, column: sa.Column, values: Iterable) -> sa.ColumnElement:
        """``column`` is one of ``values`` (coerced to its type).  On PostgreSQL one array
        parameter (``= ANY``): a batch's 500 ids are bound and parsed as one value, where an
        IN list is rendered again per statement, a parameter each; elsewhere an IN list."""
        values = _coerce(column, values)
        if self.engine.dialect.name == "postgresql":
            array = postgresql.ARRAY(column.type)
            return column == sa.any_(sa.cast(sa.bindparam(None, values, type_=array), array))
        return column.in_(values)

    def _subject_predicate(self, dataset: str, subjects: Iterable) -> sa.ColumnElement:
        """``dataset`` rows that belong to ``subjects``, following the join path."""
        hops = self.catalog.path_to_subject(dataset)
        if not hops:
            key = self.column(dataset, self.catalog.subject.key)
            return self.one_of(key, subjects)
        last = hops[-1]
        link = self.column(last.dataset, last.column)
        predicate = self.one_of(link, subjects)
        for hop in reversed(hops[:-1]):
            target = self.column(hop.target, hop.target_column)
            predicate = self.column(hop.dataset, hop.column).in_(sa.select(target).where(predicate))
        return predicate

    def _not_of_subjects(self, dataset: str, subjects: Iterable) -> sa.ColumnElement:
        """Rows that belong to none of ``subjects``; rows whose link is NULL belong
        to nobody, so they are kept in the selection (``NOT IN`` alone would drop them)."""
        hops = self.catalog.path_to_subject(dataset)
        if not hops:
            key = self.column(dataset, self.catalog.subject.key)
            return sa.not_(self.one_of(key, subjects))
        first = self.column(hops[0].dataset, hops[0].column)
        if len(hops) == 1:
            return sa.or_(first.is_(None), sa.not_(self.one_of(first, subjects)))
        target = self.column(hops[0].target, hops[0].target_column)
        owned = sa.select(target).where(self._subject_predicate(hops[0].target, subjects))
        return sa.or_(first.is_(None), sa.not_(first.in_(owned)))

    def where(self, dataset: str, selection: Selection) -> sa.ColumnElement:
        ds = self.catalog.dataset(dataset)
        clauses = []
        if selection.older_than is not None:
            if not ds.created:
                raise LifecycleError(f"dataset {dataset!r} has no created column; it cannot be selected by age")
            clauses.append(self.column(dataset, ds.created) < _naive_utc(selection.older_than))
        if selection.subjects is not None:
            clauses.append(self._subject_predicate(dataset, selection.subjects))
        if selection.exclude_subjects:
            clauses.append(self._not_of_subjects(dataset, selection.exclude_subjects))
        if selection.pending_anonymization:
            specs = ds.fields
            clauses.append(sa.not_(sa.and_(*(
                anonymize.already_applied(self.column(dataset, name), specs[name].anonymize)
                for name in selection.pending_anonymization
            ))))
        return sa.and_(sa.true(), *clauses)

    def _pk(self, dataset: str) -> sa.Column:
        return self.column(dataset, self.catalog.dataset(dataset).primary_key)

    def _in_range(self, dataset: str, selection: Selection, key_range: KeyRange) -> sa.ColumnElement:
        pk = self._pk(dataset)
        return sa.and_(pk >= key_range.low, pk <= key_range.high, self.where(dataset, selection))

    # ----------------------------------------------------------------- reads

    def count(self, dataset: str, selection: Selection = Selection()) -> int:
        query = sa.select(sa.func.count()).select_from(self.table(dataset)).where(self.where(dataset, selection))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def key_ranges(self, dataset: str, selection: Selection, batch_size: int) -> list[KeyRange]:
        """Split the selected rows into primary-key ranges of ``batch_size`` rows.

        One pass with ROW_NUMBER over the primary key: batches are then deleted
        by range, never by re-running a ``LIMIT`` query that walks dead rows.
        """
        pk = self._pk(dataset)
        numbered = (
            sa.select(pk.label("pk"), (sa.func.row_number().over(order_by=pk) - 1).label("rn"))
            .where(self.where(dataset, selection))
            .subquery()
        )
        bucket = (numbered.c.rn // batch_size).label("bucket")
        query = (
            sa.select(sa.func.min(numbered.c.pk), sa.func.max(numbered.c.pk), sa.func.count())
            .group_by(bucket)
            .order_by(sa.func.min(numbered.c.pk))
        )
        with self.engine.connect() as conn:
            return [KeyRange(low, high, rows) for low, high, rows in conn.execute(query)]

    def subject_source(self, dataset: str) -> tuple[sa.FromClause, sa.Column]:
        """The dataset's table joined along its subject path, and the column holding the subject key."""
        hops = self.catalog.path_to_subject(dataset)
        source = self.table(dataset)
        if not hops:
            return source, self.column(dataset, self.catalog.subject.key)
        for hop in hops[:-1]:
            source = source.join(self.table(hop.target),
                                 self.column(hop.dataset, hop.column) == self.column(hop.target, hop.target_column))
        return source, self.column(hops[-1].dataset, hops[-1].column)

    def consenting(self, dataset: str, purpose: str, as_of: datetime) -> sa.Select:
        """Subject keys whose consent for ``purpose`` is in force at ``as_of``.

        ``dataset`` is a consent dataset (``consent: {purpose, granted,
        withdrawn}``); a re-grant is a new row, so the row in force is the
        latest one granted by ``as_of``, and it counts unless withdrawn by then.
        """
        spec = self.catalog.dataset(dataset).consent
        if spec is None:
            raise LifecycleError(f"dataset {dataset!r} has no consent: {{purpose, granted, withdrawn}} in catalog.yaml")
        source, subject = self.subject_source(dataset)
        when = _naive_utc(as_of)
        about, granted = self.column(dataset, spec.purpose) == purpose, self.column(dataset, spec.granted)
        latest = (sa.select(subject.label("subject"), sa.func.max(granted).label("granted")).select_from(source)
                  .where(about, granted <= when).group_by(subject).subquery())
        in_force = sa.true()
        if spec.withdrawn:
            withdrawn = self.column(dataset, spec.withdrawn)
            in_force = sa.or_(withdrawn.is_(None), withdrawn > when)
        joined = source.join(latest, sa.and_(subject == latest.c.subject, granted == latest.c.granted))
        return sa.select(subject).select_from(joined).where(about, in_force)

    def stream(self, query: sa.Select, *, fetch_rows: int = 5000) -> Iterator[list]:
        """The query's rows in lists of ``fetch_rows`` from a server-side cursor
        (``stream_results``), so memory does not grow with the result."""
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=fetch_rows).execute(query)
            for chunk in result.partitions(fetch_rows):
                yield chunk

    def _link(self, dataset: str) -> sa.Column:
        """The dataset's own column that leads to its subject (the subject key on the subject's table)."""
        hops = self.catalog.path_to_subject(dataset)
        return self.column(dataset, hops[0].column if hops else self.catalog.subject.key)

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
        values, counts = list(per_link), {}
        by_text = {str(value): n for value, n in per_link.items()}
        for part in chunks(values, 5000):
            query = sa.select(target, subject).select_from(source).where(self.one_of(target, part))
            for value, owner in conn.execute(query):
                if owner is not None:
                    counts[str(owner)] = counts.get(str(owner), 0) + by_text.get(str(value), 0)
        return counts

    def _selected_by_subject(self, conn: sa.Connection, dataset: str, where: sa.ColumnElement) -> dict[str, int]:
        source, subject = self.subject_source(dataset)
        query = sa.select(subject, sa.func.count()).select_from(source).where(where).group_by(subject)
        return {str(s): n for s, n in conn.execute(query) if s is not None}

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
        with self.engine.connect() as conn:
            for part in chunks(subjects, chunk):
                query = sa.select(key, *columns).where(self.one_of(key, part))
                for row in conn.execute(query):
                    found[str(row[0])] = {f: row._mapping.get(f) for f in fields}
        return found

    def count_by_subject(self, dataset: str, subjects: Iterable) -> dict[str, int]:
        """Rows per subject (as text), joining along the subject path (one GROUP BY)."""
        source, subject = self.subject_source(dataset)
        query = (sa.select(subject, sa.func.count()).select_from(source)
                 .where(self.one_of(subject, subjects)).group_by(subject))
        with self.engine.connect() as conn:
            return {str(s): n for s, n in conn.execute(query)}

    def keys(self, dataset: str, selection: Selection, key_range: KeyRange | None = None) -> list:
        """Primary keys of the selected rows (for verification and evidence)."""
        where = self._in_range(dataset, selection, key_range) if key_range else self.where(dataset, selection)
        pk = self._pk(dataset)
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(pk).where(where).order_by(pk)).scalars())

    # ---------------------------------------------------------------- writes

    def delete_range(self, dataset: str, selection: Selection, key_range: KeyRange) -> int:
        """Delete the selected rows inside one key range, in one committed statement."""
        table = self.table(dataset)
        with self.engine.begin() as conn:
            return conn.execute(table.delete().where(self._in_range(dataset, selection, key_range))).rowcount

    def delete(self, dataset: str, selection: Selection, *, before_commit: BeforeCommit | None = None) -> int:
        """Delete every selected row in one committed statement (erasure of a batch of subjects).

        ``before_commit(rows_per_subject, [])`` is called inside the
        transaction, after the DELETE and before its commit, with the deleted
        rows counted per subject (text) — from ``DELETE … RETURNING`` the
        subject link where the database has it (PostgreSQL, MariaDB, SQLite
        3.35+), else from a GROUP BY first.  If it raises, nothing is deleted.
        """
        statement = self.table(dataset).delete().where(self.where(dataset, selection))
        with self.engine.begin() as conn:
            if before_commit is None:
                return conn.execute(statement).rowcount
            if conn.dialect.delete_returning:
                returned = conn.execute(statement.returning(self._link(dataset))).scalars().all()
                counts, rows = self._owners(conn, dataset, returned), len(returned)
            else:
                counts = self._selected_by_subject(conn, dataset, self.where(dataset, selection))
                rows = conn.execute(statement).rowcount
            before_commit(counts, [])
            return rows

    def anonymize_range(self, dataset: str, selection: Selection, key_range: KeyRange | None,
                        fields: list[PersonalField], *, hmac_key: bytes | None = None, unlink: bool = False,
                        before_commit: BeforeCommit | None = None) -> int:
        """Apply each field's strategy to the selected rows of one key range.

        Strategies SQL can express become one set-based UPDATE; the others are
        computed in Python for the range and written with one executemany, in
        the same transaction.  ``key_range=None``: every selected row.
        ``unlink``: also set the subject-link column to NULL, so the row no
        longer leads to its person (erasure keeps it only anonymized).
        ``before_commit(rows_per_subject, primary_keys)``: the selected rows,
        read in the same transaction before they change (one query), reported
        after the updates and before the commit; if it raises, nothing changes.
        """
        table = self.table(dataset)
        where = self._in_range(dataset, selection, key_range) if key_range else self.where(dataset, selection)
        constants, computed = {}, []
        for f in fields:
            spec = f.spec.anonymize
            if spec is None:
                raise LifecycleError(f"dataset {dataset!r}: field {f.column!r} has no anonymize strategy")
            strategy = anonymize.strategy(spec.strategy)
            if strategy.needs_key and not hmac_key:
                raise LifecycleError(f"dataset {dataset!r}: field {f.column!r} uses {spec.strategy}, which needs the HMAC key")
            if strategy.sql is not None:
                constants[f.column] = strategy.sql(spec)
            else:
                computed.append(f)
        if unlink:
            hops = self.catalog.path_to_subject(dataset)
            if hops:
                constants[hops[0].column] = None
        pk = self._pk(dataset)
        with self.engine.begin() as conn:
            touched = 0
            if before_commit is not None:
                source, subject = self.subject_source(dataset)
                selected = conn.execute(sa.select(pk, subject).select_from(source).where(where).order_by(pk)).all()
                counts: dict[str, int] = {}
                for _, owner in selected:
                    if owner is not None:
                        counts[str(owner)] = counts.get(str(owner), 0) + 1
            if computed:
                columns = [self.column(dataset, f.column) for f in computed]
                rows = conn.execute(sa.select(pk, *columns).where(where)).all()
                if rows:
                    params = [
                        {"_pk": row[0], **{
                            f"_{f.column}": anonymize.strategy(f.spec.anonymize.strategy).transform(value, f.spec.anonymize, hmac_key)
                            for f, value in zip(computed, row[1:])
                        }}
                        for row in rows
                    ]
                    update = table.update().where(pk == sa.bindparam("_pk")).values(
                        {f.column: sa.bindparam(f"_{f.column}") for f in computed}
                    )
                    conn.execute(update, params)
                touched = len(rows)
            if constants:
                touched = conn.execute(table.update().where(where).values(constants)).rowcount
            if before_commit is not None:
                before_commit(counts, [key for key, _ in selected])
            return touched


def _naive_utc(when: datetime) -> datetime:
    """Columns store naive UTC; compare like with like."""
    return when if when.tzinfo is None else when.astimezone(timezone.utc).replace(tzinfo=None)


def _coerce(column: sa.Column, values: Iterable) -> list:
    """Subject ids arrive as text (holds, CLI); bind them as the column's type."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return list(values)
    out = []
    for value in values:
        try:
            out.append(value if isinstance(value, python_type) else python_type(value))
        except (TypeError, ValueError):
            continue    # an id of the wrong shape matches no row
    return out
