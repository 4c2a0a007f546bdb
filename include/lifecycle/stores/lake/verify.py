"""Verification read from storage, and the live schema: what a purge must have removed
(``StorageVerification``) and what ``scan`` compares with the catalog (``Describing``)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from lifecycle.stores.contract import StoredRows
from lifecycle.stores.lake import arrow


class LakeVerification:
    """``stored`` and ``describe`` of ``LakeStore``."""

    def stored(
        self,
        dataset: str,
        subjects: tuple[str, ...],
        values: dict[str, str] | None = None,
        anonymized: tuple[str, ...] = (),
    ) -> StoredRows:
        """The people's rows in every data file under the table's location, live or not.
        ``values``: their link values as an earlier call resolved them ({value: subject}; two
        hops, once the rows linking them are gone).  ``anonymized``: fields their rows keep
        anonymized under the link; only rows where one does not hold its strategy's output count."""
        link = self.links.column(dataset)
        specs = {f: self.catalog.dataset(dataset).fields[f].anonymize for f in anonymized}
        with self._failures(dataset, "read every data file"):
            values = self.links.values(dataset, subjects) if values is None else values
            files = [f for f in self.storage.files(self.location(dataset)) if f.path.endswith(self.data_suffix)]
            files = [f for f in files if "/_delta_log/" not in f.path]
            found: dict[str, int] = {}
            wanted: dict[pa.DataType, pa.Array] = {}  # the people's link values, per column type met
            for f in files:
                read = self.storage.read_columns(f.path, (link, *anonymized))
                if read is None:
                    continue
                column = arrow.plain(read[link])
                if column.type not in wanted:
                    wanted[column.type] = arrow.as_type(list(values), column.type)
                theirs = pc.is_in(column, value_set=wanted[column.type])
                present = tuple(c for c in anonymized if c in read.column_names)
                if present:
                    theirs = pc.and_kleene(theirs, arrow.pending(read, present, specs))
                hits = column.filter(pc.fill_null(theirs, False))
                for value in hits.to_pylist():
                    found[values[str(value)]] = found.get(values[str(value)], 0) + 1
        return StoredRows(sum(found.values()), found, len(files), sum(f.size for f in files))

    def describe(self, dataset: str) -> dict[str, dict] | None:
        with self._failures(dataset, "read the table's schema"):
            schema = self._schema(dataset)
        if schema is None:
            return None
        return {f.name: {"name": f.name, "type": sql_type(f.type), "nullable": f.nullable} for f in schema}


def sql_type(kind: pa.DataType):
    """An Arrow type as the SQLAlchemy type ``scan`` judges strategies by."""
    import sqlalchemy as sa

    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return sa.Text()
    if pa.types.is_timestamp(kind):
        return sa.DateTime(timezone=kind.tz is not None)
    if pa.types.is_date(kind):
        return sa.Date()
    if pa.types.is_integer(kind):
        return sa.BigInteger()
    if pa.types.is_floating(kind):
        return sa.Float()
    if pa.types.is_boolean(kind):
        return sa.Boolean()
    if pa.types.is_decimal(kind):
        return sa.Numeric(kind.precision, kind.scale)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return sa.LargeBinary()
    return sa.types.NullType()
