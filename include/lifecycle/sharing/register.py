"""The sharing register: one entry per recipient and data interval, delivered or refused.

An entry says what a regulator asks of a disclosure (GDPR art. 30(1)(d)
recipients; PIPL art. 23: the recipient's name and contact, the purpose, the
processing method and the categories of personal information), with the
agreement, the record count and the signed manifest.  A rerun of the same
interval updates its entry (one entry per delivery); every distinct outcome is
also appended to the hash-chained ledger, whose hash the entry keeps.
"""

from __future__ import annotations

import hashlib
from datetime import date

from lifecycle.evidence import sharing_outcome
from lifecycle.sharing.register_export import Export, export_register

#: what the ledger keeps of an entry (the rest is in the register)
LEDGERED = (
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


class SharingRegister:
    def __init__(self, state):
        self.state = state

    def record(self, entry: dict, *, dag_id: str | None = None, run_id: str | None = None) -> dict:
        """Insert or update the entry of ``entry['entry_key']``; ledger the outcome once."""
        evidence = entry.get("manifest_sha256") or hashlib.sha256((entry.get("reason") or "").encode()).hexdigest()
        ledgered = self.state.ledger.append(
            f"sharing.{entry['outcome']}",
            {k: entry[k] for k in LEDGERED if k in entry},
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
        return export_register(catalog, self.entries(start, end), start, end)
