"""The ``Partitions`` and ``PartitionBatches`` abilities of lake tables partitioned on their
``created`` column: Iceberg by a day or month transform, Delta on a ``date`` column (one
partition a day).  Retention drops wholly expired partitions with one delete whose filter is
their bounds: the engine commits it by dropping the partitions' files from the table's
metadata (no file read or rewritten); the files themselves go with the next purge.  Several
partitions go in one commit (``drop_partitions``)."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from dateutil.relativedelta import relativedelta

from lifecycle.stores.contract import Selection, TablePartition
from lifecycle.stores.lake import arrow
from lifecycle.stores.lake.quiet import quiet

EPOCH = date(1970, 1, 1)
_DROPPING = threading.Lock()


class LakePartitions:
    """``partitions``, ``partition_state``, ``partition_rows``, ``partition_keeps``,
    ``drop_partition`` and ``drop_partitions`` over an engine's ``_partition_rows`` (label →
    partition and rows) and ``_drop_spans`` (one commit)."""

    def partitions(self, dataset: str) -> list[TablePartition]:
        with self._failures(dataset, "list partitions"):
            return sorted((p for p, _ in self._partition_rows(dataset).values()), key=lambda p: p.low)

    def partition_state(self, dataset: str, name: str) -> str:
        with self._failures(dataset, f"look at partition {name}"):
            return "attached" if name in self._partition_rows(dataset) else "gone"

    def partition_rows(self, dataset: str, partition: TablePartition) -> int:
        with self._failures(dataset, f"count partition {partition.name}"):
            return self._partition_rows(dataset).get(partition.name, (None, 0))[1]

    def partition_keeps(self, dataset: str, partition: TablePartition, selection: Selection) -> str | None:
        """Why a row of the partition stays: a held subject's (``exclude_subjects``)."""
        if not selection.exclude_subjects:
            return None
        inside = Selection(created_within=(partition.low, partition.high), subjects=selection.exclude_subjects)
        with self._failures(dataset, f"look for rows that keep partition {partition.name}"):
            rows = self._selected(dataset, inside)
            created = self._columns(dataset)[2]
            before_high = pc.less(rows[created], arrow.scalar(partition.high, rows.schema.field(created).type))
            if rows.num_rows and pc.any(before_high).as_py():
                return "rows of held subjects"
        return None

    def drop_partition(self, dataset: str, name: str) -> None:
        self.drop_partitions(dataset, [name])

    def drop_partitions(self, dataset: str, names: list[str]) -> None:
        """One delete on the partitions' bounds (read from their names; adjacent ones merged
        into one range): their files leave the table's metadata whole, in one commit.  A
        partition an earlier call dropped is dropped again as a no-op."""
        spans = _merged(sorted(_span(name) for name in names))
        label = f"drop partition(s) {', '.join(names)}"
        with self._failures(dataset, label):

            def drop(_chosen) -> int:
                # drops may run side by side on threads sharing this store: one at a time, each on
                # the table as the catalog has it now (a shared, stale table object undid drops)
                with _DROPPING:
                    self._drop_spans(dataset, spans)
                return 0

            self._committing(dataset, label, None, drop)


class IcebergPartitions(LakePartitions):
    def _created_partitioning(self, dataset: str) -> tuple[str, str] | None:
        """(partition field, ``day`` or ``month``) of the spec's field on the created column."""
        created = self.catalog.dataset(dataset).created
        table = self.table(dataset)
        if created is None or created not in table.schema().column_names:
            return None
        source = table.schema().find_field(created).field_id
        for field in table.spec().fields:
            kind = type(field.transform).__name__.removesuffix("Transform").lower()
            if field.source_id == source and kind in ("day", "month"):
                return field.name, kind
        return None

    def _partition_rows(self, dataset: str) -> dict[str, tuple[TablePartition, int]]:
        found = self._created_partitioning(dataset)
        if found is None:
            return {}
        name, kind = found
        out = {}
        for row in self.table(dataset).inspect.partitions().to_pylist():
            value = (row.get("partition") or {}).get(name)
            if value is None or not row["record_count"]:
                continue
            start = value if isinstance(value, date) else EPOCH + relativedelta(months=int(value))
            label = f"{name}={start.isoformat() if kind == 'day' else start.strftime('%Y-%m')}"
            low, high = _span(label)
            previous = out.get(label, (None, 0))[1]
            out[label] = (TablePartition(label, low, high), previous + row["record_count"])
        return out

    def _drop_spans(self, dataset: str, spans: list[tuple[datetime, datetime]]) -> None:
        from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan, Or

        created = self._columns(dataset)[2]
        table = self.iceberg.load_table(self.catalog.dataset(dataset).table)
        kind = table.schema().as_arrow().field(created).type

        def at(t: datetime) -> str:
            return arrow.scalar(t, kind).as_py().isoformat()

        ranges = [And(GreaterThanOrEqual(created, at(low)), LessThan(created, at(high))) for low, high in spans]
        with quiet():
            table.delete(ranges[0] if len(ranges) == 1 else Or(*ranges))


class DeltaPartitions(LakePartitions):
    def _partition_column(self, dataset: str) -> str | None:
        """The created column, where the table is partitioned on it and it is a ``date``."""
        created = self.catalog.dataset(dataset).created
        table = self.table(dataset)
        if created is None or created not in table.metadata().partition_columns:
            return None
        kind = pa.schema(table.schema().to_arrow()).field(created).type
        return created if str(kind).startswith("date") else None

    def _partition_rows(self, dataset: str) -> dict[str, tuple[TablePartition, int]]:
        column = self._partition_column(dataset)
        if column is None:
            return {}
        actions = pa.table(self.table(dataset).get_add_actions(flatten=True)).to_pydict()
        out: dict[str, tuple[TablePartition, int]] = {}
        for value, rows in zip(actions[f"partition.{column}"], actions["num_records"], strict=True):
            if value is None or not rows:
                continue
            label = f"{column}={value.isoformat() if isinstance(value, date) else value}"
            low, high = _span(label)
            out[label] = (TablePartition(label, low, high), out.get(label, (None, 0))[1] + rows)
        return out

    def _drop_spans(self, dataset: str, spans: list[tuple[datetime, datetime]]) -> None:
        """A predicate on the partition column alone: delta-rs removes the files whole."""
        column = '"' + self._partition_column(dataset).replace('"', '""') + '"'
        ranges = [f"({column} >= '{low.date()}' AND {column} < '{high.date()}')" for low, high in spans]
        self.table(dataset).delete(" OR ".join(ranges))


def _span(name: str) -> tuple[datetime, datetime]:
    """[low, high) of a partition from its name: ``<field>=2026-05-24`` (a day) or ``=2026-05`` (a month)."""
    value = name.partition("=")[2]
    start = date.fromisoformat(value if len(value) == 10 else f"{value}-01")
    low = datetime(start.year, start.month, start.day)
    return low, low + (timedelta(days=1) if len(value) == 10 else relativedelta(months=1))


def _merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted spans with the adjacent or overlapping ones joined."""
    out: list[tuple[datetime, datetime]] = []
    for low, high in spans:
        if out and low <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out
