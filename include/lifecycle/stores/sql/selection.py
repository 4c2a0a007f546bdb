"""A ``Selection`` compiled into SQL predicates.  A row reaches its person through the
catalog's subject path, compiled to nested ``IN (SELECT …)``, so selecting by subject needs
no join of the subject table."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from lifecycle.errors import TerminalStoreError
from lifecycle.stores.contract import Selection
from lifecycle.stores.sql.strategies import already_applied
from lifecycle.stores.sql.values import bound, coerced


class Predicates:
    """How ``SqlStore`` turns selections and subject paths into SQL."""

    def where(self, dataset: str, selection: Selection) -> sa.ColumnElement:
        return self._where(dataset, selection, self.table(dataset))

    def _where(self, dataset: str, selection: Selection, source) -> sa.ColumnElement:
        """The selection as a predicate on ``source`` (the dataset's table or an alias of it)."""
        clauses = self._by_age(dataset, selection, source)
        if selection.subjects is not None:
            clauses.append(self._owned(dataset, selection.subjects, self._link_of(dataset, source)))
        if selection.exclude_subjects:
            link = self._link_of(dataset, source)  # a row that reaches nobody is nobody's held row
            clauses.append(sa.or_(link.is_(None), sa.not_(self._owned(dataset, selection.exclude_subjects, link))))
        if selection.within is not None:  # a bound of None: the range is open on that side
            pk, low, high = self._pk(dataset, source), selection.within.low, selection.within.high
            clauses += [pk >= bound(pk, low)] if low is not None else []
            clauses += [pk <= bound(pk, high)] if high is not None else []
        if selection.keys is not None:
            clauses.append(self.one_of(self._pk(dataset, source), selection.keys))
        if selection.pending_anonymization:
            specs = self.catalog.dataset(dataset).fields
            applied = (
                already_applied(self._col(source, dataset, name), specs[name].anonymize)
                for name in selection.pending_anonymization
            )
            clauses.append(sa.not_(sa.and_(*applied)))
        if selection.kept_if_referenced:
            clauses += self._unreferenced(dataset, selection, source)
        return sa.and_(sa.true(), *clauses)

    def _by_age(self, dataset: str, selection: Selection, source) -> list[sa.ColumnElement]:
        if selection.older_than is None and selection.created_within is None and not selection.created_not_in:
            return []
        created = self.catalog.dataset(dataset).created
        if not created:
            raise TerminalStoreError(
                self.system, dataset, "select rows by age", "the dataset has no created column in catalog.yaml"
            )
        time = self.time_column(dataset, created, source)
        column, at = time.expression, time.value
        clauses = []
        if selection.older_than is not None:
            clauses.append(column < at(selection.older_than))
        if selection.created_within is not None:
            start, end = selection.created_within
            clauses.append(column.between(at(start), at(end)))
        for start, end in selection.created_not_in:  # written as comparisons, so partitions are pruned
            outside = [column < at(start)] if start is not None else []
            outside += [column >= at(end)] if end is not None else []
            clauses.append(sa.or_(*outside) if outside else sa.false())
        return clauses

    def one_of(self, column: sa.ColumnElement, values: Iterable) -> sa.ColumnElement:
        """``column`` is one of ``values`` (coerced to its type).  On PostgreSQL one array
        parameter (``= ANY``): a batch's 500 ids are bound and parsed as one value, where an
        IN list is rendered again per statement, a parameter each; elsewhere an IN list."""
        values = coerced(column, values)
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
