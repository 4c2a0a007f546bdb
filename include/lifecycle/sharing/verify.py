"""``manifest verify``: does a delivered manifest still say what was delivered?

Its bytes must be the canonical form its signature covers, the signature must
match under the signing key, and every file it names must re-hash from S3 to
the size and SHA-256 it records.
"""

from __future__ import annotations

import hmac
import json

from lifecycle.errors import TerminalStoreError
from lifecycle.sharing.manifest import sign


def verify_manifest(store, key: str, signing_key: bytes) -> list[str]:
    """Problems with a delivered manifest: its signature, its canonical bytes, and every
    file it names re-hashed from S3 (empty: it verifies)."""
    from lifecycle import reports

    try:
        raw = store.get_bytes(key)
    except TerminalStoreError as exc:
        return [f"s3://{store.bucket}/{key}: cannot read the manifest ({exc.reason})"]
    try:
        document = json.loads(raw)
    except ValueError:
        return [f"s3://{store.bucket}/{key}: not valid JSON (edited or truncated)"]
    problems = []
    if raw != reports.canonical(document):
        problems.append("the manifest's bytes are not the canonical form its signature covers (edited)")
    claimed = (document.get("signature") or {}).get("value") or ""
    if not hmac.compare_digest(claimed, sign(document, signing_key)):
        problems.append("the signature does not match the manifest (edited, or signed with another key)")
    named = [(d.get("dataset"), d.get("file") or {}) for d in document.get("datasets", [])]
    if document.get("page"):
        named.append(("manifest page", document["page"]))
    for label, entry in named:
        problem = _file_problem(store, label, entry)
        if problem:
            problems.append(problem)
    return problems


def _file_problem(store, label: str, entry: dict) -> str | None:
    """Why the object a manifest names does not match its size and SHA-256 (None: it does)."""
    try:
        size, sha256 = store.digest(entry["key"])
    except (TerminalStoreError, KeyError) as exc:
        return f"{label}: {entry.get('key')}: cannot be read ({exc.reason if isinstance(exc, TerminalStoreError) else 'no key'})"
    if (size, sha256) != (entry.get("size"), entry.get("sha256")):
        return (
            f"{label}: {entry['key']}: {size} bytes with SHA-256 {sha256[:16]}…, the manifest says "
            f"{entry.get('size')} bytes with {str(entry.get('sha256'))[:16]}…"
        )
    return None
