"""Erasure after account cancellation: intake, notices, batched erasure, verification, certificates.

A subject's request is *pending* during its grace period, *withdrawn* if
withdrawn before the grace ends, *held* under a legal hold, *rejected* if the
subject does not exist, *due* once the grace is over (by the run's time),
then *erasing* in a batch, *done* or *failed*.  States live in the state
store.  A batch erases set-based, dataset by dataset: rows that reach the
subject through deeper links first, objects under the subject's prefixes,
then — after the rest is verified and the completion notice is sent — the
subject's own row.  Every step is recorded under a key of the batch, so a
killed run resumes without repeating a step; every notice is claimed in
``lifecycle_notices`` before it goes out, so nobody is mailed twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lifecycle.clock import iso_utc, naive_utc
from lifecycle.config import Config
from lifecycle.connections import hmac_key
from lifecycle.errors import LifecycleError
from lifecycle.heap import loaded_objects_frozen
from lifecycle.mail import personal_notices, send_claimed
from lifecycle.state import StateStore
from lifecycle.state.erasures import Intake
from lifecycle.state.ledger import Ledger, Record, canonical_json
from lifecycle.stores.contract import Selection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    dataset: str
    action: str  # delete | anonymize
    basis: str | None  # why an anonymized dataset is kept (statutory floor)


class Erasure:
    def __init__(
        self,
        config: Config,
        state: StateStore,
        open_store: Callable[[str], object] | None = None,
        mailer: Callable[[], object] | None = None,
    ):
        from lifecycle.stores import Stores

        if config.cancellation is None:
            raise LifecycleError("cancellation.yaml is not configured")
        self.config, self.cfg, self.catalog, self.state = config, config.cancellation, config.catalog, state
        self.stores = Stores(self.catalog, open_store)
        self._mailer = mailer or self._default_mailer

    # ------------------------------------------------------------------ plan

    def steps(self) -> list[Step]:
        """Every dataset reachable from the subject, in erasure order: deeper
        links first (children before parents), objects, the subject's own row last."""
        overrides = {}
        for override in self.cfg.overrides:
            for name in self.catalog.rule_targets(
                override.applies_to.categories, override.applies_to.datasets, override.action
            ):
                overrides.setdefault(name, override.action)
        floors = self.config.retention.statutory
        tables, objects = [], []
        for name in self.catalog.datasets:
            ds = self.catalog.dataset(name)
            if not ds.personal or name == self.catalog.subject.dataset:
                continue
            action = overrides.get(name, self.cfg.default_action)
            basis = next(
                (
                    f"{f.name}: {f.basis}"
                    for f in floors
                    if name in self.catalog.resolve(f.applies_to.categories, f.applies_to.datasets)
                ),
                None,
            )
            if ds.is_table:
                tables.append(
                    (
                        len(self.catalog.path_to_subject(name)),
                        Step(name, action, basis if action == "anonymize" else None),
                    )
                )
            else:
                objects.append(Step(name, "delete", None))
        ordered = [step for _, step in sorted(tables, key=lambda pair: -pair[0])]
        subject = self.catalog.subject.dataset
        return ordered + objects + [Step(subject, overrides.get(subject, self.cfg.default_action), None)]

    # ---------------------------------------------------------------- intake

    def intake(self, run_id: str, as_of: datetime) -> dict:
        """Read the requests, update every subject's state, put due subjects into batches."""
        req = self.cfg.requests
        columns = [self.catalog.dataset(req.dataset).primary_key, req.subject, req.requested_at]
        read = self.stores.of(req.dataset).read(req.dataset, columns + ([req.withdrawn_at] if req.withdrawn_at else []))
        requests = sorted(
            ((*row, None) if not req.withdrawn_at else tuple(row) for row in read),
            key=lambda row: (row[2] is None, row[2] or datetime.min),
        )
        by_subject: dict[str, list] = {}
        for request_id, subject, requested_at, withdrawn_at in requests:
            if subject is not None and requested_at is not None:
                by_subject.setdefault(str(subject), []).append((request_id, requested_at, withdrawn_at))
        known = {r.subject_id: r for r in self.state.erasures.all()}
        existing = self.stores.of(self.catalog.subject.dataset).count_by_subject(
            self.catalog.subject.dataset, Selection(subjects=tuple(by_subject))
        )
        held = {h.subject_id for h in self.state.holds.active(as_of.date())}  # any hold suspends erasure
        now, naive_as_of = iso_utc(as_of), naive_utc(as_of)
        upserts = []
        for subject, items in by_subject.items():
            record = known.get(subject)
            if record and record.state in ("done", "erasing"):
                continue
            active = [
                (i, r, w)
                for i, r, w in items
                if not (w is not None and w < self.cfg.grace_period.after(r) and w <= naive_as_of)
            ]
            first = active[0] if active else items[0]
            grace_end = self.cfg.grace_period.after(first[1])
            if subject not in existing:
                state, reason = (
                    "rejected",
                    f"no {self.catalog.subject.dataset} row with {self.catalog.subject.key} = this id",
                )
            elif not active:
                state, reason = "withdrawn", "withdrawn before the grace period ended"
            elif subject in held:
                state, reason = "held", "the subject is under legal hold"
            elif naive_as_of < grace_end:
                state, reason = "pending", None
            else:
                state, reason = "due", None
            if record and record.state == state and record.reason == reason:
                continue
            upserts.append(
                Intake(
                    subject, tuple(str(i) for i, _, _ in items), iso_utc(first[1]), iso_utc(grace_end), state, reason
                )
            )
        self.state.erasures.record_intake(upserts, at=now)
        batches = self.state.erasures.batch_due(run_id, self.cfg.batch_size)
        counts = self.state.erasures.counts()
        self.state.ledger.append(
            "erasure.intake",
            {"counts": counts, "batches": len(batches)},
            run_id=run_id,
            key=f"erasure:{run_id}:intake:{hashlib.sha256(json.dumps(counts, sort_keys=True).encode()).hexdigest()[:12]}",
        )
        log.info("intake: %s; %d batch(es) to erase", counts, len(batches))
        return {"counts": counts, "batches": batches}

    # --------------------------------------------------------------- notices

    def _default_mailer(self):
        from lifecycle.mail import Mailer

        email = self.config.incidents.email if self.config.incidents else None
        if email is None:
            raise LifecycleError("notices need incidents.yaml: email (conn_id, from)")
        return Mailer(email.conn_id, email.from_, email.max_per_second)

    def _context(self, record) -> dict:
        contact = self.config.incidents.contact if self.config.incidents else None
        return {
            "requested_on": record.requested_at[:10],
            "erase_on": record.grace_end[:10],
            "contact_name": contact.name if contact else "",
            "contact_email": contact.email if contact else "",
        }

    def _send(
        self,
        template: str,
        records: list,
        scope: str,
        extra: Callable[[object], dict] | None = None,
        run_id: str | None = None,
    ) -> dict:
        """Send ``template`` at most once per subject.

        Each person's ``lifecycle_notices`` row is committed as ``sending``
        before their mail goes out (``mail.send_claimed``); the outcome
        follows: ``sent``, ``undeliverable`` (the server refused it for good),
        ``deferred`` (it refused it for now, every try), or ``skipped`` without
        an address.  A refused completion notice does not hold the erasure up.
        A row a killed run left ``sending`` becomes ``uncertain`` and is not
        sent again: whether the server took that mail is unknown.  Notices
        that earlier versions recorded one ledger entry each
        (``notice:<template>:<subject>``) count as sent.  Then one ledger
        entry backs the outcomes not yet backed (``_summarize``).
        """
        recorded = self.state.notices.rows(template, [r.subject_id for r in records])
        interrupted = sorted(s for s, row in recorded.items() if row.status == "sending")
        if interrupted:
            self.state.notices.claims(template, scope).mark_uncertain(interrupted)
            log.warning(
                "%s: %d notice(s) left 'sending' by an interrupted run are recorded uncertain and not sent again",
                template,
                len(interrupted),
            )
        fresh = [r for r in records if r.subject_id not in recorded]
        legacy = self.state.ledger.keys_among([f"notice:{template}:{r.subject_id}" for r in fresh]) if fresh else set()
        todo = [r for r in fresh if f"notice:{template}:{r.subject_id}" not in legacy]
        counts = {
            "sent": 0,
            "no_address": 0,
            "already": len(records) - len(todo) - len(interrupted),
            "uncertain": len(interrupted),
        }
        if todo:
            outcomes = self._mail(template, todo, scope, extra)
            counts["already"] += outcomes.pop("taken", 0)
            for status, n in outcomes.items():
                counts[status] = counts.get(status, 0) + n
        unbacked = [s for s, row in recorded.items() if row.ledger_hash is None] + [r.subject_id for r in todo]
        if unbacked:
            self._summarize(template, unbacked, scope, run_id)
        return counts

    def _summarize(self, template: str, subjects: list[str], scope: str, run_id: str | None) -> None:
        """One ledger entry for the outcomes among ``subjects`` no entry backs yet (an
        interrupted call's too): counts and the SHA-256 of [subject, status, Message-ID]
        rows in subject order; each row then records the entry's hash."""
        rows = [
            row
            for _, row in sorted(self.state.notices.rows(template, subjects).items())
            if row.ledger_hash is None and row.status != "sending"
        ]
        if not rows:
            return
        listing = [[row.subject_id, row.status, row.message_id] for row in rows]
        digest = hashlib.sha256(canonical_json(listing).encode("utf-8")).hexdigest()
        statuses: dict[str, int] = {}
        for _, status, _ in listing:
            statuses[status] = statuses.get(status, 0) + 1
        entry = self.state.ledger.append(
            "notice.batch",
            {
                "template": template,
                "scope": scope,
                "subjects": len(listing),
                "statuses": statuses,
                "notices_sha256": digest,
            },
            run_id=run_id,
            key=f"notices:{template}:{digest[:32]}",
        )
        self.state.notices.back(template, [row.subject_id for row in rows], entry.entry_hash)

    def _mail(self, template: str, todo: list, scope: str, extra) -> dict[str, int]:
        """Render, claim and send each notice (``mail.send_claimed``); counts by outcome."""
        contacts = self.stores.of(self.catalog.subject.dataset).contacts([r.subject_id for r in todo])
        fallback = self.config.incidents.locales[0] if self.config.incidents else "en"
        email = self.config.incidents.email if self.config.incidents else None
        notice = personal_notices(template, fallback)
        records = {r.subject_id: r for r in todo}
        with self._mailer() as mailer:

            def prepare(subject: str):
                person, record = contacts.get(subject) or {}, records[subject]
                if not person.get("email"):
                    return None
                context = {**self._context(record), **(extra(record) if extra else {})}
                return mailer.compose(
                    person["email"],
                    notice(person.get("locale"), person.get("name"), **context),
                    key=f"notice:{template}:{subject}",
                )

            retries = {"attempts": email.retry_attempts, "backoff": email.retry_backoff.seconds} if email else {}
            return dict(
                send_claimed(
                    mailer, list(records), self.state.notices.claims(template, scope), prepare=prepare, **retries
                )
            )

    def notify_scheduled(self, run_id: str | None = None) -> dict:
        template = self.cfg.notify.scheduled
        if not template:
            return {"sent": 0}
        records = self.state.erasures.in_states("pending", "due", "erasing")
        counts = self._send(template, records, run_id or "scheduled", run_id=run_id)
        log.info("scheduled notices: %s", counts)
        return counts

    # ----------------------------------------------------------------- erase

    def erase(self, batch: str, as_of: datetime, *, run_id: str | None = None) -> dict:
        """Erase one batch; steps and notices already recorded are not repeated."""
        with loaded_objects_frozen():
            return self._erase(batch, as_of, run_id)

    def _erase(self, batch: str, as_of: datetime, run_id: str | None) -> dict:
        records = self.state.erasures.erasing(batch)
        subjects = [r.subject_id for r in records]
        if not subjects:
            return {"batch": batch, "subjects": 0}
        held = {h.subject_id for h in self.state.holds.active(as_of.date())} & set(subjects)
        if held:
            self.state.erasures.set_state(held, "held", "put under legal hold before erasure", unbatch=True)
            subjects = [s for s in subjects if s not in held]
        recorder = _StepRecords(self.state.ledger, batch, run_id)
        steps = self.steps()
        failed: dict[str, str] = {}
        notified: dict = {}
        tables = [s for s in steps[:-1] if self.catalog.dataset(s.dataset).is_table]
        for step in tables:
            self._apply(recorder, step, subjects)
        self._erase_objects(recorder, [s for s in steps[:-1] if s not in tables], subjects)
        recorder.flush()
        failed.update(self._verify(batch, steps[:-1], subjects))
        ok = [s for s in subjects if s not in failed]
        if self.cfg.notify.completed and ok:
            retained = self._retained(batch, steps, ok)
            notified = self._send(
                self.cfg.notify.completed,
                [r for r in records if r.subject_id in ok],
                batch,
                extra=lambda r: {"retained": retained.get(r.subject_id, [])},
                run_id=run_id,
            )
        self._apply(recorder, steps[-1], ok)
        recorder.flush()
        failed.update(self._verify(batch, steps[-1:], ok))
        ok = [s for s in ok if s not in failed]
        entries = self._entries(batch)
        certificates = self._certify(
            {
                record.subject_id: self._certificate(batch, steps, record, entries)
                for record in records
                if record.subject_id in ok
            }
        )
        self._record_certificates(batch, certificates, run_id)
        if failed:
            self.state.erasures.set_state(set(failed), "failed", "; ".join(sorted(set(failed.values())))[:2000])
            raise LifecycleError(
                f"batch {batch}: {len(failed)} subject(s) failed verification: "
                + "; ".join(sorted(set(failed.values()))[:5])
            )
        return {
            "batch": batch,
            "subjects": len(ok),
            "held": len(held),
            "certificates": len(certificates),
            "notices": notified,
        }

    def _apply(self, recorder: _StepRecords, step: Step, subjects: list[str]) -> None:
        """Record what a table step removes per subject before it is committed, then record that it did.

        The DELETE (or the anonymizing UPDATE) runs in a transaction that
        reports the rows per subject (``before_commit``); the plan is appended
        to the ledger, and only then is the data transaction committed.  A
        crash before the plan rolls the step back; after it, the rerun reuses the plan.
        """
        if not subjects or recorder.done(step.dataset):
            return
        store = self.stores.of(step.dataset)
        selection = Selection(subjects=tuple(subjects))

        def plan(counts: dict, keys: list) -> None:
            recorder.plan(step.dataset, {"action": step.action, "rows": counts, "keys": keys, "basis": step.basis})

        if step.action == "delete":
            change = store.delete(step.dataset, selection, before_commit=plan)
        else:
            fields = [f for f in self.catalog.personal_fields(step.dataset) if f.spec.anonymize]
            key = hmac_key(self.catalog) if any(f.spec.anonymize.strategy == "hmac" for f in fields) else None
            change = store.anonymize(step.dataset, selection, fields, hmac_key=key, unlink=True, before_commit=plan)
        recorder.record_done(step.dataset, {"action": step.action, "rows": change.rows})
        log.info("%s: %s %d row(s) of %d subject(s)", step.dataset, step.action + "d", change.rows, len(subjects))

    def _erase_objects(self, recorder: _StepRecords, steps: list[Step], subjects: list[str]) -> None:
        """Delete every version and marker under the subjects' prefixes, dataset by dataset:
        the plan (versions per subject) in the ledger first, then the deletes, then
        what was deleted and what Object Lock kept."""
        for step in steps:
            if not subjects or recorder.done(step.dataset):
                continue
            store = self.stores.of(step.dataset)
            change = store.delete(
                step.dataset,
                Selection(subjects=tuple(subjects)),
                before_commit=lambda counts, _, step=step: recorder.plan(
                    step.dataset,
                    {"action": "delete", "versions": {s: n for s, n in counts.items() if s is not None and n}},
                ),
            )
            locked: dict[str, list] = {}
            for kept in change.kept:
                locked.setdefault(kept.subject, []).append(
                    {k: kept.detail.get(k) for k in ("mode", "legal_hold", "retain_until")}
                )
            recorder.record_done(step.dataset, {"action": "delete", "versions": change.rows, "locked": locked})
            log.info(
                "%s: deleted %d object version(s) and marker(s); %d locked", step.dataset, change.rows, len(change.kept)
            )

    # ---------------------------------------------------------------- verify

    def _verify(self, batch: str, steps: list[Step], subjects: list[str]) -> dict[str, str]:
        """Subjects something identifying still reaches, with the reason."""
        failed: dict[str, str] = {}
        if not subjects:
            return failed
        plans = {e.payload["dataset"]: e.payload for e in self._entries(batch).values() if e.kind == "erasure.plan"}
        mine = Selection(subjects=tuple(subjects))
        for step in steps:
            store = self.stores.of(step.dataset)
            if not self.catalog.dataset(step.dataset).is_table:
                for subject, n in store.remaining(step.dataset, mine).by_subject.items():
                    failed[subject] = f"{step.dataset}: {n} object version(s) remain"
                continue
            for subject, n in store.count_by_subject(step.dataset, mine).items():
                failed[subject] = f"{step.dataset}: {n} row(s) still reach the subject"
            keys = plans.get(step.dataset, {}).get("keys") or []
            fields = tuple(f.column for f in self.catalog.personal_fields(step.dataset) if f.spec.anonymize)
            if keys and fields:
                left = store.count(step.dataset, Selection(keys=tuple(keys), pending_anonymization=fields))
                if left:
                    for subject in subjects:
                        failed.setdefault(
                            subject, f"{step.dataset}: {left} anonymized row(s) still hold personal values"
                        )
        return failed

    # ----------------------------------------------------------- certificate

    def _entries(self, batch: str) -> dict[str, object]:
        """The batch's plan and done records by key (one query)."""
        return {e.idempotency_key: e for e in self.state.ledger.entries_with_prefix(f"erasure:{batch}:")}

    def _retained(self, batch: str, steps: list[Step], subjects: list[str]) -> dict[str, list[str]]:
        basis = {s.dataset: s.basis for s in steps}
        retained: dict[str, list[str]] = {}
        for entry in self._entries(batch).values():
            p = entry.payload
            if entry.kind == "erasure.plan" and p["action"] == "anonymize":
                for subject, n in p.get("rows", {}).items():
                    if subject in subjects and n:
                        retained.setdefault(subject, []).append(
                            f"{p['dataset']}: {n} record(s), anonymized ({basis.get(p['dataset']) or 'kept by configuration'})"
                        )
        return retained

    def subject_hash(self, subject: str) -> str:
        if not hasattr(self, "_key"):
            self._key = hmac_key(self.catalog)
        return hmac.new(self._key, f"certificate:{subject}".encode(), hashlib.sha256).hexdigest()

    def _certificate(self, batch: str, steps: list[Step], record, entries: dict) -> dict:
        """One subject's certificate: what the ledger entries of the batch record about them."""
        subject = record.subject_id
        datasets, backing, completed = [], [], None
        for step in steps:
            plan = entries.get(f"erasure:{batch}:{step.dataset}:plan")
            done = entries.get(f"erasure:{batch}:{step.dataset}:done")
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
            if plan and "rows" in plan.payload:
                n = plan.payload["rows"].get(subject, 0)
                row["deleted" if step.action == "delete" else "anonymized"] = n
                if step.action == "anonymize" and n:
                    row["retained"] = {
                        "why": step.basis or "kept by configuration (overrides)",
                        "form": "anonymized, unlinked",
                    }
            if plan and "versions" in plan.payload:
                locks = (done.payload.get("locked", {}) if done else {}).get(subject, [])
                row["object_versions_deleted"] = plan.payload["versions"].get(subject, 0) - len(locks)
                if locks:
                    row["retained"] = {"why": "S3 Object Lock", "locks": locks}
            datasets.append(row)
            backing += [e.entry_hash for e in (plan, done) if e]
            if step.dataset == self.catalog.subject.dataset and done:
                completed = done.recorded_at
        return {
            "certificate": "erasure after account cancellation",
            "subject": self.subject_hash(subject),
            "subject_is": "HMAC-SHA256 of the subject id under the lifecycle's key (not the id, not the e-mail)",
            "requested_at": record.requested_at,
            "grace_end": record.grace_end,
            "completed_at": completed,
            "batch": batch,
            "datasets": datasets,
            "ledger_entries": backing,
        }

    def _certify(self, documents: dict[str, dict]) -> list[dict]:
        """Write each subject's certificate as JSON and HTML under ``certificates/`` (named
        by the subject hash), several at a time; where each is and the JSON's SHA-256."""
        from lifecycle import reports

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

    def _record_certificates(self, batch: str, certificates: list[dict], run_id) -> None:
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
            key=f"erasure:{batch}:certificates",
        )
        self.state.erasures.mark_done([(c["subject_id"], c["completed_at"], c["location"]) for c in certificates])

    # --------------------------------------------------------------- summary

    def overdue(self, as_of: datetime) -> list[dict]:
        """Requests not done within ``complete_within`` (legal holds suspend the clock)."""
        late = []
        for r in self.state.erasures.in_states("pending", "due", "erasing", "failed"):
            deadline = self.cfg.complete_within.after(datetime.fromisoformat(r.requested_at))
            if deadline < as_of:
                late.append(
                    {"subject": self.subject_hash(r.subject_id), "state": r.state, "deadline": iso_utc(deadline)}
                )
        return late

    def report(self, run_id: str, as_of: datetime) -> dict:
        from lifecycle import reports

        counts = self.state.erasures.counts()
        done = self.state.erasures.done_in_run(run_id)
        notified = self.state.notices.counts()
        document = {
            "report": "cancellation erasure",
            "run_id": run_id,
            "as_of": iso_utc(as_of),
            "states": counts,
            "notices": notified,
            "completed_this_run": len(done),
            "certificates": sorted(r.certificate for r in done if r.certificate),
            "overdue": self.overdue(as_of),
            "complete_within": str(self.cfg.complete_within),
        }
        sink = reports.ReportSink(self.catalog)
        folder = (
            f"cancellation/{iso_utc(as_of)[:10]}/{''.join(c if c.isalnum() or c in '-_.' else '_' for c in run_id)}"
        )
        written = sink.write(f"{folder}/report.json", reports.canonical(document), content_type="application/json")
        html = sink.write(
            f"{folder}/report.html",
            reports.render("cancellation_report.html.j2", report=document).encode("utf-8"),
            content_type="text/html; charset=utf-8",
        )
        self.state.ledger.append("erasure.report", {"json": written.location, "sha256": written.sha256}, run_id=run_id)
        return {
            "json": written.location,
            "html": html.location,
            "states": counts,
            "overdue": len(document["overdue"]),
            "certificates": document["certificates"],
        }


