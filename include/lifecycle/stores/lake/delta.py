"""Delta Lake tables through deltalake (delta-rs): tables are paths under the system's
``location``, on S3 or a local folder.

A delete is ``DeltaTable.delete`` with a predicate on the keys selected; an anonymization
is one ``write_deltalake`` overwrite whose predicate is the same keys (replace-where: the
rows out, their rewritten copies in, one commit).  Both rewrite only the files holding
those keys.  A purge is ``vacuum`` once ``purge_after`` has passed in the run's time, with a
retention reaching back to the deleting commit on the wall clock (the ledger's record of it):
the files no later version references are removed.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from lifecycle.catalog import Catalog
from lifecycle.clock import aware_utc
from lifecycle.stores.contract import Purge
from lifecycle.stores.lake import arrow
from lifecycle.stores.lake.base import Chosen, LakeStore
from lifecycle.stores.lake.files import Storage, under
from lifecycle.stores.lake.partitions import DeltaPartitions


class DeltaStore(DeltaPartitions, LakeStore):
    conflicts = (CommitFailedError,)
    replace_by_keys = True  # replace-where refuses new rows its predicate does not match (an unlinked row)

    def __init__(self, catalog: Catalog, system: str, spec=None, open_store=None):
        spec = spec or catalog.systems[system]
        super().__init__(catalog, system, Storage.for_location(spec.location, spec.conn_id), open_store)
        self.spec = spec
        self.options = self.storage.delta_options()
        self._read_at: dict[str, DeltaTable] = {}

    def uri(self, dataset: str) -> str:
        root = self.spec.location if "://" in self.spec.location else str(Path(self.spec.location).resolve())
        return under(root, self.catalog.dataset(dataset).table)

    def location(self, dataset: str) -> str:
        return self.uri(dataset)

    def table(self, dataset: str) -> DeltaTable:
        """The dataset's table at its latest version (opened again: each verb sees the last commit)."""
        return DeltaTable(self.uri(dataset), storage_options=self.options)

    def _refresh(self, dataset: str) -> None:
        self._read_at[dataset] = self.table(dataset)

    def _as_read(self, dataset: str) -> DeltaTable:
        """The table at the version the verb's selection read: its commit is checked against it."""
        return self._read_at.get(dataset) or self.table(dataset)

    def _schema(self, dataset: str) -> pa.Schema | None:
        try:
            return pa.schema(self.table(dataset).schema().to_arrow())
        except TableNotFoundError:
            return None

    def _read(self, dataset: str, columns, *, link_values=None, keys=None) -> pa.Table:
        """The columns of the table; a key or link filter is pushed down on integer columns
        (delta-rs reads text as string views, which its filters do not compare)."""
        table = self._read_at[dataset] = self.table(dataset)
        schema = pa.schema(table.schema().to_arrow())
        pk, link, _ = self._columns(dataset)
        filters = []
        for column, values in ((link, link_values), (pk, keys)):
            if values is not None and pa.types.is_integer(schema.field(column).type):
                filters.append((column, "in", arrow.as_type(list(values), schema.field(column).type).to_pylist()))
        read = table.to_pyarrow_table(columns=list(columns) if columns else None, filters=filters or None)
        return read.cast(_plain_schema(read.schema))

    def _delete_rows(self, dataset: str, chosen: Chosen) -> int:
        metrics = self._as_read(dataset).delete(self._predicate(dataset, chosen))
        return int(metrics.get("num_deleted_rows", 0))

    def _replace_rows(self, dataset: str, chosen: Chosen, rows: pa.Table) -> int:
        table = self._as_read(dataset)
        schema = pa.schema(table.schema().to_arrow())
        predicate = f"{_name(self._columns(dataset)[0])} IN ({', '.join(_literal(v) for v in chosen.keys.to_pylist())})"
        write_deltalake(table, rows.cast(_plain_schema(schema)), mode="overwrite", predicate=predicate)
        return rows.num_rows

    def _predicate(self, dataset: str, chosen: Chosen) -> str:
        """The change's rows in delta-rs's SQL: the selection (on a retry within the selected keys'
        range: a row another writer appended after the read has a key past it), or the keys
        themselves where the selection has no expression (a pending anonymization)."""
        pk, link, created = self._columns(dataset)
        key, keys = _name(pk), chosen.keys.to_pylist()
        if not chosen.expressible:
            return f"{key} IN ({', '.join(_literal(v) for v in keys)})"
        selection, (low, high) = chosen.selection, chosen.key_range
        parts = [f"{key} >= {_literal(low)}", f"{key} <= {_literal(high)}"] if chosen.bounded else []
        if selection.subjects is not None:
            parts.append(f"{_name(link)} IN ({_literals(chosen.values['subjects'], self._kind(dataset, link))})")
        if selection.exclude_subjects and link:
            excluded = _literals(chosen.values["excluded"], self._kind(dataset, link))
            parts.append(f"({_name(link)} IS NULL OR {_name(link)} NOT IN ({excluded}))")
        if selection.keys is not None:
            parts.append(f"{key} IN ({_literals(list(selection.keys), self._kind(dataset, pk))})")
        if created is not None:
            parts += _created(_name(created), selection)
        return " AND ".join(parts) or "true"

    def _kind(self, dataset: str, column: str) -> pa.DataType:
        return pa.schema(self._as_read(dataset).schema().to_arrow()).field(column).type

    # ---------------------------------------------------------------- purge

    def purge(self, dataset: str, *, deleted_at: datetime, at: datetime, committed_by: datetime | None = None) -> Purge:
        """``vacuum`` once ``deleted_at + purge_after`` is past (both the run's logical time).
        delta-rs judges a removed file's age by the wall clock of its removal commit: the
        retention given to it reaches back to ``committed_by`` (the wall time by which the
        deleting commit was made), whatever the run's logical date; without it, ``purge_after``."""
        after = self.spec.purge_after
        due = after.after(aware_utc(deleted_at))
        if aware_utc(at) < due:
            return Purge(dataset, due, False)
        with self._failures(dataset, "purge"):
            table = self.table(dataset)
            sizes = {f.path: f.size for f in self.storage.files(self.location(dataset))}
            hours = _retention_hours(after, committed_by)
            removed = table.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False)
            paths = [self.storage.path(under(self.location(dataset), name)) for name in removed]
            paths = [p for p in paths if p in sizes]  # delta-rs names tombstoned files an earlier purge removed
        return Purge(dataset, due, True, 0, len(paths), sum(sizes[p] for p in paths))


