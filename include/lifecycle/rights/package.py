"""The access package as a file: a zip written entry by entry, deterministic, and its check.

Entries are written as they are read (a row list, an object chunk at a time)
into a seekable file, never a whole dataset or object in memory.  Every entry
has the same fixed time (the request's receipt), mode and compression, and
the entries come in a fixed order — ``data/<dataset>.jsonl`` by dataset,
``objects/<key>`` by key, ``index.html``, then ``manifest.json``, which lists
every other entry with its size and SHA-256 and is signed as sharing
manifests are (``sharing.manifest.sign``: HMAC-SHA256 over the canonical JSON
without its ``signature``).  So the same rows and objects give the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from lifecycle.sharing.manifest import SIGNATURE, sign

MANIFEST = "manifest.json"
KIND = "access_package"  # the manifest's ``kind``: how ``manifest verify`` tells it from a delivery's
_MODE = 0o100644 << 16  # a regular file, rw-r--r--
_UNIX = 3


def entry_time(iso: str) -> tuple[int, int, int, int, int, int]:
    """A zip entry's timestamp from an ISO instant (zip times start in 1980)."""
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return max(when.timetuple()[:6], (1980, 1, 1, 0, 0, 0))


def row_line(row: dict) -> bytes:
    """One row as one line of canonical JSON: keys sorted, no spaces, UTF-8."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode() + b"\n"


@dataclass(frozen=True)
class PackedFile:
    path: str
    size: int
    sha256: str
    dataset: str | None = None
    records: int | None = None  # data files: rows

    def to_dict(self) -> dict:
        entry = {"path": self.path, "size": self.size, "sha256": self.sha256}
        if self.dataset is not None:
            entry["dataset"] = self.dataset
        if self.records is not None:
            entry["records"] = self.records
        return entry


class PackageWriter:
    """Entries into a zip on ``file`` (seekable), each hashed as it is written."""

    def __init__(self, file: IO[bytes], received_at: str):
        self.zip = zipfile.ZipFile(file, "w", allowZip64=True)
        self.when = entry_time(received_at)
        self.files: list[PackedFile] = []

    def _info(self, path: str, compress: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=self.when)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = _MODE
        info.create_system = _UNIX
        return info

    def write(
        self,
        path: str,
        chunks: Iterable[bytes],
        *,
        compress: bool = True,
        dataset: str | None = None,
        records: int | None = None,
    ) -> PackedFile:
        """One entry from ``chunks`` (read one at a time); ZIP64 always, so sizes need no guess."""
        digest, size = hashlib.sha256(), 0
        with self.zip.open(self._info(path, compress), "w", force_zip64=True) as out:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        packed = PackedFile(path, size, digest.hexdigest(), dataset, records)
        self.files.append(packed)
        return packed

    def finish(self, document: dict, key: bytes, key_name: str, signer=None) -> bytes:
        """Sign ``document`` (with ``files`` filled in): Ed25519 by ``signer`` (a ``signing.Signer``;
        anyone checks it with the public key), then HMAC-SHA256 over that; write it as the last
        entry, close the zip; returns the manifest's bytes."""
        from lifecycle import reports

        document = {**document, "files": [f.to_dict() for f in self.files]}
        if signer is not None:
            document = signer.sign(document, "access.package")
        document["signature"] = {"algorithm": SIGNATURE, "key": key_name, "value": sign(document, key)}
        raw = reports.canonical(document)
        with self.zip.open(self._info(MANIFEST, True), "w", force_zip64=True) as out:
            out.write(raw)
        self.zip.close()
        return raw


def check_manifest(raw: bytes, key: bytes) -> tuple[dict | None, list[str]]:
    """The manifest's document and what is wrong with its bytes and signature."""
    from lifecycle import reports

    try:
        document = json.loads(raw)
    except ValueError:
        return None, ["manifest.json: not valid JSON (edited or truncated)"]
    problems = []
    if raw != reports.canonical(document):
        problems.append("manifest.json: its bytes are not the canonical form its signature covers (edited)")
    claimed = (document.get("signature") or {}).get("value") or ""
    if not hmac.compare_digest(str(claimed), sign(document, key)):
        problems.append("manifest.json: the signature does not match (edited, or signed with another key)")
    return document, problems


def verify_package(file: IO[bytes] | str, key: bytes, *, manifest: bytes | None = None) -> list[str]:
    """Problems with an access package (empty: it verifies): its manifest's bytes and
    signature, every file it lists re-hashed from the zip, no file it does not list.
    ``manifest``: a copy kept outside the zip, which must be the same bytes."""
    try:
        package = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as exc:
        return [f"not a readable zip file ({exc})"]
    with package:
        names = package.namelist()
        if MANIFEST not in names:
            return ["the package has no manifest.json"]
        raw = package.read(MANIFEST)
        problems = [] if manifest is None or manifest == raw else ["the manifest given differs from the package's"]
        document, found = check_manifest(raw, key)
        problems += found
        if document is None:
            return problems
        listed = {entry.get("path"): entry for entry in document.get("files", [])}
        for path, entry in sorted(listed.items(), key=lambda item: str(item[0])):
            if path not in names:
                problems.append(f"{path}: listed in the manifest, missing from the package")
                continue
            digest, size = hashlib.sha256(), 0
            try:
                with package.open(path) as body:
                    while chunk := body.read(1024 * 1024):
                        digest.update(chunk)
                        size += len(chunk)
            except (zipfile.BadZipFile, OSError) as exc:  # a changed entry fails its CRC
                problems.append(f"{path}: cannot be read from the package ({exc})")
                continue
            if (size, digest.hexdigest()) != (entry.get("size"), entry.get("sha256")):
                problems.append(
                    f"{path}: {size} bytes with SHA-256 {digest.hexdigest()[:16]}…, the manifest says "
                    f"{entry.get('size')} bytes with {str(entry.get('sha256'))[:16]}…"
                )
        problems += [
            f"{name}: in the package, not in the manifest" for name in names if name not in listed and name != MANIFEST
        ]
    return problems
