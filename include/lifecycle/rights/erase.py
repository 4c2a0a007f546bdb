"""The ``erase`` kind: delete some of a person's information and keep the account.

For the chosen categories, rows whose whole-row category is chosen are
deleted and fields within them are anonymized (their ``anonymize``
strategy), in every dataset reachable from the person; objects of a chosen
category go with every version.  The person's own row is never deleted:
only its fields within the categories are anonymized.  What stays is named:

* rows inside a statutory floor (``retention.yaml: statutory``) by the floor;
* datasets under a legal hold for the person, by the hold;
* rows another dataset's remaining rows still point at (a foreign key), by
  that reference.

Each step is an erasure step of batch ``request:<id>`` in the ledger (plan
before the change commits, done after: ``erasure.records``), so a killed
run resumes without repeating a step; verification counts what still
matches; a certificate names the person by HMAC, as a cancellation's does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from lifecycle import reports
from lifecycle.connections import hmac_key
from lifecycle.erasure.certificates import Certificates
from lifecycle.erasure.records import StepDone, StepPlan, StepRecords, batch_entries, step_evidence, step_plans
from lifecycle.errors import LifecycleError
from lifecycle.evidence import request_event
from lifecycle.stores.contract import Selection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EraseStep:
    dataset: str
    action: str  # delete | anonymize
    fields: tuple[str, ...]  # anonymize: the columns within the chosen categories
    older_than: datetime | None  # a statutory floor keeps rows created since
    floor: str | None  # the floor's name and basis
    held: bool  # a legal hold covers the dataset for this person


def batch_of(request) -> str:
    return f"request:{request.request_id}"


def erase_steps(rights, request, as_of: datetime) -> list[EraseStep]:
    """The datasets the chosen categories touch, deeper links first, the person's own row last."""
    catalog, subject = rights.catalog, rights.catalog.subject.dataset
    categories = list(request.categories)
    deleted = catalog.rule_targets(categories, [], "delete")
    anonymized = catalog.rule_targets(categories, [], "anonymize")
    holds = [h for h in rights.state.holds.active(as_of.date()) if h.subject_id == request.subject_id]
    steps = []
    for name in catalog.datasets:
        ds = catalog.dataset(name)
        if not ds.personal:
            continue
        if name in deleted and name != subject:
            action, fields = "delete", ()
        elif anonymized.get(name):
            action, fields = "anonymize", tuple(f.column for f in anonymized[name])
        else:
            continue
        cutoff, floor = _floor(rights, name, as_of)
        depth = -len(catalog.path_to_subject(name)) if ds.is_table else 0
        steps.append(
            (
                (name == subject, not ds.is_table, depth),
                EraseStep(name, action, fields, cutoff, floor, any(h.covers(name) for h in holds)),
            )
        )
    return [step for _, step in sorted(steps, key=lambda pair: pair[0])]


def _floor(rights, dataset: str, as_of: datetime) -> tuple[datetime | None, str | None]:
    """The earliest cutoff of the statutory floors covering ``dataset``: rows created after it stay."""
    found = None
    for floor in rights.config.retention.statutory:
        if dataset in rights.catalog.resolve(floor.applies_to.categories, floor.applies_to.datasets):
            cutoff = floor.minimum.before(as_of)
            if found is None or cutoff < found[0]:
                found = (cutoff, f"{floor.name}: {floor.basis}")
    return found or (None, None)


def _selection(request, step: EraseStep, going: list[EraseStep]) -> Selection:
    mine = (request.subject_id,)
    if step.action == "anonymize":
        return Selection(subjects=mine, older_than=step.older_than)
    others = tuple(
        (s.dataset, Selection(subjects=mine, older_than=s.older_than))
        for s in going
        if s.action == "delete" and s.dataset != step.dataset and not s.held
    )
    return Selection(subjects=mine, older_than=step.older_than, kept_if_referenced=True, going_with=others)


