"""The configuration folder ``init --from`` writes: catalog.yaml built by ``scaffold`` from the
live database; beside it every other file with its defaults and, in comments, what to edit
(``defaults``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml

from lifecycle.discovery import defaults, scaffold
from lifecycle.stores.contract import Sampling

STATE_CONN = "lifecycle_state"


def catalog_from(store: Sampling, system: str, conn_id: str, *, as_of: date, sample_size: int = 1000) -> dict:
    """catalog.yaml's content for one SQL system."""
    columns = store.live_tables()
    keys = store.live_keys(columns)
    subject = scaffold.subject_table(keys)
    linked = scaffold.links(keys, columns, subject)
    datasets = {}
    for table, cols in sorted(columns.items()):
        datasets[scaffold.dataset_name(table)] = _dataset(
            store, system, table, cols, keys[table], subject, linked.get(table), as_of, sample_size
        )
    subject_key = keys[subject].primary[0]
    fields = datasets[scaffold.dataset_name(subject)]["fields"]
    contact = {
        role: next((c for c, spec in fields.items() if _looks(c, role)), None) for role in ("email", "name", "phone")
    }
    return {
        "systems": {
            system: {"type": "sql", "conn_id": conn_id},
            "state": {"type": "sql", "conn_id": STATE_CONN},
        },
        "state": "state",
        "purposes": scaffold.PURPOSES,
        "categories": scaffold.CATEGORIES,
        "subject": {
            "dataset": scaffold.dataset_name(subject),
            "key": subject_key,
            "contact": {k: v for k, v in contact.items() if v},
        },
        "datasets": datasets,
    }


def _looks(column: str, role: str) -> bool:
    return {"email": "mail", "name": "name", "phone": "phone"}[role] in column.lower() and not column.lower().endswith(
        "_hash"
    )


def _dataset(store, system, table, cols, keys, subject, link, as_of, sample_size) -> dict:
    personal = table == subject or link is not None
    spec: dict = {"system": system, "table": table}
    if len(keys.primary) == 1:
        spec["primary_key"] = keys.primary[0]
    elif personal:
        personal = False  # a composite key: the engine cannot range over it; the reviewer decides
        spec["description"] = "composite primary key: add a single-column key before classifying it as personal"
    if not personal:
        return spec | {"personal": False}
    structural = {keys.primary[0]}
    if link is not None:
        spec["subject"] = f"{link[0]} -> {scaffold.dataset_name(link[1])}.{link[2]}"
        structural.add(link[0])
    created = scaffold.created_column(cols)
    if created:
        spec["created"] = created
        structural.add(created)
    whole_row = None if table == subject else scaffold.table_category(table)
    if whole_row:
        spec["category"] = whole_row
    wanted = [c for c in cols if c.name not in structural]
    sample = store.sample(table, [c.name for c in wanted], sample_size) if wanted else {}
    spec["fields"] = {c.name: scaffold.classify(table, c, sample.pop(c.name), as_of, whole_row) for c in wanted}
    return spec


def write_folder(catalog: dict, folder: Path, source: str) -> list[Path]:
    """catalog.yaml and the other files (``defaults``) in ``folder`` (refused when catalog.yaml is there)."""
    target = folder / "catalog.yaml"
    if target.exists():
        raise FileExistsError(f"{target} exists: init writes a new folder, give another with --out")
    folder.mkdir(parents=True, exist_ok=True)
    header = (
        f"# catalog.yaml scaffolded by `python -m lifecycle init --from {source}` from the live schema:\n"
        "# every table and column, subject links from foreign keys and key names, classifications from\n"
        "# a bounded sample (no value is written here).  Review it: `python -m lifecycle validate`, then\n"
        "# `python -m lifecycle scan`.  Connections hold the credentials (AIRFLOW_CONN_<ID>).\n"
    )
    target.write_text(header + yaml.safe_dump(catalog, sort_keys=False, width=120), encoding="utf-8")
    return [target, *defaults.write_files(catalog, folder)]
