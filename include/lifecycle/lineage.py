"""Lineage: the catalog's datasets as Airflow Assets, and the asset events a run's changes emit.

Every catalog dataset is one Asset named ``lifecycle.<dataset>``, with a URI
that names its system and table (``asset_uri``).  A DAG declares, on each task
that changes data, one ``AssetAlias`` per dataset the task may change
(``outlets``); the task emits an event only for the datasets it changed in
this run (``emit``), through the dataset's alias, with counts as the event's
extra: rows deleted or anonymized, object versions deleted, keys left empty,
items Object Lock kept.  Never a value, a key or a person's id.  An Asset
declared as a plain outlet would get an event on every success of its task,
changed or not; the alias is Airflow's way to name at run time which ones did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import Asset, AssetAlias

from lifecycle.catalog import Catalog
from lifecycle.config import Config

if TYPE_CHECKING:
    from lifecycle.state.ledger import Ledger

# Airflow leaves URIs whose scheme starts with ``x-`` to their owner; SQL and lake tables are
# named by the catalog's system (the host lives in its Airflow connection), objects by bucket.
SCHEMES = {"sql": "x-lifecycle-sql", "iceberg": "x-lifecycle-iceberg", "delta": "x-lifecycle-delta"}
COUNTS = ("rows_deleted", "rows_anonymized", "versions_deleted", "objects_removed", "locked")


def asset_name(dataset: str) -> str:
    return f"lifecycle.{dataset}"


def asset_uri(catalog: Catalog, dataset: str) -> str:
    """``s3://<bucket>/<prefix before any placeholder, without its last slash>`` for objects;
    ``x-lifecycle-<type>://<system>/<table>`` for tables (a dotted table name, schema or
    namespace first, becomes path segments; a Delta table is its path)."""
    spec, system = catalog.dataset(dataset), catalog.system_of(dataset)
    if not spec.is_table:
        prefix = catalog.static_prefix(dataset).strip("/")
        return f"s3://{system.bucket}/{quote(prefix)}"  # the bucket itself: s3://<bucket>/, as Airflow writes it
    parts = [spec.table] if system.type == "delta" else spec.table.split(".")
    path = "/".join(quote(p.strip("/")) for p in parts)
    return f"{SCHEMES[system.type]}://{quote(spec.system)}/{path}"


def asset(catalog: Catalog, dataset: str) -> Asset:
    system = catalog.system_of(dataset)
    return Asset(
        name=asset_name(dataset),
        uri=asset_uri(catalog, dataset),
        group="lifecycle",
        extra={"system": catalog.dataset(dataset).system, "type": system.type},
    )


def alias(dataset: str) -> AssetAlias:
    return AssetAlias(name=f"lifecycle.{dataset}.changes", group="lifecycle")


def outlets(datasets) -> list[AssetAlias]:
    """A task's outlets: the alias of each dataset it may change."""
    return [alias(d) for d in sorted(set(datasets))]


def retention_datasets(config: Config, system: str | None = None) -> list[str]:
    """The datasets a retention rule covers (of one system: an apply task's)."""
    catalog = config.catalog
    names = {
        d
        for rule in config.retention.rules
        for d in catalog.rule_targets(rule.applies_to.categories, rule.applies_to.datasets, rule.action)
    }
    return sorted(n for n in names if system is None or catalog.dataset(n).system == system)


def personal_datasets(catalog: Catalog) -> list[str]:
    """The datasets an erasure may change, a cancellation's or a person's request: every personal one
    (``erasure.steps`` and ``rights.erase`` take theirs from these)."""
    return sorted(n for n, d in catalog.datasets.items() if d.personal)


def retention_changes(catalog: Catalog, applied: dict) -> dict[str, dict]:
    """An apply unit's outcome (``Applied.to_json()``) as the changes it made: ``{dataset: counts}``,
    empty when the unit changed nothing."""
    rows, objects = applied.get("rows", 0), applied.get("objects", 0)
    if not catalog.dataset(applied["dataset"]).is_table:  # rows are object versions and markers
        counts = {"versions_deleted": rows, "objects_removed": objects, "locked": applied.get("locked", 0)}
    else:
        counts = {_rows_key(applied["action"]): rows}
    return _changed({applied["dataset"]: {"action": applied["action"], **counts}})


def erasure_changes(ledger: Ledger, batch: str) -> dict[str, dict]:
    """What a batch's steps changed, from their *done* records in the ledger (so a rerun
    of a killed batch reports the whole batch's changes): ``{dataset: counts}``."""
    from lifecycle.erasure.records import StepDone, batch_entries  # at run time: the DAG files parse without it

    changes = {}
    for entry in batch_entries(ledger, batch).values():
        if entry.kind != "erasure.done":
            continue
        done = StepDone.of(entry)
        if done.versions is not None:
            locked = sum(len(kept) for kept in done.locked.values())
            counts = {"versions_deleted": done.versions, "locked": locked}
        else:
            counts = {_rows_key(done.action): done.rows or 0}
        changes[done.dataset] = {"action": done.action, **counts}
    return _changed(changes)


def request_changes(ledger: Ledger, request_id: str) -> dict[str, dict]:
    """What an erasure request changed: its steps are those of batch ``request:<id>``
    (``rights.erase.batch_of``); other kinds of request record none."""
    return erasure_changes(ledger, f"request:{request_id}")


def _rows_key(action: str) -> str:
    return "rows_anonymized" if action == "anonymize" else "rows_deleted"


def _changed(changes: dict[str, dict]) -> dict[str, dict]:
    """Only the datasets something happened to (a count above zero)."""
    return {d: c for d, c in changes.items() if any(c.get(k) for k in COUNTS)}


def add_events(outlet_events, catalog: Catalog, changes: dict[str, dict]) -> None:
    """One asset event per changed dataset, through its alias, the counts as its extra."""
    for dataset, counts in sorted(changes.items()):
        extra = {k: v for k, v in counts.items() if k == "action" or k in COUNTS}
        outlet_events[alias(dataset)].add(asset(catalog, dataset), extra=extra)


def emit(catalog: Catalog, changes: dict[str, dict]) -> None:
    """``add_events`` on the running task's outlet events."""
    from airflow.sdk import get_current_context

    add_events(get_current_context()["outlet_events"], catalog, changes)