def plan(rights, request, as_of: datetime) -> dict:
    """Per dataset: what would go or be anonymized, and what stays and why (counts only)."""
    steps = erase_steps(rights, request, as_of)
    if not steps:
        raise LifecycleError(f"request {request.request_id}: no dataset holds {', '.join(request.categories)}")
    mine = Selection(subjects=(request.subject_id,))
    datasets = {}
    for step in steps:
        store = rights.stores.of(step.dataset)
        table = rights.catalog.dataset(step.dataset).is_table
        total = store.count(step.dataset, mine) if table else store.remaining(step.dataset, mine).items
        entry = {"action": step.action, "found": total}
        if step.held:
            entry.update(selected=0, kept={"legal hold": total})
        elif table:
            selected = store.count(step.dataset, _selection(request, step, steps))
            entry["selected"] = selected
            if step.floor and total > selected:
                entry["kept"] = {step.floor: total - selected}
        else:
            entry["selected"] = total
        if step.fields:
            entry["fields"] = list(step.fields)
        datasets[step.dataset] = entry
    return {"categories": list(request.categories), "datasets": datasets}


def carry_out(rights, request, run_id: str, as_of: datetime) -> dict:
    """Every step but the person's own row, verified; the notice, while the address on file
    is still there; then the own row's fields, verified; the certificate."""
    steps = erase_steps(rights, request, as_of)
    batch = batch_of(request)
    recorder = StepRecords(rights.state.ledger, batch, run_id)
    subject = rights.catalog.subject.dataset
    linked = [s for s in steps if s.dataset != subject]
    own = [s for s in steps if s.dataset == subject]
    for step in linked:
        _apply(rights, request, recorder, step, steps)
    recorder.flush()
    _verify(rights, request, linked, batch)
    kept = _kept(rights, request, steps, as_of)
    titles = [rights.catalog.model.categories[c].title or c for c in request.categories]
    notice = rights.notify(request, rights.settings.notify.erased, {"categories": titles, "kept": kept}, run_id)
    for step in own:
        _apply(rights, request, recorder, step, steps)
    recorder.flush()
    _verify(rights, request, own, batch)
    certificate = _certificate(rights, request, steps, batch, run_id)
    entries = batch_entries(rights.state.ledger, batch)
    changed = {}
    for step in steps:
        done = step_evidence(entries, batch, step.dataset).done
        if done is not None:
            changed[step.dataset] = {
                "action": step.action,
                "changed": done.rows if done.rows is not None else done.versions,
            }
    return {"datasets": changed, "kept": len(kept), "certificate": certificate, "notice": notice}


def _apply(rights, request, recorder: StepRecords, step: EraseStep, steps: list[EraseStep]) -> None:
    """One step through the store contract: its plan in the ledger before the change commits,
    its done record after (a rerun skips a step that is done)."""
    if step.held or recorder.done(step.dataset):
        return
    store = rights.stores.of(step.dataset)
    is_table = rights.catalog.dataset(step.dataset).is_table

    def record_plan(counts: dict, keys: list) -> None:
        if is_table:
            recorder.plan(StepPlan(step.dataset, step.action, rows=counts, keys=tuple(keys), basis=step.floor))
        else:
            versions = {s: n for s, n in counts.items() if s is not None and n}
            recorder.plan(StepPlan(step.dataset, "delete", versions=versions))

    selection = _selection(request, step, steps)
    if step.action == "delete":
        change = store.delete(step.dataset, selection, before_commit=record_plan)
    else:
        fields = [f for f in rights.catalog.personal_fields(step.dataset) if f.column in step.fields]
        keyed = any(f.spec.anonymize.strategy == "hmac" for f in fields)
        key = hmac_key(rights.catalog) if keyed else None
        change = store.anonymize(step.dataset, selection, fields, hmac_key=key, before_commit=record_plan)
    if is_table:
        recorder.record_done(StepDone(step.dataset, step.action, rows=change.rows))
    else:
        locked: dict[str, list] = {}
        for kept in change.kept:
            lock = {k: kept.detail.get(k) for k in ("mode", "legal_hold", "retain_until")}
            locked.setdefault(kept.subject, []).append(lock)
        recorder.record_done(StepDone(step.dataset, "delete", versions=change.rows, locked=locked))
    log.info("request %s: %s %s: %d", request.request_id, step.dataset, step.action, change.rows)


