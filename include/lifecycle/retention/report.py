"""The retention report (JSON for machines, HTML for people), from the ledger alone.

Written whatever happened: after a refused or failed plan it says which step stopped the
run and why, and that nothing was changed.  Counts are sums of the batch records, so a
resumed run counts each row once.  Counts only: no personal information.
"""

from __future__ import annotations

import logging
from datetime import datetime

from lifecycle import reports
from lifecycle.clock import iso_utc
from lifecycle.config import Config
from lifecycle.retention.apply import BatchRecord
from lifecycle.retention.plan import DatasetPlan, Plan, Reference
from lifecycle.state import StateStore

log = logging.getLogger(__package__)  # one logger for the package: the CLI filters it by name

BATCH_KINDS = ("retention.delete", "retention.anonymize", "retention.drop_partition")


def write_report(
    config: Config,
    state: StateStore,
    run_id: str,
    plan: Plan | None,
    *,
    as_of: datetime,
    failed_steps: list[str],
    generated_at: datetime,
    dag_id: str | None,
) -> dict:
    """Write the run's report to the reports destination and ledger where it went."""
    entries = list(state.ledger.entries(run_id=run_id))
    document = _document(config, run_id, plan, entries, as_of=as_of, failed_steps=failed_steps)
    document["generated_at"] = iso_utc(generated_at)  # evidence of when, like the ledger's recorded_at
    folder = f"retention/{document['as_of'][:10]}/{reports.safe_name(run_id)}"
    written = reports.ReportWriter(config.catalog, state.ledger).write(
        f"{folder}/report",
        document,
        template="retention_report.html.j2",
        kind="retention.report",
        run_id=run_id,
        dag_id=dag_id,
    )
    json_doc, html_doc = written.json, written.html
    log.info("report: %s and %s", json_doc.location, html_doc.location)
    return {
        "json": json_doc.location,
        "html": html_doc.location,
        "datasets": len(document["datasets"]),
        "failures": len(document["failures"]),
    }


def _document(config: Config, run_id: str, plan: Plan | None, entries: list, *, as_of, failed_steps) -> dict:
    failures = [e.payload for e in entries if e.kind == "retention.failed"]
    for step in failed_steps:
        if not any(f["step"] == step for f in failures):
            failures.append({"step": step, "reason": "the task failed; its log says why"})
    batches: dict[str, list[tuple[str, BatchRecord]]] = {}
    estimated = set()  # datasets with a partition dropped whose rows are the statistics' estimate
    for e in entries:
        if e.kind in BATCH_KINDS:
            record = BatchRecord.from_json(e.payload)
            batches.setdefault(record.dataset, []).append((e.kind, record))
            if e.payload.get("estimated"):
                estimated.add(record.dataset)
    return {
        "report": "retention",
        "run_id": run_id,
        "as_of": plan.as_of if plan else iso_utc(as_of),
        "max_fraction_per_run": plan.max_fraction if plan else config.retention.max_fraction_per_run,
        "batch_size": plan.batch_size if plan else config.retention.batch_size,
        "planned": plan is not None,
        "failures": failures,
        "datasets": [_row(d, batches.get(d.dataset, []), d.dataset in estimated) for d in plan.datasets]
        if plan
        else [],
        "guardrail_events": [
            e.payload for e in entries if e.kind in ("retention.guardrail", "retention.guardrail_override")
        ],
        "verification": next((e.payload for e in reversed(entries) if e.kind == "retention.verify"), None),
    }


def _row(d: DatasetPlan, batches: list[tuple[str, BatchRecord]], estimated: bool) -> dict:
    locks = [lock for _, record in batches for lock in record.locked or ()]
    deleted = [record for kind, record in batches if kind in ("retention.delete", "retention.drop_partition")]
    objects = d.store != "sql"
    return {
        "dataset": d.dataset,
        "store": d.store,
        "rule": d.rule,
        "action": d.action,
        "keep": d.keep,
        "cutoff": d.cutoff,
        "statutory_floor": d.floor,
        "basis": d.basis,
        "effective_cutoff": d.effective_cutoff,
        "total": d.total,
        "candidates": d.candidates,
        "under_floor": d.under_floor,
        "held": d.held,
        "referenced": d.referenced,
        "references": [dict(r, advice=_advice(d, r)) for r in d.references],
        "deleted": sum(r.objects if objects else r.rows for r in deleted),
        "versions_deleted": sum(r.rows for r in deleted) if objects else 0,
        "deleted_estimated": estimated,  # ``deleted`` holds a dropped partition's estimated rows
        "anonymized": sum(record.rows for kind, record in batches if kind == "retention.anonymize"),
        "locked": len(locks),
        "locked_until": sorted({lock["retain_until"] for lock in locks if lock.get("retain_until")}),
        "locked_by_legal_hold": sum(1 for lock in locks if lock.get("legal_hold")),
        "partitions_dropped": sum(1 for kind, _ in batches if kind == "retention.drop_partition"),
        "partitions": [p.to_json() for p in d.partitions],
        "guardrail": d.guardrail,
        "fraction": d.fraction,
        "error": d.error,
        "seconds": round(sum(record.seconds for _, record in batches), 3),
    }


def _advice(entry: DatasetPlan, reference: Reference) -> str:
    """The configuration change that lets the kept rows go with the rows that point at them."""
    child = reference["dataset"]
    why = (
        f"rows of {child} reach their person through them ({', '.join(reference['columns'])}): without them "
        "those rows would reach nobody, and no erasure or legal hold could find them"
        if reference.get("subject_link")
        else f"a foreign key of {child} ({', '.join(reference['columns'])}) "
        f"points at them ({reference['on_delete']}): deleting them would fail or cascade"
    )
    return (
        f"{entry.dataset}: {reference['rows']} expired row(s) kept: referenced by rows of {child} that are not "
        f"expired or are held; {why}. To expire them together, give {child} a retention rule that keeps its rows "
        f"no longer than {entry.dataset} ({entry.keep}), or keep {entry.dataset} as long as {child}."
    )
