"""Compare the catalog with the live schema of every SQL system.

Every table of a SQL system must be a dataset (``personal: false`` if it
holds nothing personal); every column of a personal table must be
classified, structural, or marked ``personal: false`` (a ``personal: false``
table's other columns are listed for information, not as findings); every
column the catalog names must exist; every anonymization strategy must fit
its column; ``primary_key`` must be one unique, non-null column, since the
engine works in ranges of it; every column named as a time must hold times
the lifecycle can compare (``stores.sql.times``); a subject link cancellation
erasure clears (``on_anonymize.link: clear``) must allow NULL; and no foreign key from a
table the lifecycle does not erase (uncataloged or ``personal: false``) may
point at a personal table unless its ``ON DELETE`` lets the row go (those
that do are listed as notes: the database removes or unlinks those rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from lifecycle import anonymize
from lifecycle.catalog import Catalog
from lifecycle.stores.sql import fits
from lifecycle.stores.sql.inbound import Inbound, inbound_keys
from lifecycle.stores.sql.sampling import attached_partitions as _attached_partitions
from lifecycle.stores.sql.times import kind_problem


@dataclass(frozen=True)
class Finding:
    system: str
    table: str
    column: str | None
    message: str
    about: str | None = None  # the cataloged table a finding on another table is about (a foreign key onto it)

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


@dataclass(frozen=True)
class Handled:
    """A foreign key from a table the lifecycle does not erase whose ``ON DELETE`` lets rows go."""

    system: str
    key: Inbound

    def __str__(self) -> str:
        effect = "deleted with it" if self.key.on_delete == "CASCADE" else "unlinked (set to NULL)"
        return (
            f"{self.system}: {self.key} ON DELETE {self.key.on_delete}: rows of {self.key.table} pointing "
            f"at a deleted {self.key.dataset} row are {effect} by the database"
        )


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


def scan_system(
    catalog: Catalog,
    system: str,
    engine: sa.Engine,
    times: dict[str, dict[str, str]] | None = None,
    cleared: dict[str, str] | None = None,
) -> Report:
    """``times``: time columns other files name (dataset -> column -> where it is named);
    ``cleared``: subject links cancellation erasure sets to NULL (dataset -> column)."""
    inspector = sa.inspect(engine)
    datasets = {catalog.dataset(n).table: n for n in catalog.table_datasets if catalog.dataset(n).system == system}
    schemas = {table.rpartition(".")[0] or None for table in datasets}
    report = Report()
    live: dict[str, dict[str, dict]] = {}
    for schema in schemas | {None}:
        for table in inspector.get_table_names(schema=schema):
            qualified = f"{schema}.{table}" if schema else table
            live[qualified] = {c["name"]: c for c in inspector.get_columns(table, schema=schema)}
    partitions = _attached_partitions(engine, inspector)
    for table in sorted(set(live) - set(datasets) - partitions):
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
        report.findings.extend(_time_findings(catalog, system, table, dataset, live[table], engine, times or {}))
        column = (cleared or {}).get(dataset)
        if column in live[table] and not live[table][column].get("nullable", True):
            report.findings.append(Finding(system, table, column, _NOT_NULL_LINK.format(dataset=dataset)))
    _inbound(catalog, system, engine, frozenset(partitions), report)
    return report


def time_columns(config) -> dict[str, dict[str, str]]:
    """Time columns named outside catalog.yaml (the requests tables), by dataset."""
    found: dict[str, dict[str, str]] = {}
    if config.cancellation is not None:
        req = config.cancellation.requests
        for key in ("requested_at", "withdrawn_at"):
            if getattr(req, key):
                found.setdefault(req.dataset, {})[getattr(req, key)] = f"cancellation.yaml: requests.{key}"
    if config.requests is not None and config.requests.intake is not None:
        table = config.requests.intake.requests
        found.setdefault(table.dataset, {})[table.requested_at] = "requests.yaml: intake.requests.requested_at"
    return found


_NOT_NULL_LINK = (
    "cancellation erasure anonymizes {dataset!r} and clears this subject link (datasets.{dataset}."
    "on_anonymize.link: clear, the default), but the column is NOT NULL: make it nullable, keep the "
    "link (on_anonymize: {{link: keep}}), or delete the dataset (cancellation.yaml: overrides)"
)


def cleared_links(config) -> dict[str, str]:
    """Subject link columns cancellation erasure sets to NULL, by dataset."""
    from lifecycle.config.erasure_actions import anonymized_link, cancellation_actions

    if config.cancellation is None:
        return {}
    catalog = config.catalog
    return {
        name: catalog.dataset(name).subject.column
        for name, action in cancellation_actions(catalog, config.cancellation).items()
        if action == "anonymize" and catalog.dataset(name).subject and anonymized_link(catalog, name) == "clear"
    }


def _time_findings(
    catalog: Catalog, system: str, table: str, dataset: str, columns: dict[str, dict], engine, times: dict
) -> list[Finding]:
    """Every column named as a time must be a date/time type, or a number declared in ``times``."""
    ds = catalog.dataset(dataset)
    named = {ds.created: f"datasets.{dataset}.created"} if ds.created else {}
    if ds.consent:
        named |= {getattr(ds.consent, k): f"datasets.{dataset}.consent.{k}" for k in ("granted", "withdrawn")}
    named |= {c: f"datasets.{dataset}.times.{c}" for c in ds.times} | times.get(dataset, {})
    findings = []
    for column, where in sorted((c, w) for c, w in named.items() if c and c in columns):
        problem = kind_problem(columns[column]["type"], ds.times.get(column), engine.dialect.name)
        if problem:
            findings.append(Finding(system, table, column, f"named as a time by {where}, but {problem}"))
    return findings


def _inbound(catalog: Catalog, system: str, engine, partitions: frozenset[str], report: Report) -> None:
    """Foreign keys onto personal tables from tables the lifecycle does not erase: a delete of a
    row they point at would fail, unless the key's ``ON DELETE`` lets the row go (a note)."""
    erased = {catalog.dataset(n).table for n in catalog.table_datasets if catalog.dataset(n).personal}
    for key in inbound_keys(engine, catalog, system, skip=partitions):
        if key.table in erased or not catalog.dataset(key.dataset).personal:
            continue
        if key.lets_go:
            report.notes.append(Handled(system, key))
            continue
        known = next((n for n in catalog.table_datasets if catalog.dataset(n).table == key.table), None)
        why = f"dataset {known!r} is personal: false" if known else "the table is not in the catalog"
        action = (
            "ON DELETE SET NULL on a NOT NULL column" if key.on_delete == "SET NULL" else f"ON DELETE {key.on_delete}"
        )
        message = (
            f"foreign key {key} ({action}) points at rows the lifecycle deletes, from a table it does not "
            f"erase ({why}): deleting them would fail. Catalog {key.table} as a personal dataset with a "
            f"subject link (subject: <column> -> <dataset>.<column>), or declare the key ON DELETE CASCADE "
            "(or SET NULL on nullable columns) if the database may remove or unlink those rows"
        )
        report.findings.append(Finding(system, key.table, ", ".join(key.columns), message, about=key.dataset))


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
    if inspector is not None:  # lake tables have no key constraints to read
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


