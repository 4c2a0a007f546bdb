"""The Coverage page: per system, the catalog's tables and columns classified, unclassified,
suggested and flagged, from the last ``lifecycle_checks`` discovery result (the reports
destination's ``discovery/coverage.json``): names, verdicts and counts, never values."""

from __future__ import annotations

from dataclasses import dataclass, field

from lifecycle.discovery.report import last_coverage


@dataclass(frozen=True)
class CoverageView:
    checked: str | None  # the check's date; None: no check has run
    sample_size: int | None = None
    systems: list[tuple[str, dict]] = field(default_factory=list)
    columns: list[dict] = field(default_factory=list)  # unclassified or flagged, with their verdicts


def build(sink) -> CoverageView:
    found = last_coverage(sink)
    if not found:
        return CoverageView(None)
    shown = [c for c in found.get("columns", []) if c.get("standing") == "unclassified" or c.get("flagged")]
    shown.sort(key=lambda c: (not c.get("flagged"), c["system"], c["table"], c["column"]))
    return CoverageView(found.get("as_of"), found.get("sample_size"), sorted(found.get("systems", {}).items()), shown)
