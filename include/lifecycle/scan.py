"""Compare the catalog with the live schema of every SQL system.

Every table of a SQL system must be a dataset (``personal: false`` if it
holds nothing personal); every column of a personal table must be
classified, structural, or marked ``personal: false`` (a ``personal: false``
table's other columns are listed for information, not as findings); every
column the catalog names must exist; every anonymization strategy must fit
its column; ``primary_key`` must be one unique, non-null column, since the
engine works in ranges of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from lifecycle import anonymize
from lifecycle.catalog import Catalog
from lifecycle.stores.sql import fits
from lifecycle.stores.sql.sampling import attached_partitions as _attached_partitions


@dataclass(frozen=True)
class Finding:
    system: str
    table: str
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{self.system}: {where}: {self.message}"


@dataclass(frozen=True)
class Note:
    """Columns of a ``personal: false`` table the catalog does not name: for the reader, not a finding."""

    system: str
    table: str
    columns: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.system}: {self.table}: personal: false; columns not classified (informational): {', '.join(self.columns)}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


def scan_system(catalog: Catalog, system: str, engine: sa.Engine) -> Report:
    inspector = sa.inspect(engine)
    datasets = {catalog.dataset(n).table: n for n in catalog.table_datasets if catalog.dataset(n).system == system}
    schemas = {table.rpartition(".")[0] or None for table in datasets}
    report = Report()
    live: dict[str, dict[str, dict]] = {}
    for schema in schemas | {None}:
        for table in inspector.get_table_names(schema=schema):
            qualified = f"{schema}.{table}" if schema else table
            live[qualified] = {c["name"]: c for c in inspector.get_columns(table, schema=schema)}
    for table in sorted(set(live) - set(datasets) - _attached_partitions(engine, inspector)):
        report.findings.append(
            Finding(
                system,
                table,
                None,
                "table is not in the catalog; add it as a dataset (personal: false if it holds nothing personal)",
            )
        )
    for table, dataset in sorted(datasets.items()):
        if table not in live:
            report.findings.append(
                Finding(system, table, None, f"dataset {dataset!r} names a table that does not exist")
            )
            continue
        _scan_table(catalog, system, table, dataset, live[table], inspector, report)
    return report


def _scan_table(
    catalog: Catalog, system: str, table: str, dataset: str, columns: dict[str, dict], inspector, report: Report
) -> None:
    named = catalog.named_columns(dataset)
    for column, key in sorted(named.items()):
        if column not in columns:
            report.findings.append(
                Finding(system, table, column, f"named by datasets.{dataset}.{key} but not in the table")
            )
    unnamed = sorted(set(columns) - set(named))
    if not catalog.dataset(dataset).personal:
        if unnamed:
            report.notes.append(Note(system, table, tuple(unnamed)))
    else:
        for column in unnamed:
            report.findings.append(
                Finding(
                    system,
                    table,
                    column,
                    f"not classified; add it to datasets.{dataset}.fields with a category or personal: false",
                )
            )
    report.findings.extend(_key_findings(catalog, system, table, dataset, columns, inspector))
    report.findings.extend(_strategy_findings(catalog, system, table, dataset, columns))


def _key_findings(
    catalog: Catalog, system: str, table: str, dataset: str, columns: dict[str, dict], inspector
) -> list[Finding]:
    """``primary_key`` must be one unique, non-null column: the engine deletes in ranges of it."""
    key = catalog.dataset(dataset).primary_key
    if key is None or key not in columns:  # keyless personal: false table; a missing column is reported above
        return []
    schema, _, name = table.rpartition(".")
    primary = tuple(inspector.get_pk_constraint(name, schema=schema or None).get("constrained_columns") or ())
    if primary == (key,):
        return []
    if (key,) in _unique_column_sets(inspector, name, schema or None):
        if columns[key].get("nullable", True):
            return [
                Finding(
                    system,
                    table,
                    key,
                    f"primary_key {key!r} allows NULL, and a row whose key is NULL is in no "
                    "key range: make the column NOT NULL or name another",
                )
            ]
        return []
    if len(primary) == 2 and set(primary) == {key, catalog.dataset(dataset).created}:
        # a partitioned table's key must hold its partition column (PostgreSQL, MariaDB): the
        # engine ranges over the key alone, which the application keeps unique
        if columns[key].get("nullable", True):
            return [Finding(system, table, key, f"primary_key {key!r} allows NULL: make the column NOT NULL")]
        return []
    if len(primary) > 1:
        return [
            Finding(
                system,
                table,
                None,
                f"primary key is ({', '.join(primary)}): composite keys are not supported; "
                f"add a single-column unique key (a surrogate id) and name it as datasets.{dataset}.primary_key",
            )
        ]
    return [
        Finding(
            system,
            table,
            None,
            f"primary_key {key!r} is not unique in the table; "
            f"name the primary key column or a unique column as datasets.{dataset}.primary_key",
        )
    ]


def _unique_column_sets(inspector, table: str, schema: str | None) -> set[tuple[str, ...]]:
    """Columns of every unique constraint and full (not partial, not expression) unique index."""
    found = {tuple(c["column_names"]) for c in inspector.get_unique_constraints(table, schema=schema)}
    # SQLite reflects a column's own UNIQUE only as an automatic index
    auto = {"include_auto_indexes": True} if inspector.dialect.name == "sqlite" else {}
    for index in inspector.get_indexes(table, schema=schema, **auto):
        partial = any(k.endswith("_where") and v is not None for k, v in (index.get("dialect_options") or {}).items())
        if index.get("unique") and not partial and None not in index["column_names"]:
            found.add(tuple(index["column_names"]))
    return found


def _strategy_findings(
    catalog: Catalog, system: str, table: str, dataset: str, columns: dict[str, dict]
) -> list[Finding]:
    findings = []
    for field_ in catalog.personal_fields(dataset):
        spec = field_.spec.anonymize
        if spec and field_.column in columns:
            column = columns[field_.column]
            strategy = anonymize.STRATEGIES.get(spec.strategy)
            if strategy and not fits(column["type"], strategy.fits):
                findings.append(
                    Finding(
                        system,
                        table,
                        field_.column,
                        f"anonymize {spec.strategy} needs {strategy.describe_fit()}, the column is {column['type']}",
                    )
                )
            if strategy and spec.strategy == "null" and not column.get("nullable", True):
                findings.append(Finding(system, table, field_.column, "anonymize null on a NOT NULL column"))
    return findings


def scan_report(catalog: Catalog, engines: dict[str, sa.Engine] | None = None) -> Report:
    """Findings and notes for every SQL system holding datasets (engines from connections unless given)."""
    from lifecycle.connections import sql_engine

    report = Report()
    systems = sorted({catalog.dataset(n).system for n in catalog.table_datasets})
    for system in systems:
        engine = (engines or {}).get(system) or sql_engine(catalog.systems[system].conn_id)
        found = scan_system(catalog, system, engine)
        report.findings += found.findings
        report.notes += found.notes
    return report


def scan(catalog: Catalog, engines: dict[str, sa.Engine] | None = None) -> list[Finding]:
    """The findings alone: what must be fixed before a run may change anything."""
    return scan_report(catalog, engines).findings


def column_standing(catalog: Catalog, dataset: str | None, columns: list[str]) -> dict[str, str]:
    """Each live column's standing in the catalog, by the rules ``scan`` checks: ``classified``
    (a category, or structural: key, link, created, consent, contact), ``not_personal`` (``personal:
    false``, its own or its table's) or ``unclassified`` (a personal table's unnamed column, or any
    column of a table not in the catalog)."""
    if dataset is None:
        return dict.fromkeys(columns, "unclassified")
    spec = catalog.dataset(dataset)
    named = catalog.named_columns(dataset)
    standing = {}
    for column in columns:
        field_ = spec.fields.get(column)
        if not spec.personal or (field_ is not None and not field_.personal):
            standing[column] = "not_personal" if column not in named or field_ is not None else "classified"
        else:
            standing[column] = "classified" if column in named else "unclassified"
    return standing
