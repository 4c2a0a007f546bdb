"""The sharing register: one entry per recipient and data interval, delivered or refused.

An entry says what a regulator asks of a disclosure (GDPR art. 30(1)(d)
recipients; PIPL art. 23: the recipient's name and contact, the purpose, the
processing method and the categories of personal information), with the
agreement, the record count and the signed manifest.  A rerun of the same
interval updates its entry (one entry per delivery); every distinct outcome is
also appended to the hash-chained ledger, whose hash the entry keeps.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import date

from lifecycle.evidence import sharing_outcome

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


class SharingRegister:
    def __init__(self, state):
        self.state = state

    def record(self, entry: dict, *, dag_id: str | None = None, run_id: str | None = None) -> dict:
        """Insert or update the entry of ``entry['entry_key']``; ledger the outcome once."""
        evidence = entry.get("manifest_sha256") or hashlib.sha256((entry.get("reason") or "").encode()).hexdigest()
        ledgered = self.state.ledger.append(
            f"sharing.{entry['outcome']}",
            {
                k: entry[k]
                for k in (
                    "recipient_id",
                    "agreement_id",
                    "interval_start",
                    "interval_end",
                    "outcome",
                    "rule",
                    "records",
                    "manifest",
                    "manifest_sha256",
                )
                if k in entry
            },
            dag_id=dag_id,
            run_id=run_id,
            key=sharing_outcome(entry["entry_key"], entry["outcome"], evidence),
        )
        return self.state.sharing.save(
            {
                **entry,
                "dag_id": dag_id,
                "run_id": run_id,
                "recorded_at": ledgered.recorded_at,
                "ledger_hash": ledgered.entry_hash,
            }
        )

    def entries(
        self, start: date | None = None, end: date | None = None, *, recipient: str | None = None
    ) -> list[dict]:
        """Entries whose data interval ends within [start, end] (days, UTC), oldest first."""
        return self.state.sharing.ending_within(start, end, recipient=recipient)

    def export(self, catalog, start: date, end: date) -> Export:
        """The register for a period as CSV and HTML in the reports destination."""
        from lifecycle import reports

        rows = self.entries(start, end)
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in COLUMNS])
        sink = reports.ReportSink(catalog)
        name = f"sharing/register/{start.isoformat()}_{end.isoformat()}"
        written = sink.write(f"{name}.csv", text.getvalue().encode("utf-8"), content_type="text/csv; charset=utf-8")
        html = reports.render(
            "sharing_register.html.j2",
            rows=rows,
            start=start.isoformat(),
            end=end.isoformat(),
            csv_sha256=written.sha256,
        )
        page = sink.write(f"{name}.html", html.encode("utf-8"), content_type="text/html; charset=utf-8")
        return Export(len(rows), written.location, page.location)


def _cell(value) -> str:
    if isinstance(value, list):
        return "; ".join(map(str, value))
    if isinstance(value, dict):
        return "; ".join(f"{k}: {', '.join(v)}" for k, v in value.items())
    return "" if value is None else str(value)
