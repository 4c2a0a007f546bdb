"""The ``extract_<dataset>`` task: one dataset's agreed fields streamed to the recipient.

Rows come in chunks from a server-side cursor, become ``jsonl`` or ``csv``
bytes and go up through ``S3Store.upload`` (one part in memory, SHA-256 as
they pass).  The per-row path — leave out subjects with a cancellation open,
pseudonymize ``_subject`` — is the benchmark's hot loop
(``bench/sharing_bench.py``), so it does nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from lifecycle.errors import LifecycleError
from lifecycle.sharing.encoding import FILE_FORMATS, encode
from lifecycle.sharing.facts import Extracted
from lifecycle.sharing.gate import SUBJECT_FIELD, SharingRefused, gate
from lifecycle.sharing.interval import DeliveryKeys

if TYPE_CHECKING:
    from datetime import date

    from lifecycle.catalog import Catalog
    from lifecycle.config.recipients import Recipient
    from lifecycle.sharing.interval import Interval

log = logging.getLogger(__name__)


def ensure_extractable(recipient: Recipient, catalog: Catalog, dataset: str, on: date) -> None:
    """Refuse a dataset the recipient does not receive, and re-apply the gate: the gate
    task passed, but the configuration may have changed since."""
    if dataset not in recipient.share:
        raise LifecycleError(f"recipient {recipient.id!r} does not receive {dataset!r}")
    refusals = gate(recipient, catalog, on)
    if refusals:
        raise SharingRefused(recipient.id, refusals)


class KeptRows:
    """Chunks of ``(subject, *fields)`` rows without the excluded subjects, the subject
    pseudonymized when ``pseudonym`` is given; counted as they pass."""

    def __init__(self, chunks: Iterable[list], excluded: set[str], pseudonym: Callable[[object], str] | None):
        self.chunks, self.excluded, self.pseudonym = chunks, excluded, pseudonym
        self.records = self.left_out = 0

    def __iter__(self) -> Iterator[list]:
        excluded, pseudonym = self.excluded, self.pseudonym
        for chunk in self.chunks:
            kept = []
            for row in chunk:
                if excluded and row[0] in excluded:
                    continue
                if pseudonym is not None:
                    row[0] = pseudonym(row[0])
                kept.append(row)
            self.records += len(kept)
            self.left_out += len(chunk) - len(kept)
            if kept:
                yield kept


def stream_extract(
    recipient: Recipient,
    dataset: str,
    interval: Interval,
    *,
    source,
    delivery,
    excluded: set[str],
    pseudonym: Callable[[object], str] | None,
) -> Extracted:
    """Stream the agreed fields of ``dataset`` from ``source`` (its SQL store) to its key
    in ``delivery`` (the recipient's S3 store); consent is judged at the interval's end."""
    options, consent = recipient.delivery, recipient.consent
    rows = KeptRows(
        source.stream(
            dataset,
            list(recipient.share[dataset]),
            fetch_rows=options.fetch_rows,
            consent=(consent.dataset, consent.purpose, interval.end) if consent is not None else None,
        ),
        excluded,
        pseudonym,
    )
    key = DeliveryKeys.of(recipient, interval).files[dataset]
    uploaded = delivery.upload(
        key,
        encode(rows, [SUBJECT_FIELD, *recipient.share[dataset]], options.format),
        content_type=FILE_FORMATS[options.format][1],
        encryption=options.encryption,
        kms_key_id=options.kms_key_id,
        part_size=options.part_size_mb * 1024 * 1024,
    )
    log.info(
        "%s: %d record(s) to s3://%s/%s (%d bytes, %d part(s)); %d excluded (cancellation)",
        dataset,
        rows.records,
        delivery.bucket,
        key,
        uploaded.size,
        uploaded.parts,
        rows.left_out,
    )
    return Extracted(
        dataset=dataset,
        key=key,
        size=uploaded.size,
        sha256=uploaded.sha256,
        records=rows.records,
        excluded_cancellation=rows.left_out,
        parts=uploaded.parts,
    )
