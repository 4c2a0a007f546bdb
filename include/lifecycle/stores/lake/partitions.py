"""The ``Partitions`` ability of Iceberg tables partitioned by day or month of their ``created``
column: retention drops a wholly expired partition with a delete on the partition's bounds,
which pyiceberg commits by dropping the partition's files from the manifests (no file read or
rewritten); the files themselves go with the next purge."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta

import pyarrow.compute as pc
from dateutil.relativedelta import relativedelta

from lifecycle.stores.contract import Selection, TablePartition
from lifecycle.stores.lake import arrow
from lifecycle.stores.lake.quiet import quiet

EPOCH = date(1970, 1, 1)
_DROPPING = threading.Lock()


class IcebergPartitions:
    """``partitions``, ``partition_state``, ``partition_rows``, ``partition_keeps`` and
    ``drop_partition`` of ``IcebergStore``."""

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

    def _bounds(self, kind: str, value) -> tuple[datetime, datetime]:
        """[low, high) of a partition value: a date, or months since 1970 (a month transform)."""
        start = value if isinstance(value, date) else EPOCH + relativedelta(months=int(value))
        low = datetime(start.year, start.month, start.day)
        return low, low + (timedelta(days=1) if kind == "day" else relativedelta(months=1))

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
            low, high = self._bounds(kind, value)
            label = f"{name}={low.date().isoformat() if kind == 'day' else low.strftime('%Y-%m')}"
            previous = out.get(label, (None, 0))[1]
            out[label] = (TablePartition(label, low, high), previous + row["record_count"])
        return out

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
        """A delete on the partition's bounds (read from its name): its files leave the table's
        metadata whole.  A partition an earlier call dropped is dropped again as a no-op."""
        from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

        value = name.partition("=")[2]
        low, high = self._bounds("day" if len(value) == 10 else "month", _parse(value))
        created = self._columns(dataset)[2]
        with self._failures(dataset, f"drop partition {name}"):

            def drop(_chosen) -> int:
                # drops run side by side on threads sharing this store: each on the table as the
                # catalog has it now, one at a time (a shared, stale table object undid drops)
                with _DROPPING:
                    table = self.iceberg.load_table(self.catalog.dataset(dataset).table)
                    kind = table.schema().as_arrow().field(created).type
                    at = [arrow.scalar(t, kind).as_py().isoformat() for t in (low, high)]
                    with quiet():
                        table.delete(And(GreaterThanOrEqual(created, at[0]), LessThan(created, at[1])))
                return 0

            self._committing(dataset, f"drop partition {name}", None, drop)


def _parse(value: str):
    """A partition's value from its name: ``2026-05-24`` (day) or ``2026-05`` (month)."""
    return date.fromisoformat(value) if len(value) == 10 else date.fromisoformat(f"{value}-01")
