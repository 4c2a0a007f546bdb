"""Erasure certificates: one per person, from what the batch's ledger records say about
them, written as JSON and HTML under ``certificates/`` and backed by one ledger entry.

A certificate names the person by HMAC-SHA256 of ``certificate:<id>`` under
the lifecycle's key, never by id or address; its completion time is the
ledger time of the subject-row step, so a rerun writes the same document.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from lifecycle import reports
from lifecycle.connections import hmac_key
from lifecycle.erasure.purge import purge_evidence
from lifecycle.erasure.records import batch_entries, step_evidence, step_plans
from lifecycle.erasure.steps import Step
from lifecycle.evidence import erasure_certificates


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
        entries = batch_entries(self.state.ledger, batch)
        documents = {r.subject_id: self._document(batch, steps, r, entries) for r in records}
        written = self._write(documents)
        self._record(batch, written, run_id)
        return len(written)

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
            "certificate": "erasure after account cancellation",
            "subject": self.subject_hash(subject),
            "subject_is": "HMAC-SHA256 of the subject id under the lifecycle's key (not the id, not the e-mail)",
            "requested_at": record.requested_at,
            "grace_end": record.grace_end,
            "completed_at": max(filter(None, [completed, *purged])) if completed else None,  # lake purges too
            "batch": batch,
            "datasets": datasets,
            "ledger_entries": backing,
        }

    def _write(self, documents: dict[str, dict]) -> list[dict]:
        """Write each subject's certificate as JSON and HTML under ``certificates/`` (named
        by the subject hash), several at a time; where each is and the JSON's SHA-256."""

        def files():
            for document in documents.values():
                name = f"certificates/{document['subject'][:32]}"
                yield f"{name}.json", reports.canonical(document), "application/json"
                yield (
                    f"{name}.html",
                    reports.render("erasure_certificate.html.j2", cert=document).encode("utf-8"),
                    "text/html; charset=utf-8",
                )

        written = reports.ReportSink(self.catalog).write_many(files())
        return [
            {
                "subject_id": subject,
                "subject": document["subject"],
                "completed_at": document["completed_at"],
                "location": json_file.location,
                "sha256": json_file.sha256,
            }
            for (subject, document), json_file in zip(documents.items(), written[::2])
        ]

    def _record(self, batch: str, certificates: list[dict], run_id) -> None:
        """One ledger entry for the batch's certificates (hash of each), then every subject *done*."""
        if not certificates:
            return
        self.state.ledger.append(
            "erasure.certificates",
            {
                "batch": batch,
                "certificates": [
                    {"subject": c["subject"], "location": c["location"], "sha256": c["sha256"]} for c in certificates
                ],
            },
            run_id=run_id,
            key=erasure_certificates(batch),
        )
        self.state.erasures.mark_done([(c["subject_id"], c["completed_at"], c["location"]) for c in certificates])
