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
from typing import TYPE_CHECKING

from lifecycle.clock import iso_utc
from lifecycle.evidence import sharing_outcome
from lifecycle.sharing.gate import shared_categories
from lifecycle.sharing.register_export import Export, export_register

if TYPE_CHECKING:
    from lifecycle.catalog import Catalog
    from lifecycle.config.recipients import Recipient
    from lifecycle.sharing.interval import Interval

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


def disclosure_key(recipient: Recipient, interval: Interval) -> str:
    """The register entry of a recipient's delivery interval."""
    return f"{recipient.id}|{interval.key}"


def disclosure(recipient: Recipient, catalog: Catalog, interval: Interval) -> dict:
    """What a register entry says whatever the outcome: who, why, how, which categories."""
    r = recipient
    categories = sorted(
        {c for d, cols in r.share.items() if d in catalog.datasets for c in shared_categories(catalog, d, cols)}
    )
    return {
        "entry_key": disclosure_key(r, interval),
        "recipient_id": r.id,
        "recipient_name": r.name,
        "contact": r.contact,
        "role": r.role,
        "legal_basis": r.legal_basis,
        "purpose": r.purpose,
        "processing": _processing(r, catalog, interval),
        "agreement_id": r.agreement.id if r.agreement else None,
        "categories": categories,
        "fields": {d: list(cols) for d, cols in r.share.items()},
        "interval_start": iso_utc(interval.start),
        "interval_end": iso_utc(interval.end),
    }


def _processing(recipient: Recipient, catalog: Catalog, interval: Interval) -> str:
    """The processing method in words: format, datasets, location, encryption, subject ids, consent."""
    r = recipient
    bucket = getattr(catalog.systems.get(r.delivery.system), "bucket", None)
    return (
        f"{r.delivery.format} extract of {', '.join(r.share)}, written to "
        f"s3://{bucket}/{interval.prefix(r.delivery.prefix)} with server-side encryption ({r.delivery.encryption}); "
        + ("subject ids replaced by a per-recipient keyed hash" if r.pseudonymize_subject else "subject ids in clear")
        + (f"; only subjects consenting to {r.consent.purpose}" if r.consent else "")
    )