class _StepRecords:
    """A batch's plan and done records in the ledger, each step's *done* held back to be
    appended with the next step's plan: one commit for the two.

    A crash between a step's commit and the append of its done record leaves
    the step planned and not done, whether or not that record was held: the
    rerun does the step again under the plan recorded, and finds its rows
    and versions gone.  ``flush`` before anything reads the done records.
    """

    def __init__(self, ledger: Ledger, batch: str, run_id: str | None):
        self.ledger, self.batch, self.run_id = ledger, batch, run_id
        self.recorded = ledger.keys_with_prefix(f"erasure:{batch}:")
        self._held: list[Record] = []

    def done(self, dataset: str) -> bool:
        return f"erasure:{self.batch}:{dataset}:done" in self.recorded

    def plan(self, dataset: str, payload: dict) -> None:
        """Append the step's plan (unless a run before recorded it), with the done records held."""
        key = f"erasure:{self.batch}:{dataset}:plan"
        self._append([] if key in self.recorded else [self._record("plan", dataset, payload)])

    def record_done(self, dataset: str, payload: dict) -> None:
        record = self._record("done", dataset, payload)
        self._held.append(record)
        self.recorded.add(record.key)

    def _record(self, what: str, dataset: str, payload: dict) -> Record:
        """``erasure.<what>`` of a step, under ``erasure:<batch>:<dataset>:<what>``, naming both."""
        return Record(
            f"erasure.{what}",
            {"batch": self.batch, "dataset": dataset, **payload},
            f"erasure:{self.batch}:{dataset}:{what}",
        )

    def flush(self) -> None:
        self._append([])

    def _append(self, records: list[Record]) -> None:
        records, self._held = self._held + records, []
        if records:
            self.ledger.append_many(records, run_id=self.run_id)
            self.recorded.update(r.key for r in records)
