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
A lake dataset's step is *pending purge* as a cancellation batch's is
(``erasure.purge``): the certificate waits until the purge ran and storage
verification read none of the person's rows; until then the request is
*purging* (``settled`` is called again by later runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lifecycle import reports
from lifecycle.erasure.certificates import Certificates
from lifecycle.erasure.executor import StepExecutor, Work, reading
from lifecycle.erasure.purge import Purges, purge_evidence
from lifecycle.erasure.records import StepRecords, batch_entries, step_evidence
from lifecycle.errors import LifecycleError
from lifecycle.evidence import request_event
from lifecycle.floors import statutory_floors
from lifecycle.stores.contract import Selection


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
    """The binding statutory floor over ``dataset``: its cutoff (rows created after it stay) and name."""
    floors = statutory_floors(rights.config, dataset, as_of)
    return (floors[0].cutoff, floors[0].label) if floors else (None, None)


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
    with reading(rights.stores, [s.dataset for s in steps]):
        for step in steps:
            datasets[step.dataset] = _planned(rights, request, step, steps, mine)
    return {"categories": list(request.categories), "datasets": datasets}


def _planned(rights, request, step: EraseStep, steps: list[EraseStep], mine: Selection) -> dict:
    """One step's counts: found, selected, and what stays and why."""
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
    return entry


def carry_out(rights, request, run_id: str, as_of: datetime) -> dict:
    """Every step but the person's own row, verified; the notice, while the address on file
    is still there; then the own row's fields, verified; the lake purges due and the
    certificate (``settled``)."""
    steps = erase_steps(rights, request, as_of)
    batch = batch_of(request)
    executor = StepExecutor(
        rights.catalog, rights.stores, StepRecords(rights.state.ledger, batch, run_id), label=f"request {batch}: "
    )
    subject = rights.catalog.subject.dataset
    linked = [_work(rights, request, s, steps) for s in steps if s.dataset != subject and not s.held]
    own = [_work(rights, request, s, steps) for s in steps if s.dataset == subject and not s.held]
    tables = [w.dataset for w in linked + own if rights.catalog.dataset(w.dataset).is_table]
    Purges(rights.catalog, rights.state, rights.stores).expect(batch, tables, [request.subject_id], as_of, run_id)
    executor.run(linked)
    _verify(rights, request, executor, linked)
    with reading(rights.stores, [s.dataset for s in steps]):
        kept = _kept(rights, request, steps, as_of)
    titles = [rights.catalog.model.categories[c].title or c for c in request.categories]
    notice = rights.notify(request, rights.settings.notify.erased, {"categories": titles, "kept": kept}, run_id)
    executor.run(own)
    _verify(rights, request, executor, own)
    entries = batch_entries(rights.state.ledger, batch)
    changed = {}
    for step in steps:
        done = step_evidence(entries, batch, step.dataset).done
        if done is not None:
            changed[step.dataset] = {
                "action": step.action,
                "changed": done.rows if done.rows is not None else done.versions,
            }
    return settled(rights, request, run_id, as_of, {"datasets": changed, "kept": len(kept), "notice": notice})


def settled(rights, request, run_id: str, as_of: datetime, result: dict) -> dict:
    """``result`` with the certificate once every lake purge of the request is done and storage
    verified (those due by ``as_of`` run now); while one is not due, ``purging_until`` its date."""
    batch = batch_of(request)
    waiting = Purges(rights.catalog, rights.state, rights.stores).settle(batch, as_of, run_id)
    done = {k: v for k, v in result.items() if k not in ("certificate", "purging_until")}
    if waiting:
        return {**done, "certificate": None, "purging_until": max(waiting).date().isoformat()}
    steps = erase_steps(rights, request, as_of)
    return {**done, "certificate": _certificate(rights, request, steps, batch, run_id)}


def _work(rights, request, step: EraseStep, steps: list[EraseStep]) -> Work:
    """The step for the executor: the account stays, so an anonymized row keeps its link
    (the person's later requests must still find it)."""
    selection = _selection(request, step, steps)
    if step.action == "delete":
        return Work(step.dataset, "delete", selection)
    fields = tuple(f for f in rights.catalog.personal_fields(step.dataset) if f.column in step.fields)
    return Work(step.dataset, "anonymize", selection, fields, clear_link=False, basis=step.floor)


def _verify(rights, request, executor: StepExecutor, works: list[Work]) -> None:
    """Nothing the steps selected still matches: rows gone or anonymized, versions gone."""
    left = executor.verify(works)
    if left:
        named = "; ".join(f"{lo.reason} (system {rights.catalog.dataset(lo.dataset).system})" for lo in left)
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
        purge, purge_hashes = purge_evidence(entries, batch, step.dataset)
        if purge is not None:
            row["purge"] = purge
        datasets.append(row)
        backing += evidence.hashes + purge_hashes
        completed = max(filter(None, [completed, evidence.completed_at, (purge or {}).get("purged_at")]), default=None)
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
