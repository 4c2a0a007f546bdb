"""Apache Iceberg tables through pyiceberg: a SQL catalog (an Airflow connection, or a SQLite
file) and a warehouse on S3 or a local folder.

Deletes and rewrites are copy-on-write: pyiceberg reads only the files whose statistics may
hold the keys and rewrites only those that do.  A purge expires the snapshots older than
the cutoff and removes the files under the table's location that no remaining snapshot
references (pyiceberg expires metadata only): data files and manifests, never metadata
JSON, never a file younger than the cutoff (another writer's uncommitted files).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError

from lifecycle.catalog import Catalog
from lifecycle.clock import aware_utc
from lifecycle.stores.contract import Purge
from lifecycle.stores.lake.base import Chosen, LakeStore
from lifecycle.stores.lake.files import Storage
from lifecycle.stores.lake.partitions import IcebergPartitions
from lifecycle.stores.lake.quiet import quiet

try:  # a rewrite refused because the snapshot it read is gone
    from pyiceberg.exceptions import ValidationException
except ImportError:  # pragma: no cover
    ValidationException = CommitFailedException


# pyiceberg prunes files by an IN list of at most 200 values; past that the list only costs (each
# file binds it again): the rows are then selected by the Arrow mask alone
PRUNING_LIMIT = 200


def iceberg_catalog(name: str, spec, storage: Storage):
    """The pyiceberg SQL catalog of an ``iceberg`` system."""
    from pyiceberg.catalog.sql import SqlCatalog

    if spec.catalog.conn_id:
        from lifecycle.connections import get_connection, sqlalchemy_url

        uri = sqlalchemy_url(get_connection(spec.catalog.conn_id)).render_as_string(hide_password=False)
    else:
        uri = f"sqlite:///{Path(spec.catalog.path).resolve()}"
    warehouse = spec.warehouse if "://" in spec.warehouse else Path(spec.warehouse).resolve().as_uri()
    return SqlCatalog(spec.catalog.name, uri=uri, warehouse=warehouse, **storage.iceberg_properties())


class IcebergStore(IcebergPartitions, LakeStore):
    conflicts = (CommitFailedException, ValidationException)

    def __init__(self, catalog: Catalog, system: str, spec=None, open_store=None):
        spec = spec or catalog.systems[system]
        super().__init__(catalog, system, Storage.for_location(spec.warehouse, spec.conn_id), open_store)
        self.spec = spec
        self.iceberg = iceberg_catalog(system, spec, self.storage)
        self._tables: dict[str, object] = {}

    def table(self, dataset: str):
        """The dataset's table, refreshed to its latest snapshot."""
        if dataset not in self._tables:
            self._tables[dataset] = self.iceberg.load_table(self.catalog.dataset(dataset).table)
        else:
            self._tables[dataset].refresh()
        return self._tables[dataset]

    def _refresh(self, dataset: str) -> None:
        self.table(dataset)

    def _as_read(self, dataset: str):
        """The table as the verb's selection read it: its commit is checked against that snapshot."""
        return self._tables.get(dataset) or self.table(dataset)

    def location(self, dataset: str) -> str:
        return self.table(dataset).location()

    def _schema(self, dataset: str) -> pa.Schema | None:
        try:
            return self.table(dataset).schema().as_arrow()
        except NoSuchTableError:
            return None

    def _read(self, dataset: str, columns, *, link_values=None, keys=None) -> pa.Table:
        from pyiceberg.expressions import AlwaysTrue, And, In

        table = self.table(dataset)
        pk, link, _ = self._columns(dataset)
        where = AlwaysTrue()
        if link_values is not None and len(link_values) <= PRUNING_LIMIT:
            where = And(where, In(link, _typed(table, link, link_values)))
        if keys is not None and len(keys) <= PRUNING_LIMIT:
            where = And(where, In(pk, _typed(table, pk, keys)))
        scan = table.scan(row_filter=where, selected_fields=tuple(columns) if columns else ("*",))
        return scan.to_arrow()

    def _delete_rows(self, dataset: str, chosen: Chosen) -> int:
        table = self._as_read(dataset)
        with quiet():
            table.delete(self._where(dataset, table, chosen))
        return _summary(table, "deleted-records") - _summary(table, "added-records")  # files rewritten keep the rest

    def _replace_rows(self, dataset: str, chosen: Chosen, rows: pa.Table) -> int:
        table = self._as_read(dataset)
        with quiet():
            table.overwrite(rows, overwrite_filter=self._where(dataset, table, chosen))
        return rows.num_rows

    def _where(self, dataset: str, table, chosen: Chosen):
        """The change's rows as a pyiceberg expression: the selection (on a retry within the
        selected keys' range: a row another writer appended after the read has a key past it),
        or the keys themselves where the selection has no expression.  A list of every key would do, but
        pyiceberg binds each literal again for every file it plans (seconds per thousand keys)."""
        from pyiceberg.expressions import (
            AlwaysTrue,
            And,
            GreaterThanOrEqual,
            In,
            IsNull,
            LessThan,
            LessThanOrEqual,
            NotIn,
            Or,
        )

        pk, link, created = self._columns(dataset)
        if not chosen.expressible:
            return In(pk, chosen.keys.to_pylist())
        selection = chosen.selection
        parts = (
            [GreaterThanOrEqual(pk, chosen.key_range[0]), LessThanOrEqual(pk, chosen.key_range[1])]
            if chosen.bounded
            else []
        )
        if selection.subjects is not None:
            parts.append(In(link, _typed(table, link, chosen.values["subjects"])))
        if selection.exclude_subjects and link:
            parts.append(Or(IsNull(link), NotIn(link, _typed(table, link, chosen.values["excluded"]))))
        if selection.keys is not None:
            parts.append(In(pk, _typed(table, pk, selection.keys)))
        if created is not None:
            at = _instant(table, created)
            if selection.older_than is not None:
                parts.append(LessThan(created, at(selection.older_than)))
            if selection.created_within is not None:
                parts.append(GreaterThanOrEqual(created, at(selection.created_within[0])))
                parts.append(LessThanOrEqual(created, at(selection.created_within[1])))
            for start, until in selection.created_not_in:
                outside = [LessThan(created, at(start))] if start is not None else []
                outside += [GreaterThanOrEqual(created, at(until))] if until is not None else []
                parts.append(Or(*outside) if len(outside) > 1 else outside[0])
        return And(*parts) if len(parts) > 1 else (parts[0] if parts else AlwaysTrue())

    # ---------------------------------------------------------------- purge

    def purge(self, dataset: str, *, deleted_at: datetime, at: datetime, committed_by: datetime | None = None) -> Purge:
        """Expire snapshots older than ``at - purge_after`` (the current one stays) and remove
        the files no remaining snapshot references, once ``deleted_at + purge_after`` is past.
        Snapshots and files are judged by the run's time (``committed_by`` is not used)."""
        after = self.spec.purge_after
        due = after.after(aware_utc(deleted_at))
        if aware_utc(at) < due:
            return Purge(dataset, due, False)
        cutoff = after.before(aware_utc(at))
        with self._failures(dataset, "purge"):
            table = self.table(dataset)
            current = table.current_snapshot()
            old = [
                s.snapshot_id
                for s in table.snapshots()
                if s.timestamp_ms < cutoff.timestamp() * 1000
                and (current is None or s.snapshot_id != current.snapshot_id)
            ]
            if old:
                table.maintenance.expire_snapshots().by_ids(old).commit()
                table = self.table(dataset)
            kept = self._referenced(table)
            orphans = [
                f
                for f in self.storage.files(table.location())
                if f.path not in kept and f.path.endswith((".parquet", ".avro")) and f.modified < cutoff
            ]
            self.storage.remove([f.path for f in orphans])
        return Purge(dataset, due, True, len(old), len(orphans), sum(f.size for f in orphans))

    def _referenced(self, table) -> set[str]:
        """Every manifest list, manifest and data or delete file a remaining snapshot names."""
        io, found = table.io, set()
        for snapshot in table.snapshots():
            found.add(self.storage.path(snapshot.manifest_list))
            for manifest in snapshot.manifests(io):
                found.add(self.storage.path(manifest.manifest_path))
                for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
                    found.add(self.storage.path(entry.data_file.file_path))
        return found


def _summary(table, key: str) -> int:
    """A count the table's current snapshot (the commit just made) keeps in its summary."""
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.additional_properties.get(key, 0))


def _instant(table, column: str):
    """A datetime as the literal a timestamp (or date) column compares with."""
    from lifecycle.stores.lake.arrow import scalar

    kind = table.schema().as_arrow().field(column).type
    return lambda when: scalar(when, kind).as_py().isoformat()


def _typed(table, column: str, values) -> list:
    """Values as the column's Python type (subject ids arrive as text)."""
    from lifecycle.stores.lake.arrow import as_type

    kind = table.schema().as_arrow().field(column).type
    return as_type(list(values), kind).to_pylist()
