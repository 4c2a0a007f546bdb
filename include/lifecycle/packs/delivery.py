"""An evidence pack delivered to each recipient of ``evidence.packs.recipients``, once.

E-mail goes the one way every notice goes (``Notifier`` over ``mail.send_claimed``):
the recipient's claim row (notice ``evidence_pack:<period>``, the recipient id as its
subject) is committed with the Message-ID before the mail is sent, so a task killed
and run again never mails anyone twice; a row a kill left ``sending`` becomes
``uncertain`` and is not sent again.  The mail carries the pack's PDF and the whole
folder as a zip (deterministic; ``evidence verify`` checks the zip as it is).  An
upload puts every file of the pack under ``<prefix><from>_<to>/`` of the recipient's
S3 system, each only when that key does not hold the same bytes already, so a rerun
after a kill uploads nothing twice.  Each delivery is one ledger entry
(``evidence.pack_delivery``, key ``evidence:pack:<period>:delivery:<recipient>:<channel>``),
written once: a recipient is delivered a period's pack once, whatever reruns follow.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lifecycle.errors import LifecycleError
from lifecycle.evidence import pack as pack_prefix
from lifecycle.evidence import pack_delivery
from lifecycle.mail import Attachment, render_notice
from lifecycle.notifier import Notifier, Recorded
from lifecycle.packs.build import MANIFEST, PDF, read_pack
from lifecycle.packs.period import Period

if TYPE_CHECKING:
    from lifecycle.catalog.models import PackRecipient
    from lifecycle.config import Config
    from lifecycle.state import StateStore

TEMPLATE = "evidence_pack"  # include/lifecycle/templates/mail/evidence_pack.<locale>.txt.j2
DELIVERED = ("sent", "uploaded")


class Pack:
    """A built pack as stored: its manifest and files, read once."""

    def __init__(self, config: Config, period: Period):
        raw, read = read_pack(config, period)
        self.period, self.manifest_raw = period, raw
        self.manifest = json.loads(raw)
        self.files = {e["path"]: read(e["path"]) for e in self.manifest["files"]} | {MANIFEST: raw}
        missing = sorted(p for p, data in self.files.items() if data is None)
        if missing:
            raise LifecycleError(f"evidence pack {period.key}: {', '.join(missing)} missing; build it again")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.manifest_raw).hexdigest()

    def zip(self) -> bytes:
        """The pack's folder as a zip: same files, same bytes, dated the pack's time."""
        when = self.period.closes.timetuple()[:6]
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(self.files):
                archive.writestr(zipfile.ZipInfo(path, date_time=when), self.files[path], zipfile.ZIP_DEFLATED)
        return out.getvalue()

    def attachments(self) -> tuple[Attachment, Attachment]:
        stem = f"evidence-pack-{self.period.key}"
        return (
            Attachment(f"{stem}.pdf", "application/pdf", self.files[PDF]),
            Attachment(f"{stem}.zip", "application/zip", self.zip()),
        )


def deliver_pack(config: Config, state: StateStore, period: Period, stores, *, mailer=None) -> dict:
    """Deliver the period's pack to every configured recipient by each of its channels, once;
    ``{recipient: {channel: status}}``.  A delivery that did not succeed fails once it is recorded."""
    recipients = config.catalog.model.evidence.packs.recipients
    if not recipients:
        return {}
    pack = Pack(config, period)
    for recipient in recipients:
        if recipient.upload is not None:
            _upload(state, pack, recipient, stores(recipient.upload.system))
    mailed = {r.id: r for r in recipients if r.email}
    if mailed:
        book = PackBook(state, pack, mailed)
        Notifier(config.notifications, mailer).deliver(
            book, sorted(mailed), lambda todo, m: _composer(config, pack, mailed, m), run_id=period.key
        )
    found = deliveries(state, period)
    failed = [f"{r} by {c}: {s}" for r, by in found.items() for c, s in by.items() if s not in DELIVERED]
    if failed:
        raise LifecycleError(f"evidence pack {period.key} not delivered: {'; '.join(failed)} (recorded in the ledger)")
    return found


def deliveries(state: StateStore, period: Period) -> dict[str, dict[str, str]]:
    """What the ledger records of the period's deliveries: ``{recipient: {channel: status}}``."""
    found: dict[str, dict[str, str]] = {}
    for entry in state.ledger.entries_with_prefix(pack_prefix(period.key) + "delivery:"):
        found.setdefault(entry.payload["recipient"], {})[entry.payload["channel"]] = entry.payload["status"]
    return found