def _retention_hours(after, committed_by: datetime | None) -> int:
    """Whole hours back from the wall clock (vacuum's own reference) to the deleting commit,
    rounded down so that commit's removals are always older; without it, ``purge_after``
    rounded up."""
    if committed_by is None:
        return math.ceil((after.months * 31 * 86400 + after.seconds) / 3600)
    since = datetime.now(UTC) - aware_utc(committed_by)  # vacuum compares with the wall clock, so must this
    return max(0, math.floor(since.total_seconds() / 3600))


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """Strings for string views: what pyarrow's kernels and delta-rs's writer both take."""
    return pa.schema(
        [f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f for f in schema], metadata=schema.metadata
    )


def _name(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _literals(values: list, kind: pa.DataType) -> str:
    """Values from JSON or text as literals of the column's type (none: a NULL, which matches nothing)."""
    typed = arrow.as_type(values, kind).to_pylist()
    return ", ".join(_literal(v) for v in typed) or "NULL"


def _created(column: str, selection) -> list[str]:
    """The selection's age bounds on the created column, as timestamps in UTC."""

    def at(when: datetime) -> str:
        return f"'{aware_utc(when).isoformat()}'"

    parts = []
    if selection.older_than is not None:
        parts.append(f"{column} < {at(selection.older_than)}")
    if selection.created_within is not None:
        parts.append(f"{column} >= {at(selection.created_within[0])} AND {column} <= {at(selection.created_within[1])}")
    for start, until in selection.created_not_in:
        outside = ([f"{column} < {at(start)}"] if start is not None else []) + (
            [f"{column} >= {at(until)}"] if until is not None else []
        )
        parts.append("(" + " OR ".join(outside) + ")")
    return parts


def _literal(value) -> str:
    """A key as a SQL literal of delta-rs's predicate language."""
    if isinstance(value, bool) or value is None:
        raise ValueError("a primary key is neither boolean nor null")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"
