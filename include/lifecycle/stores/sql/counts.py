"""The contract's reading verbs: counts, key-range planning, verification."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa

from lifecycle.stores.contract import ALL, KeyRange, Remaining, Selection
from lifecycle.stores.sql.values import json_key


class Counting:
    """``count``, ``count_by_subject``, ``units`` and ``remaining`` of ``SqlStore``."""

    def count(self, dataset: str, selection: Selection = ALL) -> int:
        query = sa.select(sa.func.count()).select_from(self.table(dataset)).where(self.where(dataset, selection))
        with self._read(dataset, "count rows") as conn:
            return conn.execute(query).scalar_one()

    def count_by_subject(self, dataset: str, selection: Selection = ALL) -> dict[str, int]:
        """Selected rows per subject (as text), joining along the subject path (one GROUP BY)."""
        where = self.where(dataset, selection)
        with self._read(dataset, "count rows per subject") as conn:
            return self._selected_by_subject(conn, dataset, where)

    def _selected_by_subject(self, conn: sa.Connection, dataset: str, where: sa.ColumnElement) -> dict[str, int]:
        source, subject = self.subject_source(dataset)
        query = (
            sa.select(subject, sa.func.count()).select_from(source).where(where, subject.is_not(None)).group_by(subject)
        )
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
                    ranges.append(KeyRange(json_key(low), json_key(key), number - first + 1))
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
