"""One recipient's delivery, as the tasks of its ``sharing_<recipient>`` DAG run it.

``Sharing`` gathers what each step needs from the configuration and hands
back what the task returns through XCom (ids, counts, keys and hashes; row
values never leave the extract).  The steps live beside it: ``gate_step``,
``extract``, ``manifest``, and the ``register`` entry.  Time comes from the
run's data interval: the gate judges the agreement on the interval's end date,
consent is judged at that instant, and every key derives from the interval.
A retried or cleared task of the same interval (after a kill) uploads nothing
twice: an extract finds its ledgered file in the bucket, the manifest task
finds its signed manifest for the same files, and the register keeps one
entry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from lifecycle.cancellations import CancellationRequests
from lifecycle.config import Config
from lifecycle.errors import LifecycleError
from lifecycle.evidence import sharing_extract
from lifecycle.sharing.extract import ensure_extractable, stream_extract
from lifecycle.sharing.facts import Extracted, SignedManifest
from lifecycle.sharing.gate_step import admit
from lifecycle.sharing.interval import Interval
from lifecycle.sharing.manifest import existing_manifest, write_manifest
from lifecycle.sharing.pseudonym import pseudonymizer
from lifecycle.sharing.register import SharingRegister, disclosure, disclosure_key
from lifecycle.state import StateStore

if TYPE_CHECKING:
    from lifecycle.runtime import RunContext
    from lifecycle.stores import Stores

__all__ = ["Interval", "Sharing"]


class Sharing:
    def __init__(
        self,
        config: Config,
        state: StateStore,
        recipient_id: str,
        *,
        open_store: Callable[[str], object] | None = None,
        stores: Stores | None = None,
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
        self.stores = stores if stores is not None else Stores(self.catalog, open_store)
        self._hmac_key = hmac_key or (lambda: connections.hmac_key(self.catalog))
        self._signing_key = signing_key or (lambda: connections.connection_secret(config.recipients.signing.conn_id))

    @classmethod
    def of(cls, ctx: RunContext, recipient_id: str) -> Sharing:
        """The running task's: its configuration, state store and stores, used as they are."""
        return cls(ctx.config, ctx.state, recipient_id, stores=ctx.stores)

    def source_datasets(self) -> list[str]:
        """The datasets this recipient receives from: what it shares, and where its consent is kept."""
        consent = {self.recipient.consent.dataset} if self.recipient.consent else set()
        return sorted(set(self.recipient.share) | consent)

    @property
    def delivery(self):
        """The recipient's S3 store."""
        return self.stores(self.recipient.delivery.system)

    def gate(self, interval: Interval, *, dag_id: str | None = None, run_id: str | None = None) -> dict:
        """Refuse before anything is read; a refusal is recorded in the register, then raised."""
        return admit(self.recipient, self.catalog, self.register, interval, dag_id=dag_id, run_id=run_id)

    def excluded_subjects(self, as_of: datetime) -> set[str]:
        """Subjects with a cancellation open at ``as_of`` (``cancellations``): nobody who
        asked to leave is handed to a partner, not even during the grace period."""
        return CancellationRequests(self.config, self.state, self.stores).open_subjects(as_of)

    def extract(self, dataset: str, interval: Interval) -> dict:
        """Stream the agreed fields of ``dataset`` to the recipient's location; counts and the file's hash.
        Once uploaded the file is ledgered (``sharing.extracted``): a retried or cleared extract of the
        same interval finds it there, and in the bucket, and does not upload it again."""
        ensure_extractable(self.recipient, self.catalog, dataset, interval.end.date())
        key = sharing_extract(disclosure_key(self.recipient, interval), dataset)
        done = self._uploaded(key)
        if done is not None:
            return done.to_xcom()
        excluded = self.excluded_subjects(interval.end)
        pseudonym = pseudonymizer(self._hmac_key(), self.recipient.id) if self.recipient.pseudonymize_subject else None
        extracted = stream_extract(
            self.recipient,
            dataset,
            interval,
            source=self.stores.of(dataset),
            delivery=self.delivery,
            excluded=excluded,
            pseudonym=pseudonym,
        )
        self.state.ledger.append("sharing.extracted", extracted.to_xcom(), key=key)
        return extracted.to_xcom()

    def _uploaded(self, key: str) -> Extracted | None:
        """The file an earlier attempt uploaded and ledgered, if the bucket still holds it whole."""
        entry = self.state.ledger.find(key)
        if entry is None:
            return None
        extracted = Extracted.from_xcom(entry.payload)
        head = self.delivery.head(extracted.key)
        return extracted if head is not None and head.get("ContentLength") == extracted.size else None

    def manifest(
        self, interval: Interval, files: list[dict], *, dag_id: str | None = None, run_id: str | None = None
    ) -> dict:
        """Write the signed manifest (JSON) and its page for people (HTML) next to the data."""
        extracted = [Extracted.from_xcom(f) for f in files]
        written = existing_manifest(self.recipient, interval, extracted, delivery=self.delivery)
        if written is not None:  # a retried manifest task: the signed one is there for these files
            return written.to_xcom()
        signed = write_manifest(
            self.recipient,
            self.catalog,
            interval,
            extracted,
            delivery=self.delivery,
            signing_conn_id=self.config.recipients.signing.conn_id,
            signing_key=self._signing_key,
            dag_id=dag_id,
            run_id=run_id,
        )
        return signed.to_xcom()

    def record_delivery(
        self, interval: Interval, manifest: dict, *, dag_id: str | None = None, run_id: str | None = None
    ) -> dict:
        """Enter the delivery, with its signed manifest, in the sharing register."""
        signed = SignedManifest.from_xcom(manifest)
        entry = self.register.record(
            {
                **disclosure(self.recipient, self.catalog, interval),
                "outcome": "delivered",
                "rule": None,
                "reason": None,
                "records": signed.records,
                "manifest": signed.location,
                "manifest_sha256": signed.sha256,
            },
            dag_id=dag_id,
            run_id=run_id,
        )
        return {
            "entry": entry["entry_key"],
            "outcome": "delivered",
            "records": signed.records,
            "ledger_hash": entry["ledger_hash"],
        }
