"""The contract's reading verbs: counts, key-range planning, verification."""

from __future__ import annotations

import math
from dataclasses import replace

import sqlalchemy as sa

from lifecycle.batching import chunks
from lifecycle.stores.contract import ALL, KeyRange, Remaining, Selection
from lifecycle.stores.sql.values import bound, json_key

SAMPLED_FROM = 4  # ranges from which a PostgreSQL table's boundaries come from a sample of its pages
SAMPLE_PER_RANGE = 256  # sampled keys per planned range (a few per page of a table): sizes within a few tenths


class Counting:
    """``count``, ``tally``, ``count_by_subject``, ``units``, ``kept_by_references`` and
    ``remaining`` of ``SqlStore``."""

    sampled_from_rows = 50_000  # below, one numbered pass is cheap and its ranges exact

    def count(self, dataset: str, selection: Selection = ALL) -> int:
        query = sa.select(sa.func.count()).select_from(self.table(dataset)).where(self.where(dataset, selection))
        with self._read(dataset, "count rows") as conn:
            return conn.execute(query).scalar_one()

    def tally(self, dataset: str, selection: Selection, within: Selection = ALL) -> tuple[int, int]:
        """(rows of ``within``, of those the rows ``selection`` takes), in one pass over the table."""
        taken = sa.func.coalesce(sa.func.sum(sa.case((self.where(dataset, selection), 1), else_=0)), 0)
        query = sa.select(sa.func.count(), taken).select_from(self.table(dataset)).where(self.where(dataset, within))
        with self._connect(dataset, "count rows") as conn:
            total, selected = conn.execute(query).one()
        return total, int(selected)

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

    def kept_by_references(self, dataset: str, selection: Selection) -> int:
        """Rows ``selection`` would take but for ``kept_if_referenced``: rows that rows staying
        behind point at (one pass over the selected rows; 0 without asking where nothing refers)."""
        table = self.table(dataset)
        keeping = self._unreferenced(dataset, selection, table)
        if not selection.kept_if_referenced or not keeping:
            return 0
        base = self._where(dataset, replace(selection, kept_if_referenced=False), table)
        query = sa.select(sa.func.count()).select_from(table).where(base, sa.not_(sa.and_(*keeping)))
        with self._connect(dataset, "count rows kept by references") as conn:
            return conn.execute(query).scalar_one()

    def units(self, dataset: str, selection: Selection, size: int, *, expected: int | None = None) -> list[KeyRange]:
        """Split the selected rows into primary-key ranges of about ``size`` rows.

        ``expected``: how many rows the selection takes, where the caller counted them.  On
        PostgreSQL, from ``SAMPLED_FROM`` ranges and ``sampled_from_rows`` rows on, the boundaries are keys of a sample of the
        table's pages (``TABLESAMPLE SYSTEM``), ordered by the database: the ranges then hold
        about ``size`` rows each, the first is open below and the last above, so together they
        cover every key, and each range ends at the key just before the next one begins.
        Otherwise one ordered pass numbers the rows and keeps each range's first and last key.
        Both work for every orderable key type (PostgreSQL has no ``min``/``max`` over uuid) and
        let the database's own ordering decide, the same ordering the range predicates use.
        Batches are then deleted by range, never by re-running a ``LIMIT`` query that walks
        dead rows; what each range deletes is counted by its delete.
        """
        ranges = math.ceil(expected / size) if expected else 0
        large = ranges >= SAMPLED_FROM and expected >= self.sampled_from_rows
        if large and self.engine.dialect.name == "postgresql":
            return self._sampled_units(dataset, selection, size, expected)
        return self._numbered_units(dataset, selection, size)

    def _numbered_units(self, dataset: str, selection: Selection, size: int) -> list[KeyRange]:
        """One ordered pass: ``ROW_NUMBER`` over the key, each range's first and last key kept
        (``LEAD`` marks the last row without holding the whole result as a count would)."""
        pk = self._pk(dataset)
        numbered = (
            sa.select(
                pk.label("pk"),
                (sa.func.row_number().over(order_by=pk) - 1).label("rn"),
                sa.func.lead(pk).over(order_by=pk).label("next"),
            )
            .where(self.where(dataset, selection))
            .subquery()
        )
        rn, after = numbered.c.rn, numbered.c.next
        bounds = (
            sa.select(numbered.c.pk, rn, after.is_(None))
            .where(sa.or_(rn % size == 0, rn % size == size - 1, after.is_(None)))
            .order_by(rn)
        )
        ranges, low = [], None
        with self._connect(dataset, "plan key ranges") as conn:
            for key, number, last in conn.execute(bounds):
                if number % size == 0:
                    low, first = key, number
                if number % size == size - 1 or last:
                    ranges.append(KeyRange(json_key(low), json_key(key), number - first + 1))
        return ranges

    def _sampled_units(self, dataset: str, selection: Selection, size: int, expected: int) -> list[KeyRange]:
        """Boundaries from a page sample of the selected rows (PostgreSQL); see ``units``."""
        ranges = math.ceil(expected / size)
        table = self.table(dataset)
        percent = min(100.0, 100.0 * ranges * SAMPLE_PER_RANGE / expected)
        sample = sa.tablesample(table, sa.func.system(percent), seed=sa.literal(0))
        pk = self._pk(dataset, sample)
        query = sa.select(pk).select_from(sample).where(self._where(dataset, selection, sample)).order_by(pk)
        with self._connect(dataset, "sample key ranges") as conn:
            keys = conn.execute(query).scalars().all()
            if len(keys) < ranges:  # the sample missed most of the rows (a few pages hold them all)
                return self._numbered_units(dataset, selection, size)
            starts = sorted({round(j * len(keys) / ranges) for j in range(1, ranges)} - {0, len(keys)})
            ends = self._predecessors(conn, dataset, [keys[i] for i in starts])
        found, low, first = [], None, 0
        for i, end in zip(starts, ends):
            if end is None:  # the sampled key is the table's first: no range ends before it
                continue
            found.append((low, end, i - first))
            low, first = keys[i], i
        found.append((low, None, len(keys) - first))
        scale = expected / max(len(keys), 1)
        return [KeyRange(json_key(a), json_key(b), max(1, round(n * scale))) for a, b, n in found]

    def _predecessors(self, conn: sa.Connection, dataset: str, keys: list) -> list:
        """For each key, the table's greatest key below it (None where there is none), by the index."""
        pk = self._pk(dataset)
        found = []
        for part in chunks(keys, 500):
            below = [
                sa.select(pk).where(pk < bound(pk, k)).order_by(pk.desc()).limit(1).scalar_subquery() for k in part
            ]
            found += list(conn.execute(sa.select(*below)).one()) if below else []
        return found

    def remaining(self, dataset: str, selection: Selection) -> Remaining:
        """What still matches: rows (per subject with ``subjects``), and with
        ``kept_if_referenced`` the rows kept because rows that stay point at them."""
        left = Remaining(self.count(dataset, selection))
        if selection.subjects is not None:
            left.by_subject = self.count_by_subject(dataset, selection)
        if selection.kept_if_referenced:
            left.kept["referenced"] = self.count(dataset, replace(selection, kept_if_referenced=False)) - left.items
        return left
