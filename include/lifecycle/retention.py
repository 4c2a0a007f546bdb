"""Retention expiry: plan, guardrail, apply in batches, verify, report.

The plan is data: for every dataset a rule covers, the cutoff taken from the
run's time, the statutory floor, and counts (candidates, held, under the
floor, to delete or anonymize) with the primary-key ranges to work through.
It is recorded in the ledger once per run, so a rerun of the same run works
from the same plan.  Every applied batch is recorded under a key derived from
the run and the range, so a resumed run skips what is done and counts
nothing twice.  Only ids, ranges and counts leave this module.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable

from lifecycle.batching import chunks
from lifecycle.catalog import Catalog
from lifecycle.config import Config
from lifecycle.connections import hmac_key
from lifecycle.errors import LifecycleError, TransientError
from lifecycle.runs import iso_utc
from lifecycle.state import StateStore
from lifecycle.stores.sql import KeyRange, Selection, SqlStore

log = logging.getLogger(__name__)

MAX_STAGES = 3          # foreign-key depth the apply phase can order (children first)
KIND = "retention"


@dataclass
class DatasetPlan:
    dataset: str
    system: str
    store: str                      # "sql" | "s3"
    rule: str
    action: str                     # "delete" | "anonymize"
    keep: str
    cutoff: str                     # ISO UTC: the rule expires what is older
    effective_cutoff: str           # the rule's cutoff, or the floor's where that is earlier
    floor: str | None = None
    basis: str | None = None
    floor_cutoff: str | None = None
    fields: list[str] = field(default_factory=list)     # anonymize: the fields rewritten
    total: int = 0
    candidates: int = 0             # older than the rule's cutoff
    under_floor: int = 0            # of those, still inside a statutory minimum
    held: int = 0                   # of the rest, under legal hold
    to_delete: int = 0
    to_anonymize: int = 0
    fraction: float = 0.0
    guardrail: str = "ok"           # ok | blocked | overridden
    stage: int = 0                  # apply order: children (lower stage) first
    ranges: list[list] = field(default_factory=list)    # [low, high, rows] per batch (SQL)

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
    def from_dict(cls, data: dict) -> "Plan":
        return cls(**{**data, "datasets": [DatasetPlan(**d) for d in data["datasets"]]})

    def dataset(self, name: str) -> DatasetPlan:
        return next(d for d in self.datasets if d.dataset == name)


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _key(run_id: str, *parts) -> str:
    return ":".join([KIND, run_id, *map(str, parts)])


class Retention:
    """Retention over one configuration, its stores and the state store."""

    def __init__(self, config: Config, state: StateStore, open_store: Callable[[str], object] | None = None):
        from lifecycle.stores import Stores

        self.config = config
        self.catalog: Catalog = config.catalog
        self.state = state
        self.store = Stores(self.catalog, open_store)

    # ------------------------------------------------------------------ plan

    def targets(self) -> list[tuple[object, str, list[str]]]:
        """(rule, dataset, fields) for every dataset a rule covers, in catalog order."""
        out = []
        for rule in self.config.retention.rules:
            for dataset, fields in self.catalog.rule_targets(rule.applies_to.categories, rule.applies_to.datasets, rule.action).items():
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

    def plan(self, run_id: str, as_of: datetime, *, dag_id: str | None = None, record: bool = True) -> Plan:
        """The run's plan: recorded once, returned as recorded on a rerun
        (``record=False``: a preview that leaves no trace)."""
        recorded = self.state.ledger.find(_key(run_id, "plan")) if record else None
        if recorded:
            log.info("plan: reusing the plan recorded for run %s (ledger entry %d)", run_id, recorded.seq)
            return Plan.from_dict(recorded.payload)
        retention = self.config.retention
        datasets = []
        for rule, dataset, fields in self.targets():
            system = self.catalog.dataset(dataset).system
            cutoff = rule.keep.before(as_of)
            floor_cutoff, floor = self._floor(dataset, as_of)
            effective = min(cutoff, floor_cutoff) if floor_cutoff else cutoff
            entry = DatasetPlan(
                dataset=dataset, system=system, store=self.catalog.systems[system].type, rule=rule.name,
                action=rule.action, keep=str(rule.keep), cutoff=iso_utc(cutoff), effective_cutoff=iso_utc(effective),
                floor=floor.name if floor else None, basis=floor.basis if floor else None,
                floor_cutoff=iso_utc(floor_cutoff) if floor_cutoff else None,
                fields=fields if rule.action == "anonymize" else [],
            )
            held = tuple(sorted(self.state.holds.held_subjects(dataset, as_of.date())))
            if entry.store == "sql":
                self._count_rows(entry, cutoff, effective, held, retention.batch_size)
            else:
                self._count_objects(entry, cutoff, effective, held)
            entry.fraction = round(entry.to_act / entry.total, 6) if entry.total else 0.0
            if entry.fraction > retention.max_fraction_per_run:
                entry.guardrail = "blocked"
            datasets.append(entry)
            log.info("plan: %s (%s, %s after %s): %d candidates, %d under floor, %d held, %d to %s of %d (%.1f%%)",
                     dataset, rule.name, rule.action, rule.keep, entry.candidates, entry.under_floor, entry.held,
                     entry.to_act, rule.action, entry.total, 100 * entry.fraction)
        plan = Plan(run_id, iso_utc(as_of), retention.batch_size, retention.max_fraction_per_run, datasets)
        self._order_children_first(plan, as_of)
        if record:
            self.state.ledger.append("retention.plan", plan.to_dict(), dag_id=dag_id, run_id=run_id, key=_key(run_id, "plan"))
        return plan

    def selection(self, entry: DatasetPlan, held: tuple = (), cutoff: datetime | None = None) -> Selection:
        return Selection(
            older_than=cutoff or _when(entry.effective_cutoff),
            exclude_subjects=held,
            pending_anonymization=tuple(entry.fields) if entry.action == "anonymize" else (),
        )

    def _count_rows(self, entry: DatasetPlan, cutoff: datetime, effective: datetime, held: tuple, batch: int) -> None:
        store: SqlStore = self.store(entry.system)
        entry.total = store.count(entry.dataset)
        entry.candidates = store.count(entry.dataset, self.selection(entry, cutoff=cutoff))
        eligible = entry.candidates if effective == cutoff else store.count(entry.dataset, self.selection(entry))
        entry.under_floor = entry.candidates - eligible
        acting = self.selection(entry, held)
        ranges = store.key_ranges(entry.dataset, acting, batch)
        act = sum(r.rows for r in ranges)
        entry.held = eligible - act
        entry.ranges = [[r.low, r.high, r.rows] for r in ranges]
        if entry.action == "delete":
            entry.to_delete = act
        else:
            entry.to_anonymize = act

    def _objects(self, entry: DatasetPlan) -> dict[str, list]:
        """Every version and delete marker under the dataset's prefix, by key."""
        groups: dict[str, list] = {}
        for version in self.store(entry.system).list_versions(self.catalog.static_prefix(entry.dataset)):
            groups.setdefault(version.key, []).append(version)
        return groups

    def _expired(self, entry: DatasetPlan, groups: dict[str, list], cutoff: datetime, held: set) -> dict[str, list]:
        """Objects whose newest version or marker is older than ``cutoff``, held subjects' left out."""
        return {
            key: versions for key, versions in groups.items()
            if max(v.last_modified for v in versions) < cutoff
            and self.catalog.subject_of_key(entry.dataset, key) not in held
        }

    def _count_objects(self, entry: DatasetPlan, cutoff: datetime, effective: datetime, held: tuple) -> None:
        groups = self._objects(entry)
        entry.total = len(groups)
        entry.candidates = len(self._expired(entry, groups, cutoff, set()))
        eligible = len(self._expired(entry, groups, effective, set()))
        entry.under_floor = entry.candidates - eligible
        entry.to_delete = len(self._expired(entry, groups, effective, set(held)))
        entry.held = eligible - entry.to_delete

    def _order_children_first(self, plan: Plan, as_of: datetime) -> None:
        """Give each deleting dataset a stage after the datasets whose rows point at it;
        refuse, before anything changes, rows that would stay referenced."""
        deleting = {d.dataset: d for d in plan.datasets if d.store == "sql" and d.action == "delete" and d.to_delete}
        by_table = {(self.catalog.dataset(n).system, self.catalog.dataset(n).table): n for n in self.catalog.table_datasets}
        problems, edges = [], []
        for name, entry in deleting.items():
            store: SqlStore = self.store(entry.system)
            for ref in store.children(name):
                child = by_table.get((entry.system, ref.table))
                unless = (child, self.selection(deleting[child])) if child in deleting else None
                blocking = store.referenced(name, self.selection(entry), ref, unless=unless)
                if blocking:
                    problems.append(
                        f"{name}: {blocking} expired row(s) are still referenced by {ref.table}({', '.join(ref.columns)})"
                        + ("" if unless else "; add a retention rule that removes those rows first, or keep these longer")
                    )
                elif unless is not None:
                    edges.append((child, name))
        for _ in range(MAX_STAGES):
            for child, parent in edges:
                deleting[parent].stage = max(deleting[parent].stage, deleting[child].stage + 1)
        if any(d.stage >= MAX_STAGES for d in deleting.values()):
            problems.append(f"foreign keys chain more than {MAX_STAGES} deleting datasets; split the rules")
        if problems:
            raise LifecycleError("retention plan refused, nothing was changed:\n  " + "\n  ".join(problems))

    # ------------------------------------------------------------- guardrail

    def gate(self, plan: Plan, *, override: bool = False, reason: str = "", dag_id: str | None = None) -> dict[str, list[dict]]:
        """Stop the run if a dataset would lose more than ``max_fraction_per_run``,
        unless this run overrides it with a reason; return the work units."""
        blocked = [d for d in plan.datasets if d.guardrail in ("blocked", "overridden")]
        if blocked:
            events = [{"dataset": d.dataset, "fraction": d.fraction, "to_remove": d.to_act, "total": d.total} for d in blocked]
            if not override:
                self.state.ledger.append("retention.guardrail", {"blocked": events, "limit": plan.max_fraction},
                                         dag_id=dag_id, run_id=plan.run_id, key=_key(plan.run_id, "guardrail"))
                lines = [f"{d.dataset}: {d.to_act:,} of {d.total:,} rows ({100 * d.fraction:.1f}%) is more than "
                         f"max_fraction_per_run {100 * plan.max_fraction:g}%" for d in blocked]
                raise LifecycleError(
                    "guardrail stopped the run before any change:\n  " + "\n  ".join(lines)
                    + "\nIf this is intended, trigger the run with override_guardrail=true and an override_reason."
                )
            if len(reason.strip()) < 10:
                raise LifecycleError("override_guardrail is set, so override_reason must say why (at least 10 characters)")
            self.state.ledger.append("retention.guardrail_override", {"datasets": events, "limit": plan.max_fraction,
                                                                       "reason": reason.strip()},
                                     dag_id=dag_id, run_id=plan.run_id, key=_key(plan.run_id, "override"))
            for d in blocked:
                d.guardrail = "overridden"
                log.warning("guardrail overridden for %s (%.1f%%): %s", d.dataset, 100 * d.fraction, reason.strip())
        return self.units(plan)

    def units(self, plan: Plan, partitions: int | None = None) -> dict[str, list[dict]]:
        """Work units per (system, stage): a SQL dataset's ranges in up to
        ``max_partitions_per_dataset`` contiguous groups; one unit per object dataset."""
        partitions = partitions or self.config.retention.max_partitions_per_dataset
        units: dict[str, list[dict]] = {unit_group(s, i): [] for s in self.systems() for i in range(MAX_STAGES)}
        for d in plan.datasets:
            if not d.to_act:
                continue
            common = {"dataset": d.dataset, "action": d.action, "cutoff": d.effective_cutoff, "fields": d.fields}
            if d.store == "s3":
                units[unit_group(d.system, 0)].append({**common, "part": 0, "parts": 1})
                continue
            parts = min(partitions, len(d.ranges))
            size = -(-len(d.ranges) // parts)
            for part in range(parts):
                units[unit_group(d.system, d.stage)].append(
                    {**common, "part": part, "parts": parts, "ranges": d.ranges[part * size:(part + 1) * size]}
                )
        return units

    def systems(self) -> list[str]:
        return retention_systems(self.config)

    # ----------------------------------------------------------------- apply

    def apply(self, unit: dict, run_id: str, as_of: datetime, *, dag_id: str | None = None) -> dict:
        """Apply one unit; batches already recorded for this run are skipped."""
        entry = self.catalog.dataset(unit["dataset"])
        system = entry.system
        held = tuple(sorted(self.state.holds.held_subjects(unit["dataset"], as_of.date())))
        if self.catalog.systems[system].type == "s3":
            return self._apply_objects(unit, run_id, held, dag_id)
        return self._apply_rows(unit, run_id, held, dag_id)

    def _apply_rows(self, unit: dict, run_id: str, held: tuple, dag_id) -> dict:
        name, action = unit["dataset"], unit["action"]
        store: SqlStore = self.store(self.catalog.dataset(name).system)
        selection = Selection(older_than=_when(unit["cutoff"]), exclude_subjects=held,
                              pending_anonymization=tuple(unit["fields"]) if action == "anonymize" else ())
        fields = [f for f in self.catalog.personal_fields(name) if f.column in unit["fields"]]
        key_material = hmac_key(self.catalog) if action == "anonymize" and any(
            f.spec.anonymize.strategy == "hmac" for f in fields) else None
        done = skipped = 0
        total = len(unit["ranges"])
        finished = self.state.ledger.keys_with_prefix(_key(run_id, name, ""))
        for i, (low, high, planned) in enumerate(unit["ranges"], 1):
            key = _key(run_id, name, low, high)
            if key in finished:
                skipped += 1
                continue
            started = time.monotonic()
            key_range = KeyRange(low, high, planned)
            if action == "delete":
                rows = store.delete_range(name, selection, key_range)
            else:
                rows = store.anonymize_range(name, selection, key_range, fields, hmac_key=key_material)
            seconds = round(time.monotonic() - started, 3)
            self.state.ledger.append(f"retention.{action}", {"dataset": name, "low": low, "high": high, "rows": rows,
                                                             "seconds": seconds}, dag_id=dag_id, run_id=run_id, key=key)
            done += rows
            log.info("%s: batch %d/%d (keys %s..%s, part %d/%d): %d row(s) %sd in %.2fs",
                     name, i, total, low, high, unit["part"] + 1, unit["parts"], rows, action, seconds)
        if skipped:
            log.info("%s: %d batch(es) were already done in an earlier attempt of this run", name, skipped)
        return {"dataset": name, "action": action, "rows": done, "batches": total, "resumed": skipped}

    def _apply_objects(self, unit: dict, run_id: str, held: tuple, dag_id) -> dict:
        from lifecycle.stores.s3 import MAX_KEYS_PER_DELETE

        name = unit["dataset"]
        store = self.store(self.catalog.dataset(name).system)
        entry = DatasetPlan(dataset=name, system="", store="s3", rule="", action="delete", keep="",
                            cutoff=unit["cutoff"], effective_cutoff=unit["cutoff"])
        expired = self._expired(entry, self._objects(entry), _when(unit["cutoff"]), set(held))
        versions = [v for key in sorted(expired) for v in expired[key]]
        finished = self.state.ledger.keys_with_prefix(_key(run_id, name, "objects", ""))
        deleted = locked = 0
        for chunk in chunks(versions, MAX_KEYS_PER_DELETE):
            digest = hashlib.sha256("\n".join(f"{v.key}\0{v.version_id}" for v in chunk).encode()).hexdigest()[:20]
            key = _key(run_id, name, "objects", digest)
            if key in finished:
                continue
            outcome = store.delete_versions(chunk)
            locks, other = [], []
            for error in outcome.errors:
                version = next(v for v in chunk if v.key == error.key and v.version_id == error.version_id)
                lock = store.lock(version)
                if lock.legal_hold or lock.retain_until:
                    locks.append({"key": error.key, "version": error.version_id, "mode": lock.mode,
                                  "retain_until": iso_utc(lock.retain_until) if lock.retain_until else None,
                                  "legal_hold": lock.legal_hold})
                else:
                    other.append(f"{error.key} ({error.code})")
            self.state.ledger.append("retention.delete_objects", {
                "dataset": name, "versions_deleted": len(outcome.deleted),
                "objects_deleted": len({v.key for v in outcome.deleted}), "locked": locks,
                "requests": outcome.requests}, dag_id=dag_id, run_id=run_id, key=key)
            deleted += len(outcome.deleted)
            locked += len(locks)
            log.info("%s: deleted %d version(s) and marker(s) in %d request(s); %d locked",
                     name, len(outcome.deleted), outcome.requests, len(locks))
            if other:
                raise TransientError(f"{name}: {len(other)} version(s) could not be deleted: {', '.join(other[:5])}")
        return {"dataset": name, "action": "delete", "versions": deleted, "locked": locked}

    # ---------------------------------------------------------------- verify

    def verify(self, plan: Plan, *, dag_id: str | None = None) -> dict:
        """Count again: nothing expired may remain but held, statutory and locked items."""
        as_of = _when(plan.as_of)
        results, problems = {}, []
        for d in plan.datasets:
            if d.guardrail == "blocked":
                results[d.dataset] = {"skipped": "guardrail"}
                continue
            held = tuple(sorted(self.state.holds.held_subjects(d.dataset, as_of.date())))
            if d.store == "sql":
                store: SqlStore = self.store(d.system)
                remaining = store.count(d.dataset, self.selection(d, held))
                held_left = store.count(d.dataset, self.selection(d)) - remaining
                results[d.dataset] = {"remaining": remaining, "held": held_left}
                if remaining:
                    problems.append(f"{d.dataset}: {remaining} expired row(s) remain that are neither held nor under a statutory floor")
            else:
                remaining = self._expired(d, self._objects(d), _when(d.effective_cutoff), set(held))
                store = self.store(d.system)
                unlocked = [k for k, versions in remaining.items()
                            if not any(store.lock(v).active_at(as_of) for v in versions if not v.is_delete_marker)]
                results[d.dataset] = {"remaining": len(unlocked), "locked": len(remaining) - len(unlocked)}
                if unlocked:
                    problems.append(f"{d.dataset}: {len(unlocked)} expired object(s) remain that are neither held nor locked")
        self.state.ledger.append("retention.verify", {"datasets": results, "ok": not problems},
                                 dag_id=dag_id, run_id=plan.run_id)
        if problems:
            raise LifecycleError("verification failed:\n  " + "\n  ".join(problems))
        return results

    # ---------------------------------------------------------------- report

    def report(self, plan: Plan, *, dag_id: str | None = None, finished: datetime | None = None) -> dict:
        """The retention report (JSON for machines, HTML for people), from the ledger."""
        from lifecycle import reports

        entries = list(self.state.ledger.entries(run_id=plan.run_id))
        rows = []
        for d in plan.datasets:
            mine = [e for e in entries if e.payload.get("dataset") == d.dataset and e.kind.startswith("retention.")]
            locks = [lock for e in mine for lock in e.payload.get("locked", [])]
            rows.append({
                "dataset": d.dataset, "rule": d.rule, "action": d.action, "keep": d.keep, "cutoff": d.cutoff,
                "statutory_floor": d.floor, "basis": d.basis, "effective_cutoff": d.effective_cutoff,
                "total": d.total, "candidates": d.candidates, "under_floor": d.under_floor, "held": d.held,
                "deleted": sum(e.payload.get("rows", 0) for e in mine if e.kind == "retention.delete")
                + sum(e.payload.get("objects_deleted", 0) for e in mine if e.kind == "retention.delete_objects"),
                "versions_deleted": sum(e.payload.get("versions_deleted", 0) for e in mine),
                "anonymized": sum(e.payload.get("rows", 0) for e in mine if e.kind == "retention.anonymize"),
                "locked": len(locks),
                "locked_until": sorted({lock["retain_until"] for lock in locks if lock["retain_until"]}),
                "locked_by_legal_hold": sum(1 for lock in locks if lock["legal_hold"]),
                "guardrail": d.guardrail, "fraction": d.fraction,
                "seconds": round(sum(e.payload.get("seconds", 0) for e in mine), 3),
            })
        verify = next((e.payload for e in reversed(entries) if e.kind == "retention.verify"), None)
        guardrail = [e.payload for e in entries if e.kind in ("retention.guardrail", "retention.guardrail_override")]
        document = {
            "report": "retention", "run_id": plan.run_id, "as_of": plan.as_of,
            "max_fraction_per_run": plan.max_fraction, "batch_size": plan.batch_size,
            "generated_at": iso_utc(finished or datetime.now(timezone.utc)),
            "datasets": rows, "guardrail_events": guardrail, "verification": verify,
        }
        sink = reports.ReportSink(self.catalog)
        folder = f"retention/{plan.as_of[:10]}/{_safe(plan.run_id)}"
        json_doc = sink.write(f"{folder}/report.json", reports.canonical(document), content_type="application/json")
        html_doc = sink.write(f"{folder}/report.html", reports.render("retention_report.html.j2", report=document).encode("utf-8"),
                              content_type="text/html; charset=utf-8")
        self.state.ledger.append("retention.report", {"json": json_doc.location, "json_sha256": json_doc.sha256,
                                                      "html": html_doc.location}, dag_id=dag_id, run_id=plan.run_id)
        log.info("report: %s and %s", json_doc.location, html_doc.location)
        return {"json": json_doc.location, "html": html_doc.location, "datasets": len(rows)}


def retention_systems(config: Config) -> list[str]:
    """The systems holding datasets a rule covers: they shape the DAG (one pool and
    one apply task per stage each), so this reads the configuration only."""
    catalog = config.catalog
    return sorted({
        catalog.dataset(d).system
        for rule in config.retention.rules
        for d in catalog.rule_targets(rule.applies_to.categories, rule.applies_to.datasets, rule.action)
    })


def unit_group(system: str, stage: int) -> str:
    return f"{system}__stage_{stage}"


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
