"""The ``manifest`` task: ``manifest.json`` (signed) and ``manifest.html`` next to the data.

Two signatures: an Ed25519 ``attestation`` anyone checks with the published
public key (``python -m lifecycle evidence verify``), and, over it, the
HMAC-SHA256 ``signature`` recipients already check.  The HMAC signature is HMAC-SHA256 over the canonical JSON without its
``signature`` member, and the stored bytes are that canonical form, so even a
whitespace edit fails ``manifest verify``.  The page is hashed into the signed
JSON.  ``generated_at`` is wall-clock time (evidence); no decision uses it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lifecycle.clock import iso_utc
from lifecycle.errors import LifecycleError
from lifecycle.sharing.facts import Extracted, SignedManifest
from lifecycle.sharing.gate import SUBJECT_FIELD, shared_categories
from lifecycle.sharing.interval import DeliveryKeys

if TYPE_CHECKING:
    from lifecycle.catalog import Catalog
    from lifecycle.config.recipients import Recipient
    from lifecycle.sharing.interval import Interval

SIGNATURE = "HMAC-SHA256"


def sign(document: dict, key: bytes) -> str:
    """The keyed signature of a manifest: HMAC-SHA256 over its canonical JSON without the signature."""
    from lifecycle import reports

    unsigned = {k: v for k, v in document.items() if k != "signature"}
    return hmac.new(key, reports.canonical(unsigned), hashlib.sha256).hexdigest()


def write_manifest(
    recipient: Recipient,
    catalog: Catalog,
    interval: Interval,
    files: list[Extracted],
    *,
    delivery,
    signing_conn_id: str,
    signing_key: Callable[[], bytes],
    dag_id: str | None = None,
    run_id: str | None = None,
) -> SignedManifest:
    """Write the signed manifest (JSON) and its page for people (HTML) next to the data."""
    from lifecycle import reports

    keys = DeliveryKeys.of(recipient, interval)
    document = manifest_document(
        recipient,
        catalog,
        interval,
        files,
        location={"bucket": delivery.bucket, "prefix": keys.prefix, "encryption": recipient.delivery.encryption},
        run={"dag_id": dag_id, "run_id": run_id},
    )
    html = reports.render("sharing_manifest.html.j2", m=document).encode("utf-8")
    page = _put(delivery, recipient, keys.html, html, "text/html; charset=utf-8")
    document["page"] = {"key": page.key, "size": page.size, "sha256": page.sha256}
    document = reports.signer(catalog).sign(document, "sharing.manifest")  # Ed25519: anyone checks it
    document["signature"] = {
        "algorithm": SIGNATURE,
        "key": f"Airflow connection {signing_conn_id}",
        "value": sign(document, signing_key()),
    }
    written = _put(delivery, recipient, keys.manifest, reports.canonical(document), "application/json")
    return SignedManifest(
        location=f"s3://{delivery.bucket}/{written.key}",
        sha256=written.sha256,
        page=f"s3://{delivery.bucket}/{page.key}",
        records=document["records"],
    )


def existing_manifest(
    recipient: Recipient, interval: Interval, files: list[Extracted], *, delivery
) -> SignedManifest | None:
    """The signed manifest already at the delivery's key when it describes exactly ``files`` (a
    manifest task killed after writing it, then retried); None when there is none, or another."""
    keys = DeliveryKeys.of(recipient, interval)
    if delivery.head(keys.manifest) is None:
        return None
    body = delivery.get_bytes(keys.manifest)
    try:
        document = json.loads(body)
        described = {d["dataset"]: d["file"]["sha256"] for d in document["datasets"]}
    except (ValueError, KeyError, TypeError):
        return None
    if described != {f.dataset: f.sha256 for f in files} or "signature" not in document:
        return None
    return SignedManifest(
        location=f"s3://{delivery.bucket}/{keys.manifest}",
        sha256=hashlib.sha256(body).hexdigest(),
        page=f"s3://{delivery.bucket}/{keys.html}",
        records=document["records"],
    )


def _put(delivery, recipient: Recipient, key: str, body: bytes, content_type: str):
    options = recipient.delivery
    return delivery.upload(
        key, [body], content_type=content_type, encryption=options.encryption, kms_key_id=options.kms_key_id
    )


def manifest_document(
    recipient: Recipient,
    catalog: Catalog,
    interval: Interval,
    files: list[Extracted],
    *,
    location: dict,
    run: dict,
) -> dict:
    """What the recipient is told it received and under which terms (the page and the signature come after)."""
    r = recipient
    datasets = _datasets(r, catalog, files)
    return {
        "manifest": "delivery of personal information to a third party",
        "recipient": {"id": r.id, "name": r.name, "contact": r.contact, "role": r.role},
        "legal_basis": r.legal_basis,
        "purpose": r.purpose,
        "agreement": r.agreement.model_dump(mode="json") if r.agreement else None,
        "consent": r.consent.model_dump() if r.consent else None,
        "subject_field": {
            "name": SUBJECT_FIELD,
            "pseudonymized": r.pseudonymize_subject,
            "method": "HMAC-SHA256 under a key of this recipient" if r.pseudonymize_subject else "subject id",
        },
        "data_interval": {"start": iso_utc(interval.start), "end": iso_utc(interval.end)},
        "generated_at": iso_utc(datetime.now(UTC)),
        "location": location,
        "datasets": datasets,
        "records": sum(d["records"] for d in datasets),
        "run": run,
    }


def _datasets(recipient: Recipient, catalog: Catalog, files: list[Extracted]) -> list[dict]:
    """One entry per shared dataset, in the agreement's order; every dataset needs its extract."""
    by_dataset = {f.dataset: f for f in files}
    missing = sorted(set(recipient.share) - set(by_dataset))
    if missing:
        raise LifecycleError(f"no extract for {', '.join(missing)}: the manifest needs every dataset of the delivery")
    datasets = []
    for name, columns in recipient.share.items():
        extracted = by_dataset[name]
        datasets.append(
            {
                "dataset": name,
                "fields": [SUBJECT_FIELD, *columns],
                "categories": shared_categories(catalog, name, columns),
                "records": extracted.records,
                "excluded_pending_cancellation": extracted.excluded_cancellation,
                "file": {
                    "key": extracted.key,
                    "size": extracted.size,
                    "sha256": extracted.sha256,
                    "format": recipient.delivery.format,
                },
            }
        )
    return datasets
