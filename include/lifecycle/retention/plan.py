"""The plan as data: what each rule takes from each dataset in one run, why the rest stays,
and the units of work it is cut into.  These are the facts one stage hands the next; their
JSON (the ledger's ``retention.plan`` entry, the units in XCom) is written and read here only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from lifecycle.stores.contract import KeyRange


@dataclass(frozen=True)
class PartitionPlan:
    """One range partition of a deleting dataset's table that reaches back before the cutoff:
    whether it is dropped whole (``go``) and why, or why its expired rows go row by row.
    ``rows``: counted at plan, what its drop records; ``estimated``: read from the database's
    statistics instead (current for the partition), said so wherever the number is shown.
    ``run_id``: a drop an earlier run marked and did not finish (its table may be left
    detached): this run finishes it."""

    name: str
    low: str | None  # ISO UTC bounds: rows created in [low, high); None unbounded
    high: str | None
    rows: int = 0
    go: bool = False
    why: str = ""
    run_id: str | None = None
    estimated: bool = False

    @property
    def counted(self) -> str:
        """``rows`` as a reader sees it: ``1,234 rows``, or ``~1,234 rows (estimate)``."""
        return f"~{self.rows:,} rows (estimate)" if self.estimated else f"{self.rows:,} rows"

    @property
    def span(self) -> tuple[datetime | None, datetime | None]:
        return (
            datetime.fromisoformat(self.low) if self.low else None,
            datetime.fromisoformat(self.high) if self.high else None,
        )

    def to_json(self) -> dict:
        return asdict(self)


class Reference(TypedDict):
    """Rows of another dataset that stay and keep a dataset's expired rows, and how many."""

    dataset: str
    columns: list[str]
    on_delete: str
    subject_link: bool
    rows: int


@dataclass(frozen=True)
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
    fields: tuple[str, ...] = ()  # anonymize: the fields rewritten
    total: int = 0
    candidates: int = 0  # older than the rule's cutoff
    under_floor: int = 0  # of those, still inside a statutory minimum
    held: int = 0  # of the rest, under legal hold
    referenced: int = 0  # of the rest, kept: rows that stay still point at them
    references: list[Reference] = field(default_factory=list)  # behind ``referenced``
    to_delete: int = 0
    to_anonymize: int = 0
    fraction: float = 0.0
    guardrail: str = "ok"  # ok | blocked | overridden
    stage: int = 0  # apply order: children (lower stage) first
    ranges: tuple[tuple[Any, Any, int], ...] = ()  # (low, high, rows) per batch
    partitions: tuple[PartitionPlan, ...] = ()  # partitions reaching back before the cutoff
    error: str | None = None  # the dataset could not be planned: its unit fails, the others go on

    @property
    def to_act(self) -> int:
        return self.to_delete + self.to_anonymize

    @property
    def cutoff_at(self) -> datetime:
        return datetime.fromisoformat(self.cutoff)

    @property
    def effective_cutoff_at(self) -> datetime:
        return datetime.fromisoformat(self.effective_cutoff)

    @property
    def drops(self) -> tuple[PartitionPlan, ...]:
        """The partitions this run drops whole (or finishes dropping)."""
        return tuple(p for p in self.partitions if p.go)

    @property
    def dropped_spans(self) -> tuple[tuple[str | None, str], ...]:
        """The [low, high) spans of this run's own drops: the row path leaves them out."""
        return tuple((p.low, p.high) for p in self.drops if p.run_id is None)

    def to_json(self) -> dict:
        data = {**asdict(self), "fields": list(self.fields), "ranges": [list(r) for r in self.ranges]}
        data["partitions"] = [p.to_json() for p in self.partitions]
        if not self.partitions:
            del data["partitions"]  # the plans of unpartitioned tables keep their JSON
        return data

    @classmethod
    def from_json(cls, data: dict) -> DatasetPlan:
        return cls(
            **{
                **data,
                "fields": tuple(data["fields"]),
                "ranges": tuple(map(tuple, data["ranges"])),
                "partitions": tuple(PartitionPlan(**p) for p in data.get("partitions", ())),
            }
        )


@dataclass(frozen=True)
class Plan:
    run_id: str
    as_of: str
    batch_size: int
    max_fraction: float
    datasets: tuple[DatasetPlan, ...]

    def dataset(self, name: str) -> DatasetPlan:
        return next(d for d in self.datasets if d.dataset == name)

    def to_json(self) -> dict:
        return vars(self) | {"datasets": [d.to_json() for d in self.datasets]}

    @classmethod
    def from_json(cls, data: dict) -> Plan:
        return cls(**{**data, "datasets": tuple(DatasetPlan.from_json(d) for d in data["datasets"])})

    def summary(self) -> dict[str, dict]:
        """Counts per dataset, what the plan task shows in XCom (never rows)."""
        return {
            d.dataset: {
                "to_delete": d.to_delete,
                "to_anonymize": d.to_anonymize,
                "held": d.held,
                "under_floor": d.under_floor,
                "referenced": d.referenced,
                "batches": len(d.ranges),
                **({"partitions_dropped": len(d.drops)} if d.drops else {}),
                "guardrail": d.guardrail,
                **({"error": d.error} if d.error else {}),
            }
            for d in self.datasets
        }


@dataclass(frozen=True)
class Unit:
    """One apply task's work: contiguous key ranges of one dataset, part ``part`` of ``parts``."""

    dataset: str
    action: str
    cutoff: str  # the dataset's effective cutoff
    fields: tuple[str, ...]
    part: int
    parts: int
    ranges: tuple[KeyRange, ...]
    drops: tuple[PartitionPlan, ...] = ()  # partitions to drop whole (a part of their own, the first)
    skip: tuple[tuple[str | None, str], ...] = ()  # spans of created the ranges leave out (dropped)

    @property
    def cutoff_at(self) -> datetime:
        return datetime.fromisoformat(self.cutoff)

    @property
    def skipped_spans(self) -> tuple[tuple[datetime | None, datetime], ...]:
        return tuple(
            (datetime.fromisoformat(low) if low else None, datetime.fromisoformat(high)) for low, high in self.skip
        )

    def to_json(self) -> dict:
        data = {
            "dataset": self.dataset,
            "action": self.action,
            "cutoff": self.cutoff,
            "fields": list(self.fields),
            "part": self.part,
            "parts": self.parts,
            "ranges": [r.as_list() for r in self.ranges],
        }
        if self.drops or self.skip:
            data.update(drops=[p.to_json() for p in self.drops], skip=[list(s) for s in self.skip])
        return data


@dataclass(frozen=True)
class UnplannedUnit:
    """The unit of a dataset that could not be planned: its own task fails, the others go on."""

    dataset: str
    error: str
    part: int = 0
    parts: int = 1

    def to_json(self) -> dict:
        return asdict(self)


def unit_from_json(data: dict) -> Unit | UnplannedUnit:
    if data.get("error"):
        return UnplannedUnit(**data)
    return Unit(
        dataset=data["dataset"],
        action=data["action"],
        cutoff=data["cutoff"],
        fields=tuple(data["fields"]),
        part=data["part"],
        parts=data["parts"],
        ranges=tuple(KeyRange(*r) for r in data["ranges"]),
        drops=tuple(PartitionPlan(**p) for p in data.get("drops", ())),
        skip=tuple(tuple(s) for s in data.get("skip", ())),
    )
