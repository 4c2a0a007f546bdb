"""The suggestion scan as commands and checks use it: run it over the catalog's stores, write
the patch, list the verdicts, keep the result where the Privacy view reads it, and fail a check
when a column is unclassified or a ``personal: false`` column looks personal."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

from lifecycle.catalog import Catalog
from lifecycle.discovery import patch
from lifecycle.discovery.coverage import SAMPLE_SIZE, ColumnVerdict, Coverage, suggest
from lifecycle.errors import LifecycleError

log = logging.getLogger(__name__)
COVERAGE_KEY = "discovery/coverage.json"  # in the reports destination: the last check's result


def suggest_for(
    catalog: Catalog,
    *,
    as_of: date,
    sample_size: int = SAMPLE_SIZE,
    categories: list[tuple[str, str]] | None = None,
    open_store=None,
) -> Coverage:
    from lifecycle.stores import Stores

    return suggest(
        catalog,
        open_store or Stores(catalog),
        as_of=as_of,
        sample_size=sample_size,
        categories=dict(categories or ()),
    )


def default_patch_path() -> Path:
    from lifecycle.reports import var_dir

    return var_dir() / "discovery" / "catalog.patch.yaml"


def write_patch(coverage: Coverage, catalog: Catalog, path: Path | None = None) -> Path:
    return patch.write(coverage, catalog.model.categories, path or default_patch_path())


def describe(column: ColumnVerdict) -> str:
    """One line: where, its standing and the verdict (never a value)."""
    where = f"{column.system}: {column.table}.{column.column}"
    if column.flagged:
        return f"{where}: marked personal: false but looks personal ({column.verdict.evidence()})"
    proposal = f"; suggested category {column.category}" if column.suggested else ""
    return f"{where}: not classified ({column.verdict.evidence()}{proposal})"


def lines(coverage: Coverage) -> list[str]:
    shown = [describe(c) for c in coverage.columns if c.standing == "unclassified" or c.flagged]
    for system, counts in sorted(coverage.systems.items()):
        shown.append(
            f"{system}: {counts['tables']} table(s); columns classified {counts['classified']}, "
            f"personal: false {counts['not_personal']}, unclassified {counts['unclassified']}, "
            f"suggested {counts['suggested']}, flagged {counts['flagged']}"
        )
    return shown


def check(catalog: Catalog, sink, *, as_of: date, sample_size: int = SAMPLE_SIZE, open_store=None) -> dict:
    """``lifecycle_checks``: scan, keep the summary in the reports destination, fail with the list."""
    coverage = suggest_for(catalog, as_of=as_of, sample_size=sample_size, open_store=open_store)
    summary = coverage.summary()
    sink.write(COVERAGE_KEY, json.dumps(summary, indent=1).encode(), content_type="application/json")
    problems = [describe(c) for c in coverage.columns if c.standing == "unclassified" or c.flagged]
    for problem in problems:
        log.error("discovery: %s", problem)
    counts = {k: sum(s[k] for s in coverage.systems.values()) for k in ("unclassified", "suggested", "flagged")}
    if problems:
        raise LifecycleError(
            f"{counts['unclassified']} column(s) not classified and {counts['flagged']} personal: false column(s) "
            "that look personal (listed above); run `python -m lifecycle scan --suggest` and review its patch"
        )
    log.info("discovery: every column is classified; none marked personal: false looks personal")
    return {"columns_sampled": len(coverage.columns), **counts}


def last_coverage(sink) -> dict | None:
    """The last check's summary, or None when no check has run."""
    try:
        return json.loads(sink.read(COVERAGE_KEY))
    except Exception:  # not written yet (a local folder or a bucket without it)
        return None
