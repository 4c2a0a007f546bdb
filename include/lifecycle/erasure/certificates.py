"""Erasure certificates: one signed document per batch, a Merkle root over one leaf per
person (what the batch's ledger records say about them), backed by one ledger entry.

Under ``certificates/<batch>/``: ``leaves.jsonl`` (one leaf a line, ordered by
subject hash) and ``root.json`` / ``root.html`` (the root, Ed25519-signed).  A
person's certificate — their leaf, its inclusion proof and the signed root — is
rendered on demand (``person``), not written per person.  A leaf names the
person by HMAC-SHA256 of ``certificate:<id>`` under the lifecycle's key, never
by id or address; its completion time is the ledger time of the subject-row
step, so a rerun writes the same documents.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json

from lifecycle import merkle, reports, signing
from lifecycle.connections import hmac_key
from lifecycle.erasure.purge import purge_evidence
from lifecycle.erasure.records import batch_entries, step_evidence, step_plans
from lifecycle.erasure.steps import Step
from lifecycle.errors import LifecycleError, TerminalStoreError
from lifecycle.evidence import erasure_certificates

FOLDER, ROOT, LEAVES = "certificates", "root", "leaves.jsonl"
SUBJECT_IS = "HMAC-SHA256 of the subject id under the lifecycle's key (not the id, not the e-mail)"


class Certificates:
    def __init__(self, catalog, state):
        self.catalog, self.state = catalog, state

    @functools.cached_property
    def _key(self) -> bytes:
        return hmac_key(self.catalog)

    def subject_hash(self, subject: str) -> str:
        return hmac.new(self._key, f"certificate:{subject}".encode(), hashlib.sha256).hexdigest()

    def issue(self, batch: str, steps: list[Step], records: list, run_id: str | None) -> int:
        """Certify ``records`` (erased and verified), then mark them *done*; how many."""
        if not records:
            return 0
        entries = batch_entries(self.state.ledger, batch)
        leaves = {r.subject_id: self._document(batch, steps, r, entries) for r in records}
        root = self._write(batch, leaves, run_id)
        self._record(records, leaves, root)
        return len(leaves)

    @staticmethod
    def retained(entries: dict, steps: list[Step], subjects: set[str]) -> dict[str, list[str]]:
        """What is kept of each subject, anonymized, and why: for the completion notice."""
        basis = {s.dataset: s.basis for s in steps}
        retained: dict[str, list[str]] = {}
        for plan in step_plans(entries).values():
            if plan.action != "anonymize":
                continue
            why = basis.get(plan.dataset) or "kept by configuration"
            for subject, n in (plan.rows or {}).items():
                if subject in subjects and n:
                    retained.setdefault(subject, []).append(f"{plan.dataset}: {n} record(s), anonymized ({why})")
        return retained

    def _document(self, batch: str, steps: list[Step], record, entries: dict) -> dict:
        """One subject's certificate: what the ledger entries of the batch record about them."""
        subject = record.subject_id
        datasets, backing, completed, purged = [], [], None, []
        for step in steps:
            evidence = step_evidence(entries, batch, step.dataset)
            plan, done = evidence.plan, evidence.done
            if plan is None and done is None:
                continue
            row = {
                "dataset": step.dataset,
                "action": step.action,
                "deleted": 0,
                "anonymized": 0,
                "object_versions_deleted": 0,
                "retained": None,
            }
            if plan and plan.rows is not None:
                n = plan.rows.get(subject, 0)
                row["deleted" if step.action == "delete" else "anonymized"] = n
                if step.action == "anonymize" and n:
                    row["retained"] = {
                        "why": step.basis or "kept by configuration (overrides)",
                        "form": "anonymized, unlinked" if step.link == "clear" else "anonymized, link kept",
                    }
            if plan and plan.versions is not None:
                locks = (done.locked if done else {}).get(subject, [])
                row["object_versions_deleted"] = plan.versions.get(subject, 0) - len(locks)
                if locks:
                    row["retained"] = {"why": "S3 Object Lock", "locks": locks}
            purge, purge_hashes = purge_evidence(entries, batch, step.dataset)
            if purge is not None:
                row["purge"] = purge
                purged.append(purge.get("purged_at"))
            datasets.append(row)
            backing += evidence.hashes + purge_hashes
            if step.dataset == self.catalog.subject.dataset and done:
                completed = evidence.completed_at
        return {
            "subject": self.subject_hash(subject),
            "requested_at": record.requested_at,
            "grace_end": record.grace_end,
            "completed_at": max(filter(None, [completed, *purged])) if completed else None,  # lake purges too
            "batch": batch,
            "datasets": datasets,
            "ledger_entries": backing,
        }

    def _write(self, batch: str, leaves: dict[str, dict], run_id) -> dict:
        """The batch's leaves (one JSON line each, ordered by subject hash) and its signed root
        document under ``certificates/<batch>/``, the root backed by one ledger entry.  People the
        batch certified before (a later run finishing the rest) stay leaves of the new root."""
        folder = f"{FOLDER}/{reports.safe_name(batch)}"
        writer = reports.ReportWriter(self.catalog, self.state.ledger)
        earlier = self._earlier_leaves(writer.sink, folder)
        merged = {leaf["subject"]: leaf for leaf in earlier} | {leaf["subject"]: leaf for leaf in leaves.values()}
        ordered = [merged[subject] for subject in sorted(merged)]
        lines = b"".join(signing.compact(leaf) + b"\n" for leaf in ordered)
        stored = writer.sink.write(f"{folder}/{LEAVES}", lines, content_type="application/x-ndjson")
        document = {
            "certificate": "erasure after account cancellation: one batch",
            "batch": batch,
            "subjects": len(ordered),
            "subject_is": SUBJECT_IS,
            "completed_at": max((leaf["completed_at"] or "" for leaf in ordered), default="") or None,
            "merkle": merkle.DESCRIPTION | {"root": merkle.root(ordered), "order": "leaves by subject hash"},
            "leaves": {"key": f"{folder}/{LEAVES}", "sha256": stored.sha256, "count": len(ordered)},
            "person_certificate": "leaf + inclusion proof + this document: python -m lifecycle certificate show",
        }
        report = writer.write(
            f"{folder}/{ROOT}",
            document,
            template="erasure_batch.html.j2",
            kind="erasure.certificates",
            run_id=run_id,
            key=f"{erasure_certificates(batch)}:{document['merkle']['root'][:16]}",  # once per root
            about={"batch": batch, "root": document["merkle"]["root"], "subjects": len(ordered)},
        )
        return {"location": report.json.location, "sha256": report.json.sha256, "root": document["merkle"]["root"]}

    @staticmethod
    def _earlier_leaves(sink, folder: str) -> list[dict]:
        """The leaves a root of this batch already certifies (none, the first time)."""
        try:
            raw = sink.read(f"{folder}/{LEAVES}")
        except (OSError, TerminalStoreError):
            return []
        return [json.loads(line) for line in raw.splitlines() if line.strip()]

    def _record(self, records: list, leaves: dict[str, dict], root: dict) -> None:
        """Every certified subject *done*, their certificate named as the batch root and their hash."""
        self.state.erasures.mark_done(
            [
                (
                    r.subject_id,
                    leaves[r.subject_id]["completed_at"],
                    f"{root['location']}#{leaves[r.subject_id]['subject']}",
                )
                for r in records
            ]
        )

    def person(self, batch: str, subject: str) -> dict:
        """One person's certificate, rendered on demand: their leaf, its inclusion proof and the
        batch's signed root.  ``subject``: the subject hash (or the start of it, 16+ digits)."""
        if reports.safe_name(batch).strip(".") == "":
            raise LifecycleError(f"{batch!r} is not an erasure batch")
        folder = f"{FOLDER}/{reports.safe_name(batch)}"
        sink = reports.ReportSink(self.catalog)
        try:
            root = json.loads(sink.read(f"{folder}/{ROOT}.json"))
            leaves = [json.loads(line) for line in sink.read(f"{folder}/{LEAVES}").splitlines() if line.strip()]
        except (OSError, TerminalStoreError, ValueError) as exc:
            raise LifecycleError(
                f"batch {batch!r}: no readable certificate root and leaves in {folder}/ ({exc})"
            ) from None
        found = [i for i, leaf in enumerate(leaves) if len(subject) >= 16 and leaf["subject"].startswith(subject)]
        if len(found) != 1:
            raise LifecycleError(f"batch {batch!r}: {len(found)} certified person(s) match subject {subject!r}")
        return person_certificate(leaves[found[0]], merkle.proof(leaves, found[0]), root)


def person_certificate(leaf: dict, proof: list[dict], root: dict) -> dict:
    """The document a person (or anyone they show it to) checks with the public key alone."""
    return {
        "certificate": "erasure certificate of one person",
        "how_to_check": "fold the proof onto the leaf's hash (see batch_root.merkle) to get batch_root.merkle.root, "
        "and check batch_root's Ed25519 attestation: python -m lifecycle evidence verify FILE",
        "leaf": leaf,
        "proof": proof,
        "batch_root": root,
    }