def scan_lake(catalog: Catalog, system: str, store) -> Report:
    """A lake system's tables (the store's ``describe``): the same column findings as SQL's."""
    report = Report()
    for dataset in (n for n in catalog.table_datasets if catalog.dataset(n).system == system):
        table, columns = catalog.dataset(dataset).table, store.describe(dataset)
        if columns is None:
            report.findings.append(
                Finding(system, table, None, f"dataset {dataset!r} names a table that does not exist")
            )
        else:
            _scan_table(catalog, system, table, dataset, columns, None, report)
    return report


def scan_report(
    catalog: Catalog,
    engines: dict[str, sa.Engine] | None = None,
    stores=None,
    *,
    times: dict[str, dict[str, str]] | None = None,
    cleared: dict[str, str] | None = None,
) -> Report:
    """Findings and notes for every SQL and lake system holding datasets (engines and stores
    from connections unless given); ``times``: time columns named outside catalog.yaml
    (``time_columns``); ``cleared``: links cancellation erasure clears (``cleared_links``)."""
    from lifecycle.connections import sql_engine
    from lifecycle.stores import Stores

    report = Report()
    systems = sorted({catalog.dataset(n).system for n in catalog.table_datasets})
    for system in systems:
        if catalog.systems[system].type != "sql":
            found = scan_lake(catalog, system, (stores or Stores(catalog))(system))
            report.findings += found.findings
            continue
        engine = (engines or {}).get(system) or sql_engine(catalog.systems[system].conn_id)
        found = scan_system(catalog, system, engine, times, cleared)
        report.findings += found.findings
        report.notes += found.notes
    return report


def scan(
    catalog: Catalog, engines: dict[str, sa.Engine] | None = None, *, times: dict[str, dict[str, str]] | None = None
) -> list[Finding]:
    """The findings alone: what must be fixed before a run may change anything."""
    return scan_report(catalog, engines, times=times).findings


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