def _verify(rights, request, steps: list[EraseStep], batch: str) -> None:
    """Nothing the steps selected still matches: rows gone or anonymized, versions gone."""
    plans = step_plans(batch_entries(rights.state.ledger, batch))
    left = []
    for step in steps:
        if step.held:
            continue
        store = rights.stores.of(step.dataset)
        if not rights.catalog.dataset(step.dataset).is_table:
            remaining = store.remaining(step.dataset, Selection(subjects=(request.subject_id,)))
            if remaining.items:
                left.append(f"{step.dataset}: {remaining.items} object(s) remain")
        elif step.action == "delete":
            n = store.count(step.dataset, _selection(request, step, steps))
            if n:
                left.append(f"{step.dataset}: {n} row(s) remain")
        elif step.dataset in plans and plans[step.dataset].keys:
            pending = Selection(keys=plans[step.dataset].keys, pending_anonymization=step.fields)
            n = store.count(step.dataset, pending)
            if n:
                left.append(f"{step.dataset}: {n} row(s) still hold personal values")
    if left:
        system = {s.dataset: rights.catalog.dataset(s.dataset).system for s in steps}
        named = "; ".join(f"{item} (system {system[item.split(':')[0]]})" for item in left)
        raise LifecycleError(f"request {request.request_id}: verification failed: {named}")


def _kept(rights, request, steps: list[EraseStep], as_of: datetime) -> list[str]:
    """What stays and why, for the person's notice and the certificate (datasets, counts, reasons)."""
    kept = []
    mine = Selection(subjects=(request.subject_id,))
    for step in steps:
        store = rights.stores.of(step.dataset)
        if not rights.catalog.dataset(step.dataset).is_table:
            remaining = store.remaining(step.dataset, mine)
            if remaining.items:
                kept.append(f"{step.dataset}: {remaining.items} file(s) (held: legal hold or S3 Object Lock)")
            continue
        if step.held:
            n = store.count(step.dataset, mine)
            if n:
                kept.append(f"{step.dataset}: {n} record(s) (legal hold)")
        elif step.action == "delete":
            n = store.count(step.dataset, mine)
            if n:
                reason = step.floor or "still referenced by records that stay"
                kept.append(f"{step.dataset}: {n} record(s) ({reason})")
        elif step.older_than is not None:
            n = store.count(step.dataset, Selection(subjects=mine.subjects, created_within=(step.older_than, as_of)))
            if n:
                kept.append(f"{step.dataset}: {n} record(s) unchanged ({step.floor})")
    return kept


def _certificate(rights, request, steps: list[EraseStep], batch: str, run_id: str) -> dict:
    """One certificate, from the batch's ledger records, written once (same document on rerun)."""
    certificates = Certificates(rights.catalog, rights.state)
    entries = batch_entries(rights.state.ledger, batch)
    datasets, backing, completed = [], [], None
    for step in steps:
        evidence = step_evidence(entries, batch, step.dataset)
        row = {"dataset": step.dataset, "action": step.action, "deleted": 0, "anonymized": 0}
        row.update(object_versions_deleted=0, retained=None)
        if step.held:
            row["retained"] = {"why": "legal hold"}
        if evidence.plan and evidence.plan.rows is not None:
            row["deleted" if step.action == "delete" else "anonymized"] = evidence.plan.rows.get(request.subject_id, 0)
        if evidence.plan and evidence.plan.versions is not None:
            locks = (evidence.done.locked if evidence.done else {}).get(request.subject_id, [])
            row["object_versions_deleted"] = evidence.plan.versions.get(request.subject_id, 0) - len(locks)
            if locks:
                row["retained"] = {"why": "S3 Object Lock", "locks": locks}
        if step.floor and step.older_than is not None:
            row["retained"] = {"why": step.floor, "form": "rows inside the floor unchanged"}
        datasets.append(row)
        backing += evidence.hashes
        completed = max(filter(None, [completed, evidence.completed_at]), default=None)
    document = {
        "certificate": "erasure of chosen categories at the person's request (account kept)",
        "subject": certificates.subject_hash(request.subject_id),
        "subject_is": "HMAC-SHA256 of the subject id under the lifecycle's key (not the id, not the e-mail)",
        "request": request.request_id,
        "categories": list(request.categories),
        "requested_at": request.received_at,
        "grace_end": None,
        "completed_at": completed,
        "batch": batch,
        "datasets": datasets,
        "ledger_entries": backing,
    }
    report = reports.ReportWriter(rights.catalog, rights.state.ledger).write(
        f"requests/{reports.safe_name(request.request_id)}/certificate",
        document,
        template="erasure_certificate.html.j2",
        kind="request.certificate",
        run_id=run_id,
        key=request_event(request.request_id, "certificate"),
        about={"request_id": request.request_id, "subject": document["subject"]},
        cert=document,
    )
    return {"location": report.json.location, "sha256": report.json.sha256}
