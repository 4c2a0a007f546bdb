"""One recipient's delivery: gate, streamed extract, signed manifest, register entry.

Time comes from the run's data interval: the gate judges the agreement on the
interval's end date, consent is judged at that instant, and every key derives
from the interval, so a rerun of the same interval rewrites the same objects
and updates the same register entry.  Tasks pass ids, counts and keys; row
values never leave the extract.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from lifecycle.clock import iso_utc
from lifecycle.config import Config
from lifecycle.erasure.requests import CancellationRequests
from lifecycle.errors import LifecycleError
from lifecycle.sharing.encoding import FILE_FORMATS, encode
from lifecycle.sharing.gate import SUBJECT_FIELD, Refusal, gate, shared_categories
from lifecycle.sharing.interval import DeliveryKeys, Interval
from lifecycle.sharing.pseudonym import pseudonymizer
from lifecycle.sharing.register import SharingRegister
from lifecycle.state import StateStore

log = logging.getLogger(__name__)

SIGNATURE = "HMAC-SHA256"


class SharingRefused(LifecycleError):
    """The gate refused the delivery (terminal): nothing was read or delivered."""

    def __init__(self, recipient: str, refusals: list[Refusal]):
        self.recipient, self.refusals = recipient, refusals
        super().__init__("sharing refused, nothing delivered: " + "; ".join(r.message(recipient) for r in refusals))


def sign(document: dict, key: bytes) -> str:
    """The keyed signature of a manifest: HMAC-SHA256 over its canonical JSON without the signature."""
    from lifecycle import reports

    unsigned = {k: v for k, v in document.items() if k != "signature"}
    return hmac.new(key, reports.canonical(unsigned), hashlib.sha256).hexdigest()


class Sharing:
    def __init__(
        self,
        config: Config,
        state: StateStore,
        recipient_id: str,
        *,
        open_store: Callable[[str], object] | None = None,
        hmac_key: Callable[[], bytes] | None = None,
        signing_key: Callable[[], bytes] | None = None,
    ):
        from lifecycle import connections
        from lifecycle.stores import Stores

        matches = [r for r in config.recipients.recipients if r.id == recipient_id]
        if not matches:
            raise LifecycleError(f"recipients.yaml has no recipient {recipient_id!r}")
        self.config, self.catalog, self.state, self.recipient = config, config.catalog, state, matches[0]
        self.register = SharingRegister(state)
        self.stores = Stores(self.catalog, open_store)
        self._hmac_key = hmac_key or (lambda: connections.hmac_key(self.catalog))
        self._signing_key = signing_key or (lambda: connections.connection_secret(config.recipients.signing.conn_id))

    @property
    def delivery(self):
        return self.stores(self.recipient.delivery.system)

    def keys(self, interval: Interval) -> DeliveryKeys:
        return DeliveryKeys.of(self.recipient, interval)

    # ------------------------------------------------------------------ gate

    def _describe(self, interval: Interval) -> dict:
        """What a register entry says whatever the outcome: who, why, how, which categories."""
        r = self.recipient
        categories = sorted(
            {
                c
                for d, cols in r.share.items()
                if d in self.catalog.datasets
                for c in shared_categories(self.catalog, d, cols)
            }
        )
        bucket = getattr(self.catalog.systems.get(r.delivery.system), "bucket", None)
        processing = (
            f"{r.delivery.format} extract of {', '.join(r.share)}, written to "
            f"s3://{bucket}/{interval.prefix(r.delivery.prefix)} with server-side encryption ({r.delivery.encryption}); "
            + (
                "subject ids replaced by a per-recipient keyed hash"
                if r.pseudonymize_subject
                else "subject ids in clear"
            )
            + (f"; only subjects consenting to {r.consent.purpose}" if r.consent else "")
        )
        return {
            "entry_key": f"{r.id}|{interval.key}",
            "recipient_id": r.id,
            "recipient_name": r.name,
            "contact": r.contact,
            "role": r.role,
            "legal_basis": r.legal_basis,
            "purpose": r.purpose,
            "processing": processing,
            "agreement_id": r.agreement.id if r.agreement else None,
            "categories": categories,
            "fields": {d: list(cols) for d, cols in r.share.items()},
            "interval_start": iso_utc(interval.start),
            "interval_end": iso_utc(interval.end),
        }

    def gate(self, interval: Interval, *, dag_id: str | None = None, run_id: str | None = None) -> dict:
        """Refuse before anything is read; a refusal is recorded in the register, then raised."""
        refusals = gate(self.recipient, self.catalog, interval.end.date())
        if refusals:
            error = SharingRefused(self.recipient.id, refusals)
            self.register.record(
                {
                    **self._describe(interval),
                    "outcome": "refused",
                    "rule": refusals[0].rule,
                    "reason": str(error),
                    "records": 0,
                },
                dag_id=dag_id,
                run_id=run_id,
            )
            log.error("%s", error)
            raise error
        return {
            "recipient": self.recipient.id,
            "agreement": self.recipient.agreement.id,
            "on": interval.end.date().isoformat(),
            "datasets": sorted(self.recipient.share),
        }

    # --------------------------------------------------------------- extract

    def excluded_subjects(self, as_of: datetime) -> set[str]:
        """Subjects with a cancellation open at ``as_of`` (``erasure.requests``): nobody who
        asked to leave is handed to a partner, not even during the grace period."""
        return CancellationRequests(self.config, self.state, self.stores).open_subjects(as_of)

    def extract(self, dataset: str, interval: Interval) -> dict:
        """Stream the agreed fields of ``dataset`` to the recipient's location; counts and the file's hash."""
        if dataset not in self.recipient.share:
            raise LifecycleError(f"recipient {self.recipient.id!r} does not receive {dataset!r}")
        refusals = gate(self.recipient, self.catalog, interval.end.date())
        if refusals:  # the gate task passed, but the configuration may have changed since
            raise SharingRefused(self.recipient.id, refusals)
        delivery = self.recipient.delivery
        excluded = self.excluded_subjects(interval.end)
        consent = self.recipient.consent
        chunks = self.stores.of(dataset).stream(
            dataset,
            list(self.recipient.share[dataset]),
            fetch_rows=delivery.fetch_rows,
            consent=(consent.dataset, consent.purpose, interval.end) if consent is not None else None,
        )
        pseudonym = pseudonymizer(self._hmac_key(), self.recipient.id) if self.recipient.pseudonymize_subject else None
        counts = {"records": 0, "excluded": 0}

        def rows() -> Iterator[list]:
            for chunk in chunks:
                kept = []
                for row in chunk:
                    if excluded and row[0] in excluded:
                        continue
                    if pseudonym is not None:
                        row[0] = pseudonym(row[0])
                    kept.append(row)
                counts["records"] += len(kept)
                counts["excluded"] += len(chunk) - len(kept)
                if kept:
                    yield kept

        names = [SUBJECT_FIELD, *self.recipient.share[dataset]]
        key = self.keys(interval).files[dataset]
        uploaded = self.delivery.upload(
            key,
            encode(rows(), names, delivery.format),
            content_type=FILE_FORMATS[delivery.format][1],
            encryption=delivery.encryption,
            kms_key_id=delivery.kms_key_id,
            part_size=delivery.part_size_mb * 1024 * 1024,
        )
        log.info(
            "%s: %d record(s) to s3://%s/%s (%d bytes, %d part(s)); %d excluded (cancellation)",
            dataset,
            counts["records"],
            self.delivery.bucket,
            key,
            uploaded.size,
            uploaded.parts,
            counts["excluded"],
        )
        return {
            "dataset": dataset,
            "key": key,
            "size": uploaded.size,
            "sha256": uploaded.sha256,
            "records": counts["records"],
            "excluded_cancellation": counts["excluded"],
            "parts": uploaded.parts,
        }

    # -------------------------------------------------------------- manifest

    def manifest(
        self, interval: Interval, files: list[dict], *, dag_id: str | None = None, run_id: str | None = None
    ) -> dict:
        """Write the signed manifest (JSON) and its page for people (HTML) next to the data."""
        from lifecycle import reports

        r, keys = self.recipient, self.keys(interval)
        by_dataset = {f["dataset"]: f for f in files}
        missing = sorted(set(r.share) - set(by_dataset))
        if missing:
            raise LifecycleError(
                f"no extract for {', '.join(missing)}: the manifest needs every dataset of the delivery"
            )
        datasets = []
        for name, columns in r.share.items():
            f = by_dataset[name]
            datasets.append(
                {
                    "dataset": name,
                    "fields": [SUBJECT_FIELD, *columns],
                    "categories": shared_categories(self.catalog, name, columns),
                    "records": f["records"],
                    "excluded_pending_cancellation": f["excluded_cancellation"],
                    "file": {"key": f["key"], "size": f["size"], "sha256": f["sha256"], "format": r.delivery.format},
                }
            )
        agreement = r.agreement.model_dump(mode="json") if r.agreement else None
        document = {
            "manifest": "delivery of personal information to a third party",
            "recipient": {"id": r.id, "name": r.name, "contact": r.contact, "role": r.role},
            "legal_basis": r.legal_basis,
            "purpose": r.purpose,
            "agreement": agreement,
            "consent": r.consent.model_dump() if r.consent else None,
            "subject_field": {
                "name": SUBJECT_FIELD,
                "pseudonymized": r.pseudonymize_subject,
                "method": "HMAC-SHA256 under a key of this recipient" if r.pseudonymize_subject else "subject id",
            },
            "data_interval": {"start": iso_utc(interval.start), "end": iso_utc(interval.end)},
            "generated_at": iso_utc(datetime.now(UTC)),
            "location": {"bucket": self.delivery.bucket, "prefix": keys.prefix, "encryption": r.delivery.encryption},
            "datasets": datasets,
            "records": sum(d["records"] for d in datasets),
            "run": {"dag_id": dag_id, "run_id": run_id},
        }
        html = reports.render("sharing_manifest.html.j2", m=document).encode("utf-8")
        page = self.delivery.upload(
            keys.html,
            [html],
            content_type="text/html; charset=utf-8",
            encryption=r.delivery.encryption,
            kms_key_id=r.delivery.kms_key_id,
        )
        document["page"] = {"key": page.key, "size": page.size, "sha256": page.sha256}
        document["signature"] = {
            "algorithm": SIGNATURE,
            "key": f"Airflow connection {self.config.recipients.signing.conn_id}",
            "value": sign(document, self._signing_key()),
        }
        body = reports.canonical(document)
        written = self.delivery.upload(
            keys.manifest,
            [body],
            content_type="application/json",
            encryption=r.delivery.encryption,
            kms_key_id=r.delivery.kms_key_id,
        )
        return {
            "manifest": f"s3://{self.delivery.bucket}/{written.key}",
            "sha256": written.sha256,
            "html": f"s3://{self.delivery.bucket}/{page.key}",
            "records": document["records"],
        }

    def record_delivery(
        self, interval: Interval, manifest: dict, *, dag_id: str | None = None, run_id: str | None = None
    ) -> dict:
        entry = self.register.record(
            {
                **self._describe(interval),
                "outcome": "delivered",
                "rule": None,
                "reason": None,
                "records": manifest["records"],
                "manifest": manifest["manifest"],
                "manifest_sha256": manifest["sha256"],
            },
            dag_id=dag_id,
            run_id=run_id,
        )
        return {
            "entry": entry["entry_key"],
            "outcome": "delivered",
            "records": manifest["records"],
            "ledger_hash": entry["ledger_hash"],
        }
