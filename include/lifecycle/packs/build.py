"""One evidence pack: a folder per period, signed as a whole by its manifest.

Under ``packs/<from>_<to>/`` of the packs destination (catalog.yaml
``evidence.packs.destination``), or in a folder given (``--out``):
``records/<section>.json`` and ``.html`` (with the files each section brings:
the sharing register's CSV, ``batches/<batch>/root.json`` and ``leaves.jsonl``,
``checkpoints/<n>.json``, copied as stored with their own signatures),
``public-keys.json``, ``VERIFY.md``, ``evidence-pack.pdf`` (every section in
one document), ``index.html``, and ``manifest.json``: every other file's path,
size and SHA-256, signed with Ed25519 (kind ``evidence.pack``).

Deterministic: the same period and state give the same bytes.  The pack's time
is the period's end (no clock is read); JSON is canonical; the PDF's dates are
the pack's time (reportlab honours ``SOURCE_DATE_EPOCH``, which also fixes the
file's ID).
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from lifecycle import attestations, reports
from lifecycle.catalog.models import Reports
from lifecycle.errors import LifecycleError, TerminalStoreError
from lifecycle.evidence import pack_built
from lifecycle.packs.period import Period
from lifecycle.packs.sections import Section, sections

if TYPE_CHECKING:
    from lifecycle.config import Config
    from lifecycle.state import StateStore

KIND = attestations.PACK_KIND
MANIFEST, INDEX, VERIFY, PDF = "manifest.json", "index.html", "VERIFY.md", "evidence-pack.pdf"
FOLDER = "packs/"


@dataclass(frozen=True)
class Built:
    period: str
    location: str  # the pack's folder
    manifest_sha256: str
    files: int
    sections: list[str]

    def to_json(self) -> dict:
        return {
            "period": self.period,
            "location": self.location,
            "manifest_sha256": self.manifest_sha256,
            "files": self.files,
            "sections": self.sections,
        }


def destination(config: Config, period: Period, out_dir: str | os.PathLike | None = None):
    """The sink a pack is written to and read from, and the folder inside it."""
    if out_dir is not None:
        return reports.ReportSink(config.catalog, Reports(path=str(Path(out_dir).resolve()))), ""
    return reports.ReportSink(config.catalog, config.catalog.model.evidence.packs.destination), f"{FOLDER}{period.key}/"


def build_pack(config: Config, state: StateStore, start: date, end: date, out_dir=None) -> Built:
    """Build the period's pack (``out_dir``: that folder, else the packs destination), record it once."""
    period = Period(start, end)
    catalog = config.catalog
    found = sections(config, state, period)
    keys = reports.public_keys(catalog)
    key_id = reports.signer(catalog).key_id
    files: dict[str, bytes] = {}
    for section in found:
        files[f"records/{section.name}.json"] = reports.canonical(section.data)
        files[f"records/{section.name}.html"] = section.html.encode("utf-8")
        files.update(section.files)
    files["public-keys.json"] = keys.published()
    about = {"period": period.to_json(), "key_id": key_id, "sections": found, "as_of": period.closes.isoformat()}
    files[VERIFY] = reports.render("evidence_pack_verify.md.j2", **about).encode("utf-8")
    files[PDF] = _pdf(period, found, about)
    files[INDEX] = reports.render("evidence_pack.html.j2", files=_listed(files), **about).encode("utf-8")
    manifest = {
        "pack": "evidence pack: the records regulators and auditors ask for, for one period",
        "period": period.to_json(),
        "as_of": about["as_of"],
        "sections": [
            {"name": s.name, "title": s.title, "json": f"records/{s.name}.json", "html": f"records/{s.name}.html"}
            for s in found
        ],
        "files": _listed(files),
        "how_to_verify": VERIFY,
    }
    sink, folder = destination(config, period, out_dir)
    sink.write_many((f"{folder}{path}", data, _content_type(path)) for path, data in sorted(files.items()))
    signed = reports.canonical(reports.signer(catalog).sign(manifest, KIND))
    written = sink.write(
        f"{folder}{MANIFEST}", signed, content_type="application/json"
    )  # last: a pack cut short has none
    where, sha = written.location.removesuffix(MANIFEST), written.sha256
    state.ledger.append(
        "evidence.pack",
        {"period": period.key, "location": where, "manifest_sha256": sha, "files": len(files) + 1},
        key=pack_built(period.key, sha),
    )
    return Built(period.key, where, sha, len(files) + 1, [s.name for s in found])


def _listed(files: dict[str, bytes]) -> list[dict]:
    """Each file's path, SHA-256 and size, by path."""
    return [{"path": p, "sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for p, b in sorted(files.items())]


def _content_type(path: str) -> str:
    suffix = path.rsplit(".", 1)[-1]
    return {
        "json": "application/json",
        "html": "text/html; charset=utf-8",
        "pdf": "application/pdf",
        "csv": "text/csv; charset=utf-8",
        "md": "text/markdown; charset=utf-8",
        "jsonl": "application/x-ndjson",
    }.get(suffix, "application/octet-stream")


BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S | re.I)


def _pdf(period: Period, found: list[Section], about: dict) -> bytes:
    """Every section in one PDF, its dates the pack's time."""
    from lifecycle.incident.documents import PDF_FONT, pdf

    bodies = [(s.title, (BODY.search(s.html) or [None, s.html])[1]) for s in found]
    html = reports.render("evidence_pack_pdf.html.j2", bodies=bodies, pdf_font="Helvetica", **about)
    if any(c >= "\u2e80" for c in html):  # CJK text: the CID font has the glyphs
        html = reports.render("evidence_pack_pdf.html.j2", bodies=bodies, pdf_font=PDF_FONT, **about)
    with _source_date(calendar.timegm(period.closes.timetuple())):
        return pdf(html)


@contextlib.contextmanager
def _source_date(epoch: int):
    """reportlab dates the PDF (and derives its ID) from ``SOURCE_DATE_EPOCH`` while it is set."""
    before = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = before


def read_pack(config: Config, period: Period, out_dir=None):
    """The pack's manifest as stored, and what reads any of its files by path (None: not there)."""
    sink, folder = destination(config, period, out_dir)

    def read(path: str) -> bytes | None:
        try:
            return sink.read(f"{folder}{path}")
        except (OSError, TerminalStoreError):  # missing from the folder or the bucket: the check names it
            return None

    raw = read(MANIFEST)
    if raw is None:
        raise LifecycleError(f"no evidence pack for {period.key}: no {folder}{MANIFEST} in the packs destination")
    return raw, read


def verify_pack(config: Config, period: Period, out_dir=None) -> attestations.Checked:
    """The pack checked as a regulator would: its manifest's signature under the published keys,
    every file re-hashed, the batch roots and checkpoints inside it checked too."""
    raw, read = read_pack(config, period, out_dir)
    return attestations.check(raw, reports.public_keys(config.catalog), read=read)
