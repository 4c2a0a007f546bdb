"""Foreign keys and subject links onto a dataset's rows: which rows that stay keep a row."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa

from lifecycle.catalog import Catalog
from lifecycle.stores.contract import Reference, Selection
from lifecycle.stores.sql.values import split_name


class ForeignKeys:
    """The ``References`` ability of ``SqlStore``, and the predicates that keep referenced rows."""

    _references: dict[str, list[Reference]] | None = None  # by referred dataset, read on first use

    def references(self, dataset: str) -> list[Reference]:
        """Foreign keys of the system's datasets onto this dataset's table (live schema, read once)."""
        if self._references is None:
            with self._failures(dataset, "read the foreign keys"):
                found = read_references(self.engine, self.catalog, self.system)
            self._references = found
        return self._references.get(dataset, [])

    def referenced(self, dataset: str, selection: Selection, reference: Reference) -> int:
        """Selected rows that rows of ``reference.dataset`` which stay still point at
        (rows of that dataset in ``selection.going_with`` go in the same run; through
        ``ON DELETE SET NULL``, held rows only)."""
        parent = self.table(dataset)
        child = self.table(reference.dataset).alias()
        base = replace(selection, kept_if_referenced=False)
        query = (
            sa.select(sa.func.count())
            .select_from(parent)
            .where(
                self._where(dataset, base, parent),
                sa.exists(
                    sa.select(sa.literal(1))
                    .select_from(child)
                    .where(self._staying(reference, parent, child, selection))
                ),
            )
        )
        with self._connect(dataset, f"count rows referenced by {reference.dataset}") as conn:
            return conn.execute(query).scalar_one()

    def _unreferenced(self, dataset: str, selection: Selection, source) -> list[sa.ColumnElement]:
        """``kept_if_referenced``: no row that stays points at the ``source`` row and keeps it."""
        clauses = []
        held = dict(selection.held)
        for reference in self.references(dataset):
            if reference.protects or held.get(reference.dataset):
                child = self.table(reference.dataset).alias()
                staying = self._staying(reference, source, child, selection)
                clauses.append(sa.not_(sa.exists(sa.select(sa.literal(1)).select_from(child).where(staying))))
        return clauses

    def _staying(self, reference: Reference, parent, child, selection: Selection) -> sa.ColumnElement:
        """Rows of ``child`` that point at the ``parent`` row and keep it: rows that do not go in
        this run, or, where the foreign key would only set their link to NULL, held rows."""
        link = sa.and_(*(child.c[c] == parent.c[r] for c, r in zip(reference.columns, reference.referred)))
        if not reference.protects:
            held = dict(selection.held).get(reference.dataset, ())
            return sa.and_(link, self._owned(reference.dataset, held, self._link_of(reference.dataset, child)))
        going = dict(selection.going_with).get(reference.dataset)
        if going is None:
            return link
        return sa.and_(link, sa.not_(self._where(reference.dataset, going, child)))


def read_references(engine: sa.Engine, catalog: Catalog, system: str) -> dict[str, list[Reference]]:
    """By referred dataset: the declared foreign keys among ``system``'s datasets, then the
    catalog's subject links (a declared key that is one becomes the link, keeping its ``ON DELETE``)."""
    mine = [n for n in catalog.table_datasets if catalog.dataset(n).system == system]
    found = _declared(engine, catalog, mine)
    for name in mine:
        link = catalog.dataset(name).subject
        if link is None or link.dataset not in mine:
            continue
        columns, referred = (link.column,), (link.target_column,)
        known = [
            r for r in found.get(link.dataset, []) if (r.dataset, r.columns, r.referred) == (name, columns, referred)
        ]
        declared = known[0].on_delete if known else "NONE"
        found[link.dataset] = [r for r in found.get(link.dataset, []) if r not in known] + [
            Reference(name, columns, referred, declared, link=True)
        ]
    return found


def _declared(engine: sa.Engine, catalog: Catalog, mine: list[str]) -> dict[str, list[Reference]]:
    """Foreign keys the live schema declares between the datasets ``mine``, by referred dataset."""
    inspector = sa.inspect(engine)
    default = inspector.default_schema_name
    fold = str.lower if engine.dialect.name == "sqlite" else (lambda s: s)

    def place(schema: str | None, table: str) -> tuple[str, str]:
        return fold(schema or default or ""), fold(table)

    by_table = {place(*split_name(catalog.dataset(n).table)): n for n in mine}
    found: dict[str, list[Reference]] = {}
    for name in mine:
        schema, table = split_name(catalog.dataset(name).table)
        try:
            keys = inspector.get_foreign_keys(table, schema=schema)
        except sa.exc.NoSuchTableError:
            continue  # scan names the missing table
        for fk in keys:
            referred = fk["referred_table"]
            parent = (
                by_table.get(place(fk.get("referred_schema"), referred))
                if fk.get("referred_schema")
                else by_table.get(place(schema, referred)) or by_table.get(place(None, referred))
            )
            if parent is None:
                continue
            on_delete = ((fk.get("options") or {}).get("ondelete") or "NO ACTION").upper()
            found.setdefault(parent, []).append(
                Reference(name, tuple(fk["constrained_columns"]), tuple(fk["referred_columns"]), on_delete)
            )
    return found
