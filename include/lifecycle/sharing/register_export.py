"""The sharing register for a period, as CSV and HTML in the reports destination (what a
regulator is handed: ``python -m lifecycle sharing register --from … --to …``)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date

#: the export's columns, in order
COLUMNS = (
    "interval_start",
    "interval_end",
    "recipient_id",
    "recipient_name",
    "contact",
    "role",
    "legal_basis",
    "purpose",
    "processing",
    "categories",
    "fields",
    "agreement_id",
    "outcome",
    "rule",
    "reason",
    "records",
    "manifest",
    "manifest_sha256",
    "recorded_at",
    "ledger_hash",
)


@dataclass(frozen=True)
class Export:
    rows: int
    csv: str  # locations
    html: str


def export_register(catalog, rows: list[dict], start: date, end: date) -> Export:
    """Write ``rows`` (the register's entries for [start, end]) as CSV and as an HTML page."""
    from lifecycle import reports

    sink = reports.ReportSink(catalog)
    name = f"sharing/register/{start.isoformat()}_{end.isoformat()}"
    written = sink.write(f"{name}.csv", register_csv(rows), content_type="text/csv; charset=utf-8")
    html = reports.render(
        "sharing_register.html.j2",
        rows=rows,
        start=start.isoformat(),
        end=end.isoformat(),
        csv_sha256=written.sha256,
    )
    page = sink.write(f"{name}.html", html.encode("utf-8"), content_type="text/html; charset=utf-8")
    return Export(len(rows), written.location, page.location)


def register_csv(rows: list[dict]) -> bytes:
    """The register's entries as CSV (``COLUMNS``, UTF-8): the export's and the evidence pack's."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in COLUMNS])
    return text.getvalue().encode("utf-8")


def _cell(value) -> str:
    if isinstance(value, list):
        return "; ".join(map(str, value))
    if isinstance(value, dict):
        return "; ".join(f"{k}: {', '.join(v)}" for k, v in value.items())
    return "" if value is None else str(value)
