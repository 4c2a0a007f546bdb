"""Ledger checkpoints: the ledger's head, signed and published where the operator cannot
quietly rewrite it.

At the end of a run, when the ledger grew since the last checkpoint, one
document is written to the evidence destination (catalog.yaml
``evidence.checkpoints``: a folder, or an S3 system under a prefix — a bucket
with Object Lock default retention keeps each checkpoint immutable):
``checkpoints/<entries, 12 digits>.json`` with the number of entries, the head
hash, the run's time, the previous checkpoint (key, entries, head hash and
the SHA-256 of its bytes) and the hash of every entry appended since it, signed
with Ed25519.  ``check`` proves the ledger still extends every checkpoint: an
entry edited, removed, reordered or re-chained (every hash recomputed from the
first) no longer has the hash a checkpoint published, and is named.
"""

from __future__ import annotations

import hashlib
import json

from lifecycle import reports, signing

FOLDER = "checkpoints/"
KIND = "ledger.checkpoint"


def sink(catalog) -> reports.ReportSink:
    return reports.ReportSink(catalog, catalog.model.evidence.checkpoints)


def _listed(destination: reports.ReportSink) -> list[str]:
    return [k for k in destination.keys(FOLDER) if k.endswith(".json")]


def publish(catalog, ledger, *, time: str, dag_id: str | None, run_id: str | None) -> str | None:
    """Write a checkpoint when the ledger grew since the last one; where it went (None: nothing new)."""
    entries, _ = ledger.head()
    destination = sink(catalog)
    listed = _listed(destination)
    previous = None
    if listed:
        raw = destination.read(listed[-1])
        last = json.loads(raw)
        if int(last.get("entries", 0)) >= entries:
            return None
        previous = {
            "key": listed[-1],
            "entries": last["entries"],
            "head_hash": last["head_hash"],
            "sha256": hashlib.sha256(raw).hexdigest(),
        }
    elif entries == 0:
        return None
    first = previous["entries"] + 1 if previous else 1
    hashes = ledger.hashes(first, entries)
    document = {
        "checkpoint": "the lifecycle ledger's head",
        "entries": entries,
        "head_hash": hashes[entries],
        "time": time,
        "run": {"dag_id": dag_id, "run_id": run_id},
        "previous": previous,
        "appended": {"from": first, "entry_hashes": [hashes[seq] for seq in sorted(hashes)]},
    }
    signed = reports.signer(catalog).sign(document, KIND)
    destination.write(reports.PUBLIC_KEYS, reports.public_keys(catalog).published(), content_type="application/json")
    return destination.write(
        f"{FOLDER}{entries:012d}.json", reports.canonical(signed), content_type="application/json"
    ).location


def check(catalog, ledger, keys: signing.PublicKeys) -> tuple[int, list[str]]:
    """How many checkpoints were checked, and every problem: a checkpoint's signature or its link
    to the one before, and each ledger entry whose hash is not what a checkpoint published."""
    destination = sink(catalog)
    problems, previous = [], None
    listed = _listed(destination)
    for key in listed:
        raw = destination.read(key)
        try:
            document = json.loads(raw)
        except ValueError:
            problems.append(f"{key}: not valid JSON (edited or truncated)")
            continue
        verdict = signing.verify(document, keys)
        problems += [f"{key}: {p}" for p in verdict.problems]
        problems += _link(key, document, previous)
        problems += _entries(key, document, ledger)
        previous = (key, document, hashlib.sha256(raw).hexdigest())
    return len(listed), problems


def _link(key: str, document: dict, previous) -> list[str]:
    """Does ``document`` name the checkpoint before it, as it is?"""
    named = document.get("previous")
    if previous is None:
        return (
            []
            if named is None
            else [f"{key}: names a previous checkpoint {named.get('key')!r} that is not there (removed)"]
        )
    before_key, _before, sha = previous
    if not named or (named.get("key"), named.get("sha256")) != (before_key, sha):
        return [f"{key}: does not follow {before_key} as published (a checkpoint removed, replaced or inserted)"]
    return []


def _entries(key: str, document: dict, ledger) -> list[str]:
    """Each entry the checkpoint published, compared with the ledger now; the first mismatch named."""
    appended = document.get("appended") or {}
    first, published = int(appended.get("from", 1)), list(appended.get("entry_hashes") or [])
    last = first + len(published) - 1
    now = ledger.hashes(first, last)
    for seq, expected in zip(range(first, last + 1), published):
        if seq not in now:
            return [f"{key}: ledger entry {seq} is missing (removed after checkpoint {document.get('entries')})"]
        if now[seq] != expected:
            return [
                f"{key}: ledger entry {seq} has hash {now[seq][:16]}…, the checkpoint published {expected[:16]}… "
                "(edited, removed, reordered or re-chained after the checkpoint)"
            ]
    if published and published[-1] != document.get("head_hash"):
        return [f"{key}: its head hash is not the last entry hash it lists (the checkpoint is inconsistent)"]
    return []
