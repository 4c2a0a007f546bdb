"""The suggestion scan: every SQL system holding datasets, every live table and column, each
column's standing in the catalog (``scan.column_standing``) and, for the unclassified and the
``personal: false`` ones, a verdict from a bounded sample read through ``Sampling``."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import date

from lifecycle.catalog import Catalog
from lifecycle.discovery.verdicts import Verdict, category_for, detectors_at, judge, strategy_for
from lifecycle.scan import column_standing
from lifecycle.stores.contract import LiveColumn, Sampling

log = logging.getLogger(__name__)
SAMPLE_SIZE = 1000
SAMPLED = ("unclassified", "not_personal")


@dataclass(frozen=True)
class ColumnVerdict:
    """One sampled column: where it is, its standing, its verdict and what to write for it."""

    system: str
    table: str
    dataset: str | None  # None: the table is not in the catalog
    column: str
    standing: str  # unclassified | not_personal
    verdict: Verdict
    category: str | None = None
    anonymize: object = None  # a strategy name or {strategy, to}; None when nothing fits

    @property
    def suggested(self) -> bool:
        return self.standing == "unclassified" and self.verdict.kind is not None

    @property
    def flagged(self) -> bool:
        """Marked ``personal: false`` and its values look personal (a column name alone does not
        overrule what the catalog says)."""
        return self.standing == "not_personal" and self.verdict.kind is not None and self.verdict.matched > 0


@dataclass
class Coverage:
    """The scan's result: per system its counts, and every sampled column's verdict."""

    as_of: date
    sample_size: int
    systems: dict[str, dict[str, int]] = field(default_factory=dict)
    columns: list[ColumnVerdict] = field(default_factory=list)

    @property
    def flagged(self) -> list[ColumnVerdict]:
        return [c for c in self.columns if c.flagged]

    @property
    def unclassified(self) -> list[ColumnVerdict]:
        return [c for c in self.columns if c.standing == "unclassified"]

    def summary(self) -> dict:
        """JSON for the reports destination and the Coverage page: names, verdicts and counts only."""
        return {
            "as_of": self.as_of.isoformat(),
            "sample_size": self.sample_size,
            "systems": self.systems,
            "columns": [
                {
                    **{k: v for k, v in asdict(c).items() if k != "verdict"},
                    **asdict(c.verdict),
                    "share": round(c.verdict.share, 4),
                    "suggested": c.suggested,
                    "flagged": c.flagged,
                }
                for c in self.columns
            ],
        }


def suggest(
    catalog: Catalog,
    open_store,
    *,
    as_of: date,
    sample_size: int = SAMPLE_SIZE,
    categories: dict[str, str] | None = None,
) -> Coverage:
    """Sample every unclassified and ``personal: false`` column of the SQL systems holding
    datasets (``open_store(system)`` gives each system's store) and judge it."""
    if sample_size < 1:
        raise ValueError(f"sample size must be at least 1, not {sample_size}")
    coverage = Coverage(as_of, sample_size)
    detectors = detectors_at(as_of)
    systems = sorted(
        {s for s in (catalog.dataset(n).system for n in catalog.table_datasets) if catalog.systems[s].type == "sql"}
    )  # lake tables (Iceberg, Delta) are not sampled: ``scan`` compares their schemas
    for system in systems:
        store = open_store(system)
        if not isinstance(store, Sampling):
            raise TypeError(f"system {system!r}: its store cannot sample tables")
        counts = coverage.systems[system] = dict.fromkeys(
            ("tables", "tables_not_in_catalog", "classified", "not_personal", "unclassified", "suggested", "flagged"),
            0,
        )
        datasets = {catalog.dataset(n).table: n for n in catalog.table_datasets if catalog.dataset(n).system == system}
        schemas = {t.rpartition(".")[0] for t in datasets}
        for table, columns in sorted(store.live_tables(schemas).items()):
            dataset = datasets.get(table)
            standing = column_standing(catalog, dataset, [c.name for c in columns])
            counts["tables"] += 1
            counts["tables_not_in_catalog"] += dataset is None
            for kind in ("classified", "not_personal", "unclassified"):
                counts[kind] += sum(1 for s in standing.values() if s == kind)
            wanted = [c for c in columns if standing[c.name] in SAMPLED]
            if not wanted:
                continue
            sample = store.sample(table, [c.name for c in wanted], sample_size)
            for column in wanted:
                verdict = judge(table, column.name, sample[column.name], detectors)
                coverage.columns.append(
                    _proposed(
                        ColumnVerdict(system, table, dataset, column.name, standing[column.name], verdict),
                        column,
                        catalog,
                        categories,
                    )
                )
                del sample[column.name]  # the values go as soon as they are judged
        counts["suggested"] = sum(c.suggested for c in coverage.columns if c.system == system)
        counts["flagged"] = sum(c.flagged for c in coverage.columns if c.system == system)
    log.info("suggest: %d column(s) sampled in %d system(s)", len(coverage.columns), len(systems))
    return coverage


def _proposed(found: ColumnVerdict, column: LiveColumn, catalog: Catalog, chosen: dict[str, str] | None):
    kind = found.verdict.kind
    if kind is None:
        return found
    return replace(
        found,
        category=category_for(kind, catalog.model.categories, chosen),
        anonymize=strategy_for(kind, column.fits, column.nullable),
    )
