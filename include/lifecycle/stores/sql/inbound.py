"""Foreign keys of every table of the live schema onto the catalog's tables, cataloged or not.

A delete from a table fails (and leaves the run half done) when a row the
lifecycle does not remove still points at it and the key has no ``ON DELETE``
that lets it go.  ``inbound_keys`` reads every foreign key once (one query per
schema, ``get_multi_foreign_keys``) so ``scan`` and every run's preflight can
refuse such a key before anything changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from lifecycle.catalog import Catalog
from lifecycle.stores.sql.values import split_name

LETS_GO = ("CASCADE", "SET NULL")  # the database removes the pointing row, or clears its link


@dataclass(frozen=True)
class Inbound:
    """A foreign key of ``table`` (qualified as the catalog writes tables) onto ``dataset``'s table."""

    table: str
    columns: tuple[str, ...]
    dataset: str
    referred: tuple[str, ...]
    on_delete: str  # NO ACTION | RESTRICT | CASCADE | SET NULL | SET DEFAULT
    nullable: bool  # every referencing column allows NULL

    def __str__(self) -> str:
        return f"{self.table}({', '.join(self.columns)}) -> {self.dataset}({', '.join(self.referred)})"

    @property
    def lets_go(self) -> bool:
        """Whether deleting a referred row succeeds through the key itself (rows removed with it,
        or their link set to NULL where every link column allows NULL)."""
        return self.on_delete == "CASCADE" or (self.on_delete == "SET NULL" and self.nullable)


def inbound_keys(
    engine: sa.Engine, catalog: Catalog, system: str, *, skip: frozenset[str] = frozenset()
) -> list[Inbound]:
    """Every foreign key onto a table dataset of ``system``, from every table of the schemas its
    datasets live in (and the default one); tables in ``skip`` (attached partitions) are left out."""
    inspector = sa.inspect(engine)
    default = inspector.default_schema_name
    fold = str.lower if engine.dialect.name == "sqlite" else (lambda s: s)
    mine = {
        (fold(schema or default or ""), fold(table)): name
        for name in catalog.table_datasets
        if catalog.dataset(name).system == system
        for schema, table in [split_name(catalog.dataset(name).table)]
    }
    schemas = {schema for schema, _ in (split_name(catalog.dataset(n).table) for n in mine.values())} | {None}
    found = []
    for schema in sorted(schemas, key=lambda s: s or ""):
        keys = inspector.get_multi_foreign_keys(schema=schema)
        columns = inspector.get_multi_columns(schema=schema) if keys else {}
        for (owner_schema, table), fks in sorted(keys.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
            qualified = f"{owner_schema}.{table}" if owner_schema else table
            if qualified in skip:
                continue
            nullable = {c["name"]: c.get("nullable", True) for c in columns.get((owner_schema, table), [])}
            for fk in fks:
                referred = fold(fk["referred_table"])
                if fk.get("referred_schema"):
                    dataset = mine.get((fold(fk["referred_schema"]), referred))
                else:  # the owner's schema, else the default one
                    dataset = mine.get((fold(owner_schema or default or ""), referred)) or mine.get(
                        (fold(default or ""), referred)
                    )
                if dataset is None:
                    continue
                on_delete = ((fk.get("options") or {}).get("ondelete") or "NO ACTION").upper()
                found.append(
                    Inbound(
                        qualified,
                        tuple(fk["constrained_columns"]),
                        dataset,
                        tuple(fk["referred_columns"]),
                        on_delete,
                        all(nullable.get(c, True) for c in fk["constrained_columns"]),
                    )
                )
    return found
