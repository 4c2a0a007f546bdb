"""Checks a run makes before it may change anything, and that ``lifecycle_checks`` runs.

Each returns counts for XCom and the log, and raises ``LifecycleError`` with
the findings listed when the world does not match the catalog.  Findings name
tables and columns only, never values.
"""

from __future__ import annotations

import logging

from lifecycle.config import Config
from lifecycle.errors import LifecycleError
from lifecycle.scan import Handled, cleared_links, scan_report, time_columns

log = logging.getLogger(__name__)


def config_summary(config: Config) -> dict:
    catalog = config.catalog
    return {
        "systems": len(catalog.systems),
        "table_datasets": len(catalog.table_datasets),
        "object_datasets": len(catalog.object_datasets),
        "retention_rules": len(config.retention.rules),
        "recipients": len(config.recipients.recipients),
        "cancellation": config.cancellation is not None,
        "incidents": config.incidents is not None,
        "requests": config.requests is not None,
    }


def schema_matches(config: Config, datasets: list[str] | None = None, *, deleting: bool = True) -> dict:
    """Scan the SQL systems; with ``datasets``, only findings about their tables (or about foreign
    keys onto them) count; a run that deletes nothing (``deleting=False``) is not stopped by foreign
    keys that would stop a delete.  Foreign keys whose ``ON DELETE`` lets rows go are logged and returned."""
    catalog = config.catalog
    report = scan_report(catalog, times=time_columns(config), cleared=cleared_links(config))
    findings = [f for f in report.findings if deleting or not f.about]
    if datasets is not None:
        tables = {catalog.dataset(d).table for d in datasets if catalog.dataset(d).is_table}
        findings = [f for f in findings if f.table in tables or (f.about and catalog.dataset(f.about).table in tables)]
    handled = [str(n) for n in report.notes if isinstance(n, Handled)]
    for note in handled:
        log.info("scan: %s", note)
    for finding in findings:
        log.error("scan: %s", finding)
    if findings:
        raise LifecycleError(
            f"the live schema does not match catalog.yaml ({len(findings)} finding(s)); nothing was changed. "
            "Run `python -m lifecycle scan` and classify or fix the columns listed above."
        )
    checked = datasets if datasets is not None else catalog.table_datasets
    log.info("scan: %d table dataset(s) match the catalog", len(checked))
    return {"datasets_checked": len(checked), "findings": 0, "handled_by_the_database": handled}


def ledger_intact(state) -> dict:
    result = state.ledger.verify()
    for problem in result.problems:
        log.error("ledger: %s", problem)
    if not result.ok:
        raise LifecycleError(f"the ledger does not verify ({len(result.problems)} problem(s)); see the log")
    log.info("ledger: %d entries, chain intact", result.entries)
    return {"entries": result.entries}
