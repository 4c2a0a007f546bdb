"""The ``Sampling`` ability: the live tables of a system and a bounded sample of their columns
(discovery).  Read-only; the values go back to the caller and are never logged."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from lifecycle import anonymize
from lifecycle.stores.contract import LiveColumn, LiveKeys
from lifecycle.stores.sql.strategies import fits


class TableSampling:
    """``live_tables`` and ``sample`` of ``SqlStore``."""

    def live_tables(self, schemas: Iterable[str] = ()) -> dict[str, list[LiveColumn]]:
        with self._failures(None, "list the live tables"):
            inspector = sa.inspect(self.engine)
            skip = attached_partitions(self.engine, inspector)
            found: dict[str, list[LiveColumn]] = {}
            for schema in [None, *sorted(set(schemas) - {""})]:
                for table in inspector.get_table_names(schema=schema):
                    qualified = f"{schema}.{table}" if schema else table
                    if qualified not in skip:
                        found[qualified] = [_live(c) for c in inspector.get_columns(table, schema=schema)]
            return found

    def live_keys(self, tables: Iterable[str]) -> dict[str, LiveKeys]:
        with self._failures(None, "read the live keys"):
            inspector = sa.inspect(self.engine)
            found = {}
            for table in tables:
                schema, _, name = table.rpartition(".")
                primary = inspector.get_pk_constraint(name, schema=schema or None).get("constrained_columns") or ()
                foreign = tuple(
                    (
                        tuple(fk["constrained_columns"]),
                        f"{fk['referred_schema']}.{fk['referred_table']}"
                        if fk.get("referred_schema")
                        else fk["referred_table"],
                        tuple(fk["referred_columns"]),
                    )
                    for fk in inspector.get_foreign_keys(name, schema=schema or None)
                )
                found[table] = LiveKeys(tuple(primary), foreign)
            return found

    def sample(self, table: str, columns: list[str], size: int) -> dict[str, list]:
        schema, _, name = table.rpartition(".")
        source = sa.table(name, *(sa.column(c) for c in columns), schema=schema or None)
        query = sa.select(*source.c).limit(size)
        values: dict[str, list] = {c: [] for c in columns}
        lists = [values[c] for c in columns]
        with self._connect(None, f"sample {len(columns)} column(s) of {table}") as conn:
            for row in conn.execute(query):
                for found, value in zip(lists, row, strict=True):
                    if value is not None:
                        found.append(value)
        return values


def _live(column: dict) -> LiveColumn:
    kind = column["type"]
    fitting = tuple(name for name, s in anonymize.STRATEGIES.items() if fits(kind, s.fits))
    return LiveColumn(column["name"], str(kind), fitting, bool(column.get("nullable", True)))


def attached_partitions(engine: sa.Engine, inspector) -> set[str]:
    """PostgreSQL lists a partitioned table's partitions as tables: they are its rows, cataloged
    with it.  A partition detached and left behind is a table of its own again, and a finding."""
    if engine.dialect.name != "postgresql":
        return set()
    default = inspector.default_schema_name
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relispartition"
            )
        ).all()
    return {name if schema == default else f"{schema}.{name}" for schema, name in rows}