def _record(state: StateStore, pack: Pack, recipient: PackRecipient, channel: str, status: str, **where) -> None:
    payload = {
        "period": pack.period.key,
        "recipient": recipient.id,
        "role": recipient.role,
        "channel": channel,
        "status": status,
        "target": where.get("target"),
        "message_id": where.get("message_id"),
        "manifest_sha256": pack.sha256,
    }
    key = pack_delivery(pack.period.key, recipient.id, channel)
    state.ledger.append("evidence.pack_delivery", payload, key=key)


def _upload(state: StateStore, pack: Pack, recipient: PackRecipient, store) -> None:
    """Every file of the pack under the recipient's prefix, each put only when not there byte for byte."""
    if state.ledger.find(pack_delivery(pack.period.key, recipient.id, "upload")) is not None:
        return
    folder = f"{recipient.upload.prefix}{pack.period.key}/"
    for path, data in sorted(pack.files.items(), key=lambda item: (item[0] == MANIFEST, item[0])):
        key = f"{folder}{path}"
        if store.head(key) is None or store.digest(key)[1] != hashlib.sha256(data).hexdigest():
            store.put_bytes(key, data, content_type="application/octet-stream")
    _record(state, pack, recipient, "upload", "uploaded", target=f"s3://{store.bucket}/{folder}")


class PackBook:
    """The claim rows of a period's pack e-mails (one per recipient), and their ledger entries."""

    def __init__(self, state: StateStore, pack: Pack, recipients: dict[str, PackRecipient]):
        self.state, self.pack, self.recipients = state, pack, recipients
        self.notice, self.name = f"evidence_pack:{pack.period.key}", f"evidence pack {pack.period.key}"

    def recorded(self, subjects: Sequence[str]) -> dict[str, Recorded]:
        """Backed by each delivery's own ledger entry, written once under its key."""
        claimed = self.state.notices.claimed(self.notice)
        return {s: Recorded(status, False) for s, (status, _) in claimed.items() if s in subjects}

    def claims(self):
        return self.state.notices.claims_of(self.notice, self.pack.period.key)

    def summarize(self, subjects: Sequence[str], run_id: str | None) -> None:
        claimed = self.state.notices.claimed(self.notice)
        for subject in subjects:
            status, message_id = claimed.get(subject, ("sending", None))
            if status != "sending":
                recipient = self.recipients[subject]
                _record(
                    self.state, self.pack, recipient, "email", status, target=recipient.email, message_id=message_id
                )


def _composer(config: Config, pack: Pack, recipients: dict[str, PackRecipient], mailer):
    files = pack.attachments()
    locales = config.notifications.locales if config.notifications else ["en"]

    def compose(recipient_id: str):
        recipient = recipients[recipient_id]
        notice = render_notice(
            TEMPLATE,
            recipient.locale or locales[0],
            "en",
            recipient=recipient.name,
            period=pack.period.to_json(),
            key_id=pack.manifest["attestation"]["key_id"],
            manifest_sha256=pack.sha256,
            sections=[s["title"] for s in pack.manifest["sections"]],
            attachments=[{"filename": f.filename, "sha256": hashlib.sha256(f.data).hexdigest()} for f in files],
        )
        return mailer.compose(
            recipient.email, notice, key=f"evidence-pack:{pack.period.key}:{recipient_id}", attachments=files
        )

    return compose
