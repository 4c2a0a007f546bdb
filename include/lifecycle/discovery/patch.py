"""The reviewable YAML patch the suggestion scan writes: ``datasets.<name>.fields`` entries in
catalog.yaml's own form, each with its evidence in a comment, and new datasets for tables the
catalog does not have.  Never catalog.yaml itself: a person reviews and copies."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import yaml

from lifecycle.discovery.coverage import ColumnVerdict, Coverage

HEADER = """\
# Suggested classifications for catalog.yaml, from `python -m lifecycle scan --suggest`
# ({as_of}; at most {size} sampled rows per table).  Review each entry, then copy what is
# right into catalog.yaml: this file is never read by the lifecycle.  Evidence: the share of
# sampled values a detector accepted (values are never written here).
"""


def render(coverage: Coverage, categories: dict) -> str:
    """The patch as YAML text (it parses; the comments carry the evidence)."""
    lines = [HEADER.format(as_of=coverage.as_of.isoformat(), size=coverage.sample_size)]
    new = sorted({c.category for c in coverage.columns if c.category and c.category not in categories})
    if new:
        lines.append("categories:                 # categories the suggestions use that catalog.yaml lacks")
        lines += [f"  {name}: {{title: {name.replace('_', ' ').capitalize()}}}" for name in new]
    by_dataset: dict[tuple, list[ColumnVerdict]] = defaultdict(list)
    for column in coverage.columns:
        by_dataset[
            (column.dataset or _new_name(column.table), column.dataset is None, column.system, column.table)
        ].append(column)
    if by_dataset:
        lines.append("datasets:")
    for (name, new_table, system, table), columns in sorted(by_dataset.items()):
        lines.append(f"  {name}:")
        if new_table:
            lines.append(f"    # table {table} is not in the catalog: name its primary_key, subject link and created")
            lines += [f"    system: {system}", f"    table: {table}"]
        lines.append("    fields:")
        lines += [_field_line(c) for c in columns]
    return "\n".join(lines) + "\n"


def _field_line(column: ColumnVerdict) -> str:
    if column.verdict.kind is None:
        entry, note = {"personal": False}, column.verdict.evidence()
    else:
        entry = {"category": column.category}
        if column.anonymize is not None:
            entry["anonymize"] = column.anonymize
        note = column.verdict.evidence() + ("" if column.anonymize is not None else "; no strategy fits the column")
        if column.flagged:
            note = "FLAGGED: marked personal: false, looks personal; " + note
    flow = yaml.safe_dump(entry, default_flow_style=True, width=1000, sort_keys=False).strip()
    return f"      {_key(column.column)}: {flow}  # {note}"


def _key(name: str) -> str:
    return yaml.safe_dump(name, default_style=None).strip().removesuffix("...").strip()


def _new_name(table: str) -> str:
    return table.replace(".", "_").lower()


def write(coverage: Coverage, categories: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(coverage, categories), encoding="utf-8")
    return path
