"""Retention expiry: plan, guardrail, apply in batches, verify, report.

The plan is data: for every dataset a rule covers, the cutoff taken from the
run's time, the statutory floor, and counts (candidates, held, under the
floor, kept because rows that stay still point at them, to delete or
anonymize) with the key ranges to work through.  It is recorded in the ledger
once per run, so a rerun of the same run works from the same plan.  A
dataset whose own planning fails is recorded with its error: its apply unit
fails, the other datasets go on.  Every applied batch is recorded under a key
derived from the run and the range, so a resumed run skips what is done and
counts nothing twice.  Only ids, ranges and counts leave this module.  Every
store is reached through the store contract (``lifecycle.stores.contract``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from lifecycle.catalog import Catalog
from lifecycle.clock import iso_utc
from lifecycle.config import Config
from lifecycle.connections import hmac_key
from lifecycle.errors import LifecycleError, is_transient
from lifecycle.retention.keys import (
    batch_key,
    dataset_batches,
    failure_key,
    guardrail_key,
    override_key,
    plan_key,
    run_records,
)
from lifecycle.retention.shape import retention_systems, stages_of, unit_group
from lifecycle.state import StateStore
from lifecycle.stores.contract import KeyRange, References, Selection

__all__ = ["DatasetPlan", "Plan", "Retention", "retention_systems", "stages_of", "unit_group"]

log = logging.getLogger(__name__)


@dataclass
class DatasetPlan:
    dataset: str
    system: str
    store: str  # the system's type: "sql" | "s3"
    rule: str
    action: str  # "delete" | "anonymize"
    keep: str
    cutoff: str  # ISO UTC: the rule expires what is older
    effective_cutoff: str  # the rule's cutoff, or the floor's where that is earlier
    floor: str | None = None
    basis: str | None = None
    floor_cutoff: str | None = None
    fields: list[str] = field(default_factory=list)  # anonymize: the fields rewritten
    total: int = 0
    candidates: int = 0  # older than the rule's cutoff
    under_floor: int = 0  # of those, still inside a statutory minimum
    held: int = 0  # of the rest, under legal hold
    referenced: int = 0  # of the rest, kept: rows that stay still point at them
    references: list[dict] = field(default_factory=list)  # [{dataset, columns, on_delete, rows}] behind ``referenced``
    to_delete: int = 0
    to_anonymize: int = 0
    fraction: float = 0.0
    guardrail: str = "ok"  # ok | blocked | overridden
    stage: int = 0  # apply order: children (lower stage) first
    ranges: list[list] = field(default_factory=list)  # [low, high, rows] per batch
    error: str | None = None  # the dataset could not be planned: its unit fails, the others go on

    @property
    def to_act(self) -> int:
        return self.to_delete + self.to_anonymize


@dataclass
class Plan:
    run_id: str
    as_of: str
    batch_size: int
    max_fraction: float
    datasets: list[DatasetPlan]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        return cls(**{**data, "datasets": [DatasetPlan(**d) for d in data["datasets"]]})

    def dataset(self, name: str) -> DatasetPlan:
        return next(d for d in self.datasets if d.dataset == name)


class Retention:
    """Retention over one configuration, its stores and the state store."""

    def __init__(self, config: Config, state: StateStore, open_store=None):
        from lifecycle.stores import Stores

        self.config = config
        self.catalog: Catalog = config.catalog
        self.state = state
        self.stores = Stores(self.catalog, open_store)

    # ------------------------------------------------------------------ plan

    def targets(self) -> list[tuple[object, str, list[str]]]:
        """(rule, dataset, fields) for every dataset a rule covers, in catalog order."""
        out = []
        for rule in self.config.retention.rules:
            for dataset, fields in self.catalog.rule_targets(
                rule.applies_to.categories, rule.applies_to.datasets, rule.action
            ).items():
                out.append((rule, dataset, [f.column for f in fields if f.spec.anonymize]))
        return out

    def _floor(self, dataset: str, as_of: datetime):
        """The statutory minimum over ``dataset`` whose cutoff is earliest (the longest)."""
        floors = [
            (f.minimum.before(as_of), f)
            for f in self.config.retention.statutory
            if dataset in self.catalog.resolve(f.applies_to.categories, f.applies_to.datasets)
        ]
        return min(floors, key=lambda pair: pair[0]) if floors else (None, None)

    def recorded_plan(self, run_id: str) -> Plan | None:
        """The plan this run recorded, or None when it made none."""
        entry = self.state.ledger.find(plan_key(run_id))
        return Plan.from_dict(entry.payload) if entry else None

    def plan(self, run_id: str, as_of: datetime, *, dag_id: str | None = None, record: bool = True) -> Plan:
        """The run's plan: recorded once, returned as recorded on a rerun
        (``record=False``: a preview that leaves no trace)."""
        recorded = self.recorded_plan(run_id) if record else None
        if recorded:
            log.info("plan: reusing the plan recorded for run %s", run_id)
            return recorded
        retention = self.config.retention
        datasets = []
        for rule, dataset, fields in self.targets():
            system = self.catalog.dataset(dataset).system
            cutoff = rule.keep.before(as_of)
            floor_cutoff, floor = self._floor(dataset, as_of)
            effective = min(cutoff, floor_cutoff) if floor_cutoff else cutoff
            datasets.append(
                DatasetPlan(
                    dataset=dataset,
                    system=system,
                    store=self.catalog.systems[system].type,
                    rule=rule.name,
                    action=rule.action,
                    keep=str(rule.keep),
                    cutoff=iso_utc(cutoff),
                    effective_cutoff=iso_utc(effective),
                    floor=floor.name if floor else None,
                    basis=floor.basis if floor else None,
                    floor_cutoff=iso_utc(floor_cutoff) if floor_cutoff else None,
                    fields=fields if rule.action == "anonymize" else [],
                )
            )
        plan = Plan(run_id, iso_utc(as_of), retention.batch_size, retention.max_fraction_per_run, datasets)
        held = self._held(as_of)
        going = self._going(plan, held)
        for entry in datasets:
            try:
                self._count(entry, held, going, retention.batch_size)
            except Exception as exc:
                if is_transient(exc) or not isinstance(exc, LifecycleError):
                    raise
                entry.error = str(exc)
                log.error(
                    "plan: %s cannot be planned; its apply unit will fail, the other datasets go on: %s",
                    entry.dataset,
                    exc,
                )
                continue
            entry.fraction = round(entry.to_act / entry.total, 6) if entry.total else 0.0
            if entry.fraction > retention.max_fraction_per_run:
                entry.guardrail = "blocked"
            log.info(
                "plan: %s (%s, %s after %s): %d candidates, %d under floor, %d held, %d kept as referenced, "
                "%d to %s of %d (%.1f%%)",
                entry.dataset,
                entry.rule,
                entry.action,
                entry.keep,
                entry.candidates,
                entry.under_floor,
                entry.held,
                entry.referenced,
                entry.to_act,
                entry.action,
                entry.total,
                100 * entry.fraction,
            )
        self._stage(plan, going)
        if record:
            self.state.ledger.append(
                "retention.plan", plan.to_dict(), dag_id=dag_id, run_id=run_id, key=plan_key(run_id)
            )
        return plan

    def record_failure(self, run_id: str, step: str, reason: str, *, dag_id: str | None = None) -> None:
        """A step that stopped the run before it could act (preflight, plan), for the report."""
        self.state.ledger.append(
            "retention.failed",
            {"step": step, "reason": reason},
            dag_id=dag_id,
            run_id=run_id,
            key=failure_key(run_id, step),
        )

    def _held(self, as_of: datetime) -> dict[str, tuple[str, ...]]:
        """The subjects under legal hold on the run's day, per dataset (a hold may name datasets)."""
        active = self.state.holds.active(as_of.date())
        return {name: tuple(sorted({h.subject_id for h in active if h.covers(name)})) for name in self.catalog.datasets}

    def _deleting_selection(self, entry: DatasetPlan, held: dict[str, tuple], going_with: tuple = ()) -> Selection:
        """What a delete rule takes: its selection, less rows that rows staying behind point at
        (held rows among them, whatever their foreign key would do)."""
        return replace(
            self.selection(entry, held.get(entry.dataset, ())),
            kept_if_referenced=True,
            going_with=going_with,
            held=tuple((d, h) for d, h in held.items() if h),
        )

    def selection(self, entry: DatasetPlan, held: tuple = (), cutoff: datetime | None = None) -> Selection:
        """What the rule takes of a dataset: older than the cutoff, not held, not yet anonymized."""
        return Selection(
            older_than=cutoff or datetime.fromisoformat(entry.effective_cutoff),
            exclude_subjects=held,
            pending_anonymization=tuple(entry.fields) if entry.action == "anonymize" else (),
        )

    def _deleting(self, plan: Plan) -> dict[str, DatasetPlan]:
        return {
            d.dataset: d
            for d in plan.datasets
            if d.action == "delete" and isinstance(self.stores(d.system), References)
        }

    def _going(self, plan: Plan, held: dict[str, tuple]) -> dict[str, Selection]:
        """Each deleting table dataset's selection in this run, keeping rows that rows staying
        behind still point at; the rows of other deleting datasets that go too do not count
        as staying (children first), which nests their own selections."""
        deleting = self._deleting(plan)
        built: dict[str, Selection] = {}

        def build(name: str, seen: tuple) -> Selection:
            if name in built:
                return built[name]
            entry, store = deleting[name], self.stores(deleting[name].system)
            children = tuple(
                (ref.dataset, build(ref.dataset, seen + (name,)))
                for ref in store.references(name)
                if ref.protects and ref.dataset in deleting and ref.dataset not in seen + (name,)
            )
            chosen = self._deleting_selection(entry, held, children)
            built[name] = chosen
            return chosen

        for name in deleting:
            try:
                build(name, ())
            except Exception as exc:
                if is_transient(exc) or not isinstance(exc, LifecycleError):
                    raise
                deleting[name].error = str(exc)
        return built

    def _count(self, entry: DatasetPlan, holds: dict[str, tuple], going: dict[str, Selection], batch: int) -> None:
        if entry.error:
            raise LifecycleError(entry.error)
        held = holds.get(entry.dataset, ())
        store = self.stores(entry.system)
        with store.snapshot():
            entry.total = store.count(entry.dataset)
            entry.candidates = store.count(
                entry.dataset, self.selection(entry, cutoff=datetime.fromisoformat(entry.cutoff))
            )
            eligible = (
                entry.candidates
                if entry.cutoff == entry.effective_cutoff
                else store.count(entry.dataset, self.selection(entry))
            )
            entry.under_floor = entry.candidates - eligible
            not_held = store.count(entry.dataset, self.selection(entry, held)) if held else eligible
            entry.held = eligible - not_held
            acting = going.get(entry.dataset) or self.selection(entry, held)
            ranges = store.units(entry.dataset, acting, batch)
        act = sum(r.rows for r in ranges)
        entry.ranges = [r.as_list() for r in ranges]
        entry.referenced = not_held - act
        if entry.referenced:
            entry.references = self._references(entry, store, acting)
        if entry.action == "delete":
            entry.to_delete = act
        else:
            entry.to_anonymize = act

    def _references(self, entry: DatasetPlan, store, acting: Selection) -> list[dict]:
        """Which datasets keep this dataset's expired rows, and how many each (a row may count twice)."""
        found = []
        for ref in store.references(entry.dataset):
            if ref.protects:
                rows = store.referenced(entry.dataset, acting, ref)
                if rows:
                    found.append(
                        {
                            "dataset": ref.dataset,
                            "columns": list(ref.columns),
                            "on_delete": ref.on_delete,
                            "subject_link": ref.link,
                            "rows": rows,
                        }
                    )
                    log.warning(
                        "plan: %s: %d expired row(s) kept: referenced by rows of %s (%s) that stay",
                        entry.dataset,
                        rows,
                        ref.dataset,
                        ", ".join(ref.columns),
                    )
        return found

    def _stage(self, plan: Plan, going: dict[str, Selection]) -> None:
        """Give each deleting dataset a stage after the deleting datasets whose rows point at it.

        A system has as many stages as its longest chain of subject links has datasets
        (``stages_of``: the DAG's shape comes from the configuration); foreign keys that chain
        deeper than that fail the datasets above the chain's limit, not the run.
        """
        edges = [(child, name) for name, chosen in going.items() for child, _ in chosen.going_with]
        entries = {d.dataset: d for d in plan.datasets}
        for _ in range(len(entries)):
            for child, parent in edges:
                entries[parent].stage = max(entries[parent].stage, entries[child].stage + 1)
        for entry in entries.values():
            limit = stages_of(self.config, entry.system)
            if entry.stage >= limit and not entry.error:
                entry.error = (
                    f"foreign keys chain more than {limit} deleting datasets of system {entry.system!r} "
                    f"up to {entry.dataset}, more than its subject links do; give the datasets at the "
                    "bottom of the chain rules that expire them earlier, or split the rules"
                )
            entry.stage = min(entry.stage, limit - 1)

    # ------------------------------------------------------------- guardrail

    def gate(
        self, plan: Plan, *, override: bool = False, reason: str = "", dag_id: str | None = None
    ) -> dict[str, list[dict]]:
        """Stop the run if a dataset would lose more than ``max_fraction_per_run``,
        unless this run overrides it with a reason; return the work units."""
        blocked = [d for d in plan.datasets if d.guardrail in ("blocked", "overridden")]
        if blocked:
            events = [
                {"dataset": d.dataset, "fraction": d.fraction, "to_remove": d.to_act, "total": d.total} for d in blocked
            ]
            if not override:
                self.state.ledger.append(
                    "retention.guardrail",
                    {"blocked": events, "limit": plan.max_fraction},
                    dag_id=dag_id,
                    run_id=plan.run_id,
                    key=guardrail_key(plan.run_id),
                )
                lines = [
                    f"{d.dataset}: {d.to_act:,} of {d.total:,} rows ({100 * d.fraction:.1f}%) is more than "
                    f"max_fraction_per_run {100 * plan.max_fraction:g}%"
                    for d in blocked
                ]
                raise LifecycleError(
                    "guardrail stopped the run before any change:\n  "
                    + "\n  ".join(lines)
                    + "\nIf this is intended, trigger the run with override_guardrail=true and an override_reason."
                )
            if len(reason.strip()) < 10:
                raise LifecycleError(
                    "override_guardrail is set, so override_reason must say why (at least 10 characters)"
                )
            self.state.ledger.append(
                "retention.guardrail_override",
                {"datasets": events, "limit": plan.max_fraction, "reason": reason.strip()},
                dag_id=dag_id,
                run_id=plan.run_id,
                key=override_key(plan.run_id),
            )
            for d in blocked:
                d.guardrail = "overridden"
                log.warning("guardrail overridden for %s (%.1f%%): %s", d.dataset, 100 * d.fraction, reason.strip())
        return self.units(plan)

    def units(self, plan: Plan, partitions: int | None = None) -> dict[str, list[dict]]:
        """Work units per (system, stage): a dataset's key ranges in up to
        ``max_partitions_per_dataset`` contiguous groups; a dataset that could
        not be planned gets one unit that fails (its own task, not the others)."""
        partitions = partitions or self.config.retention.max_partitions_per_dataset
        units: dict[str, list[dict]] = {
            unit_group(s, i): [] for s in self.systems() for i in range(stages_of(self.config, s))
        }
        for d in plan.datasets:
            group = units[unit_group(d.system, d.stage)]
            if d.error:
                group.append({"dataset": d.dataset, "error": d.error, "part": 0, "parts": 1})
                continue
            if not d.to_act:
                continue
            common = {"dataset": d.dataset, "action": d.action, "cutoff": d.effective_cutoff, "fields": d.fields}
            parts = min(partitions, len(d.ranges))
            size = -(-len(d.ranges) // parts)
            for part in range(parts):
                group.append(
                    {**common, "part": part, "parts": parts, "ranges": d.ranges[part * size : (part + 1) * size]}
                )
        return units

    def systems(self) -> list[str]:
        return retention_systems(self.config)

    # ----------------------------------------------------------------- apply

    def apply(self, unit: dict, run_id: str, as_of: datetime, *, dag_id: str | None = None) -> dict:
        """Apply one unit, range by range; ranges already recorded for this run are skipped.

        Deleting keeps rows that rows still in place point at (children
        went in earlier stages): a parent is never removed from under a row
        that stays, whether its foreign key would refuse or cascade.
        """
        name = unit["dataset"]
        if unit.get("error"):
            raise LifecycleError(f"retention of {name} could not be planned: {unit['error']}")
        action = unit["action"]
        store = self.stores.of(name)
        holds = self._held(as_of)
        held = holds[name]
        selection = Selection(
            older_than=datetime.fromisoformat(unit["cutoff"]),
            exclude_subjects=held,
            pending_anonymization=tuple(unit["fields"]) if action == "anonymize" else (),
            kept_if_referenced=action == "delete",
            held=tuple((d, h) for d, h in holds.items() if h),
        )
        fields = [f for f in self.catalog.personal_fields(name) if f.column in unit["fields"]]
        key_material = (
            hmac_key(self.catalog)
            if action == "anonymize" and any(f.spec.anonymize.strategy == "hmac" for f in fields)
            else None
        )
        done = skipped = objects = locked = 0
        total = len(unit["ranges"])
        finished = self.state.ledger.keys_with_prefix(dataset_batches(run_id, name))
        for i, (low, high, planned) in enumerate(unit["ranges"], 1):
            key_range = KeyRange(low, high, planned)
            key = batch_key(run_id, name, low, high)
            if key in finished:
                skipped += 1
                continue
            started = time.monotonic()
            batch = replace(selection, within=key_range)
            if action == "delete":
                change = store.delete(name, batch)
            else:
                change = store.anonymize(name, batch, fields, hmac_key=key_material)
            seconds = round(time.monotonic() - started, 3)
            record = {"dataset": name, "low": low, "high": high, "rows": change.rows, "seconds": seconds}
            if change.objects or change.kept or change.requests:
                record.update(
                    objects=change.objects,
                    requests=change.requests,
                    locked=[k.detail for k in change.kept if k.reason == "locked"],
                )
            self.state.ledger.append(f"retention.{action}", record, dag_id=dag_id, run_id=run_id, key=key)
            done, objects, locked = done + change.rows, objects + change.objects, locked + len(change.kept)
            log.info(
                "%s: batch %d/%d (keys %s..%s, part %d/%d): %d %sd in %.2fs%s",
                name,
                i,
                total,
                low,
                high,
                unit["part"] + 1,
                unit["parts"],
                change.rows,
                action,
                seconds,
                f"; {len(change.kept)} locked version(s) kept" if change.kept else "",
            )
        if skipped:
            log.info("%s: %d batch(es) were already done in an earlier attempt of this run", name, skipped)
        result = {"dataset": name, "action": action, "rows": done, "batches": total, "resumed": skipped}
        if objects or locked:
            result.update(objects=objects, locked=locked)
        return result

    # ---------------------------------------------------------------- verify

    def verify(self, plan: Plan, *, dag_id: str | None = None) -> dict:
        """Count again: nothing expired may remain but held, statutory, referenced and locked items.

        A dataset whose batches are not all recorded (its apply task failed)
        is reported as incomplete, not verified: its task failed the run already.
        """
        as_of = datetime.fromisoformat(plan.as_of)
        holds = self._held(as_of)
        recorded = self.state.ledger.keys_with_prefix(run_records(plan.run_id))
        results, problems = {}, []
        for d in plan.datasets:
            if d.error:
                results[d.dataset] = {"error": d.error}
                continue
            if d.guardrail == "blocked":
                results[d.dataset] = {"skipped": "guardrail"}
                continue
            missing = sum(batch_key(plan.run_id, d.dataset, low, high) not in recorded for low, high, _ in d.ranges)
            if missing:
                results[d.dataset] = {"incomplete": missing}
                continue
            held = holds[d.dataset]
            store = self.stores(d.system)
            with store.snapshot():
                left = store.remaining(
                    d.dataset, self._deleting_selection(d, holds) if d.action == "delete" else self.selection(d, held)
                )
                held_left = (
                    store.count(d.dataset, self.selection(d)) - store.count(d.dataset, self.selection(d, held))
                    if held
                    else 0
                )
            results[d.dataset] = {"remaining": left.items, "held": held_left, **left.kept}
            if left.items:
                problems.append(
                    f"{d.dataset}: {left.items} expired item(s) remain that are neither held, "
                    "under a statutory floor, referenced nor locked"
                )
        self.state.ledger.append(
            "retention.verify", {"datasets": results, "ok": not problems}, dag_id=dag_id, run_id=plan.run_id
        )
        if problems:
            raise LifecycleError("verification failed:\n  " + "\n  ".join(problems))
        return results

    # ---------------------------------------------------------------- report

    def report(
        self,
        run_id: str,
        *,
        as_of: datetime,
        failed_steps: list[str] = (),
        dag_id: str | None = None,
        finished: datetime | None = None,
    ) -> dict:
        """The retention report (JSON for machines, HTML for people), from the ledger.

        Written whatever happened: after a refused or failed plan it says which
        step stopped the run and why, and that nothing was changed.
        """
        from lifecycle import reports

        plan = self.recorded_plan(run_id)
        entries = list(self.state.ledger.entries(run_id=run_id))
        failures = [e.payload for e in entries if e.kind == "retention.failed"]
        for step in failed_steps:
            if not any(f["step"] == step for f in failures):
                failures.append({"step": step, "reason": "the task failed; its log says why"})
        rows = [self._report_row(d, entries) for d in plan.datasets] if plan else []
        verify = next((e.payload for e in reversed(entries) if e.kind == "retention.verify"), None)
        guardrail = [e.payload for e in entries if e.kind in ("retention.guardrail", "retention.guardrail_override")]
        document = {
            "report": "retention",
            "run_id": run_id,
            "as_of": plan.as_of if plan else iso_utc(as_of),
            "max_fraction_per_run": plan.max_fraction if plan else self.config.retention.max_fraction_per_run,
            "batch_size": plan.batch_size if plan else self.config.retention.batch_size,
            "generated_at": iso_utc(finished or datetime.now(UTC)),
            "planned": plan is not None,
            "failures": failures,
            "datasets": rows,
            "guardrail_events": guardrail,
            "verification": verify,
        }
        sink = reports.ReportSink(self.catalog)
        folder = f"retention/{document['as_of'][:10]}/{_safe(run_id)}"
        json_doc = sink.write(f"{folder}/report.json", reports.canonical(document), content_type="application/json")
        html_doc = sink.write(
            f"{folder}/report.html",
            reports.render("retention_report.html.j2", report=document).encode("utf-8"),
            content_type="text/html; charset=utf-8",
        )
        self.state.ledger.append(
            "retention.report",
            {"json": json_doc.location, "json_sha256": json_doc.sha256, "html": html_doc.location},
            dag_id=dag_id,
            run_id=run_id,
        )
        log.info("report: %s and %s", json_doc.location, html_doc.location)
        return {"json": json_doc.location, "html": html_doc.location, "datasets": len(rows), "failures": len(failures)}

    def _report_row(self, d: DatasetPlan, entries: list) -> dict:
        mine = [
            e
            for e in entries
            if e.payload.get("dataset") == d.dataset and e.kind in ("retention.delete", "retention.anonymize")
        ]
        locks = [lock for e in mine for lock in e.payload.get("locked", [])]
        deleted = [e for e in mine if e.kind == "retention.delete"]
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
            "deleted": sum(e.payload.get("objects" if objects else "rows", 0) for e in deleted),
            "versions_deleted": sum(e.payload.get("rows", 0) for e in deleted) if objects else 0,
            "anonymized": sum(e.payload.get("rows", 0) for e in mine if e.kind == "retention.anonymize"),
            "locked": len(locks),
            "locked_until": sorted({lock["retain_until"] for lock in locks if lock.get("retain_until")}),
            "locked_by_legal_hold": sum(1 for lock in locks if lock.get("legal_hold")),
            "guardrail": d.guardrail,
            "fraction": d.fraction,
            "error": d.error,
            "seconds": round(sum(e.payload.get("seconds", 0) for e in mine), 3),
        }


def _advice(entry: DatasetPlan, reference: dict) -> str:
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


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
