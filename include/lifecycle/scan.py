"""Compare the catalog with the live schema of every SQL system.

Every table of a SQL system must be a dataset (``personal: false`` if it
holds nothing personal); every column of a cataloged table must be
classified, structural, or marked ``personal: false``; every column the
catalog names must exist; every anonymization strategy must fit its column.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from lifecycle import anonymize
from lifecycle.catalog import Catalog


@dataclass(frozen=True)
class Finding:
    system: str
    table: str
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{self.system}: {where}: {self.message}"


def named_columns(catalog: Catalog, dataset: str) -> dict[str, str]:
    """Every column the catalog names for a dataset, with the key that names it."""
    ds = catalog.dataset(dataset)
    named = {column: f"fields.{column}" for column in ds.fields}
    for column, key in ((ds.primary_key, "primary_key"), (ds.created, "created")):
        if column:
            named[column] = key
    if ds.subject:
        named[ds.subject.column] = "subject"
    if ds.consent:
        for key in ("purpose", "granted", "withdrawn"):
            if getattr(ds.consent, key):
                named[getattr(ds.consent, key)] = f"consent.{key}"
    if dataset == catalog.subject.dataset:
        named[catalog.subject.key] = "subject.key"
        for key, column in catalog.subject.contact.model_dump().items():
            if column:
                named.setdefault(column, f"subject.contact.{key}")
    return named


def scan_system(catalog: Catalog, system: str, engine: sa.Engine) -> list[Finding]:
    inspector = sa.inspect(engine)
    datasets = {catalog.dataset(n).table: n for n in catalog.table_datasets if catalog.dataset(n).system == system}
    schemas = {table.rpartition(".")[0] or None for table in datasets}
    findings: list[Finding] = []
    live: dict[str, dict[str, dict]] = {}
    for schema in schemas | {None}:
        for table in inspector.get_table_names(schema=schema):
            qualified = f"{schema}.{table}" if schema else table
            live[qualified] = {c["name"]: c for c in inspector.get_columns(table, schema=schema)}
    for table in sorted(set(live) - set(datasets)):
        findings.append(Finding(system, table, None, "table is not in the catalog; add it as a dataset (personal: false if it holds nothing personal)"))
    for table, dataset in sorted(datasets.items()):
        if table not in live:
            findings.append(Finding(system, table, None, f"dataset {dataset!r} names a table that does not exist"))
            continue
        columns = live[table]
        named = named_columns(catalog, dataset)
        for column, key in sorted(named.items()):
            if column not in columns:
                findings.append(Finding(system, table, column, f"named by datasets.{dataset}.{key} but not in the table"))
        for column in sorted(set(columns) - set(named)):
            findings.append(Finding(system, table, column, f"not classified; add it to datasets.{dataset}.fields with a category or personal: false"))
        for field in catalog.personal_fields(dataset):
            spec = field.spec.anonymize
            if spec and field.column in columns:
                strategy = anonymize.STRATEGIES.get(spec.strategy)
                if strategy and not strategy.fits(columns[field.column]["type"]):
                    findings.append(Finding(system, table, field.column,
                                            f"anonymize {spec.strategy} needs {strategy.describe_fit()}, the column is {columns[field.column]['type']}"))
                if strategy and spec.strategy == "null" and not columns[field.column].get("nullable", True):
                    findings.append(Finding(system, table, field.column, "anonymize null on a NOT NULL column"))
    return findings


def scan(catalog: Catalog, engines: dict[str, sa.Engine] | None = None) -> list[Finding]:
    """Findings for every SQL system holding datasets (engines from connections unless given)."""
    from lifecycle.connections import sql_engine

    findings: list[Finding] = []
    systems = sorted({catalog.dataset(n).system for n in catalog.table_datasets})
    for system in systems:
        engine = (engines or {}).get(system) or sql_engine(catalog.systems[system].conn_id)
        findings += scan_system(catalog, system, engine)
    return findings
