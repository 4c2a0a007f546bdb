"""Checking anything the lifecycle issued, offline, with the public keys alone.

A signed JSON document (certificate roots, reports, manifests, checkpoints),
a person's erasure certificate (their leaf, its inclusion proof and the signed
batch root), or an access package (a zip whose ``manifest.json`` is signed).
No state store, no HMAC secret: only ``signing`` and ``merkle``.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from lifecycle import merkle, signing

#: The kind of an evidence pack's manifest: it lists every file of the pack with its SHA-256.
PACK_KIND = "evidence.pack"
#: Folders of a pack whose JSON files are signed documents of their own (batch roots, checkpoints).
SIGNED_INSIDE = ("batches/", "checkpoints/")


@dataclass(frozen=True)
class Checked:
    """What one check covered and what it found."""

    what: str  # the kind of document, as its attestation names it
    key_id: str | None
    signed_fields: list[str]
    checks: list[str]  # what was checked besides the signature
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self, where: str) -> list[str]:
        head = f"{where}: {self.what}, key {self.key_id or '?'}, signed fields: {', '.join(self.signed_fields) or '-'}"
        checked = [f"  checked: {c}" for c in self.checks]
        result = ["  result: OK"] if self.ok else [f"  FAILED: {p}" for p in self.problems]
        return [head, *checked, *result]


def check(
    raw: bytes,
    keys: signing.PublicKeys,
    *,
    beside: dict[str, bytes] | None = None,
    read: Callable[[str], bytes | None] | None = None,
) -> Checked:
    """Check ``raw`` (JSON or an access package's zip); ``beside``: files next to it by suffix
    (``pdf``) whose SHA-256 the document records; ``read``: a file by its path relative to the
    document (None: not there), for an evidence pack's manifest."""
    if raw[:2] == b"PK":
        return _package(raw, keys)
    try:
        document = json.loads(raw)
    except ValueError:
        return Checked("unreadable", None, [], [], ["not valid JSON, nor a zip (edited or truncated)"])
    if not isinstance(document, dict):
        return Checked("unreadable", None, [], [], ["a JSON document is an object"])
    if "leaf" in document and "batch_root" in document:
        return _person(document, keys)
    if (document.get(signing.MEMBER) or {}).get("kind") == PACK_KIND:
        return _pack(document, keys, read or (lambda path: None))
    return _signed(document, keys, beside or {})


def _signed(document: dict, keys: signing.PublicKeys, beside: dict[str, bytes]) -> Checked:
    verdict = signing.verify(document, keys)
    checks, problems = ["Ed25519 signature over every signed field"], list(verdict.problems)
    if "pdf_sha256" in document and "pdf" in beside:
        checks.append("the PDF beside it hashes to pdf_sha256")
        if hashlib.sha256(beside["pdf"]).hexdigest() != document["pdf_sha256"]:
            problems.append("the PDF beside it does not hash to the signed pdf_sha256 (the PDF was changed)")
    if "merkle" in document and "leaves" in beside:
        checks.append("the leaves beside it give the signed Merkle root")
        problems += _leaves(document, beside["leaves"])
    return Checked(verdict.kind or "signed document", verdict.key_id, verdict.signed_fields, checks, problems)


def _leaves(root: dict, raw: bytes) -> list[str]:
    """A batch's leaves file against its signed root: their count, the file's hash, the root."""
    try:
        leaves = [json.loads(line) for line in raw.splitlines() if line.strip()]
    except ValueError:
        return ["the leaves file beside it is not one JSON leaf a line (edited)"]
    signed = root.get("leaves") or {}
    problems = []
    if len(leaves) != signed.get("count"):
        problems.append(
            f"the leaves file holds {len(leaves)} leaves, the signed root {signed.get('count')} (a leaf dropped or added)"
        )
    if hashlib.sha256(raw).hexdigest() != signed.get("sha256"):
        problems.append("the leaves file does not hash to the signed leaves.sha256 (edited)")
    if merkle.root(leaves) != (root.get("merkle") or {}).get("root"):
        problems.append("the leaves beside it do not give the signed Merkle root")
    return problems


def _person(document: dict, keys: signing.PublicKeys) -> Checked:
    """A person's certificate: the batch root's signature, and the leaf's path to that root."""
    root = document.get("batch_root") or {}
    verdict = signing.verify(root, keys)
    problems = [f"batch root: {p}" for p in verdict.problems]
    leaf, signed_root = document.get("leaf") or {}, (root.get("merkle") or {}).get("root")
    try:
        reached = merkle.fold(leaf, list(document.get("proof") or []))
    except (KeyError, TypeError, ValueError):
        reached = None
    if reached != signed_root:
        problems.append(
            f"leaf of person {str(leaf.get('subject', '?'))[:16]}…: its inclusion proof leads to "
            f"{str(reached)[:16]}…, not to the signed root {str(signed_root)[:16]}… (the leaf or the proof was changed)"
        )
    checks = ["Ed25519 signature of the batch root", "the leaf's inclusion proof against the signed Merkle root"]
    return Checked(f"person's certificate in {verdict.kind}", verdict.key_id, verdict.signed_fields, checks, problems)


def _package(raw: bytes, keys: signing.PublicKeys) -> Checked:
    """An access package: its manifest's signature, and every file it lists re-hashed from the zip."""
    try:
        package = zipfile.ZipFile(io.BytesIO(raw))
        document = json.loads(package.read("manifest.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        return Checked("access package", None, [], [], [f"no readable manifest.json in the zip ({exc})"])
    checked = _signed(document, keys, {})
    problems = list(checked.problems)
    for entry in document.get("files", []):
        try:
            data = package.read(entry.get("path"))
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            problems.append(f"{entry.get('path')}: cannot be read from the package ({exc})")
            continue
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            problems.append(f"{entry.get('path')}: does not hash to the SHA-256 the signed manifest lists")
    checks = [*checked.checks, "every listed file re-hashed from the zip"]
    return Checked(checked.what, checked.key_id, checked.signed_fields, checks, problems)


def _pack(document: dict, keys: signing.PublicKeys, read: Callable[[str], bytes | None]) -> Checked:
    """An evidence pack: its manifest's signature, every file it lists re-hashed (each one that
    fails named), and the signed documents inside it (batch roots with their leaves, checkpoints)."""
    checked = _signed(document, keys, {})
    problems, inside = list(checked.problems), 0
    for entry in document.get("files") or []:
        path = str(entry.get("path", ""))
        if path.startswith("/") or ".." in path.split("/"):
            problems.append(f"{path}: not a path inside the pack")
            continue
        data = read(path)
        if data is None:
            problems.append(f"{path}: listed in the signed manifest but missing from the pack")
            continue
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            problems.append(f"{path}: does not hash to the SHA-256 the signed manifest lists (changed)")
            continue
        if path.startswith(SIGNED_INSIDE) and path.endswith(".json"):
            inside += 1
            leaves = read(path.rsplit("/", 1)[0] + "/leaves.jsonl") if path.startswith("batches/") else None
            own = check(data, keys, beside={"leaves": leaves} if leaves is not None else {})
            problems += [f"{path}: {p}" for p in own.problems]
    checks = [
        *checked.checks,
        f"every file the manifest lists ({len(document.get('files') or [])}) re-hashed",
        f"the signed batch roots and checkpoints inside it ({inside}), each on its own",
    ]
    return Checked(checked.what, checked.key_id, checked.signed_fields, checks, problems)
