"""retention.yaml: how long each dataset is kept, and the statutory floors (SPEC §3)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field, StrictBool, model_validator

from lifecycle.catalog import Catalog
from lifecycle.catalog.checks import anonymizable_problems, applies_to_problems, keyed_problems
from lifecycle.catalog.models import AppliesTo
from lifecycle.errors import Problem
from lifecycle.shapes import DurationField, Model, RuleName

RETENTION = "retention.yaml"


class RetentionRule(Model):
    name: RuleName
    applies_to: AppliesTo
    keep: DurationField
    action: Literal["delete", "anonymize"] = "delete"
    # delete only: a range partition of the table wholly past the cutoff, holding nothing held or
    # still referenced, is dropped instead of deleted row by row (None: yes where the data allows)
    drop_partitions: StrictBool | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _drops_delete(self):
        if self.drop_partitions and self.action != "delete":
            raise ValueError(
                f"drop_partitions: true needs action: delete (this rule has action: {self.action}); "
                "anonymizing rewrites rows, it never drops them: remove drop_partitions"
            )
        return self

    @property
    def drops_partitions(self) -> bool:
        return self.action == "delete" and self.drop_partitions is not False


class StatutoryMinimum(Model):
    name: RuleName
    applies_to: AppliesTo
    minimum: DurationField
    basis: str


class RetentionFile(Model):
    schedule: str | None = "0 2 * * *"
    batch_size: Annotated[int, Field(gt=0, le=1_000_000)] = 10_000
    max_fraction_per_run: Annotated[float, Field(gt=0, le=1)] = 0.25
    max_partitions_per_dataset: Annotated[int, Field(gt=0, le=64)] = 4
    rules: list[RetentionRule] = []
    statutory: list[StatutoryMinimum] = []


def check_retention(catalog: Catalog, retention) -> Iterator[Problem]:
    for kind, items in (("rules", retention.rules), ("statutory", retention.statutory)):
        for name, count in Counter(item.name for item in items).items():
            if count > 1:
                yield Problem(RETENTION, kind, f"name {name!r} is used {count} times; names must be unique")
    floors = []
    for i, floor in enumerate(retention.statutory):
        yield from applies_to_problems(catalog, RETENTION, f"statutory[{i}].applies_to", floor.applies_to)
        floors.append((floor, set(catalog.resolve(floor.applies_to.categories, floor.applies_to.datasets))))
    owner: dict[str, tuple[int, str]] = {}
    for i, rule in enumerate(retention.rules):
        path = f"rules[{i}]"
        yield from applies_to_problems(catalog, RETENTION, f"{path}.applies_to", rule.applies_to)
        targets = catalog.rule_targets(rule.applies_to.categories, rule.applies_to.datasets, rule.action)
        datasets = list(targets)
        if not datasets:
            yield Problem(RETENTION, f"{path}.applies_to", f"rule {rule.name!r} applies to no dataset")
        for name in datasets:
            if name in owner:
                yield Problem(
                    RETENTION,
                    f"{path}.applies_to",
                    f"dataset {name!r} is already covered by rules[{owner[name][0]}] ({owner[name][1]}); a dataset may have one retention rule",
                )
            owner.setdefault(name, (i, rule.name))
            if not catalog.dataset(name).created and catalog.dataset(name).is_table:
                yield Problem(
                    RETENTION,
                    f"{path}.applies_to",
                    f"dataset {name!r} has no created column in catalog.yaml, so its age is unknown",
                )
            yield from keyed_problems(catalog, RETENTION, f"{path}.applies_to", name)
        for floor, covered in floors:
            hit = sorted(covered.intersection(datasets))
            if hit and rule.keep.surely_shorter_than(floor.minimum):
                yield Problem(
                    RETENTION,
                    f"{path}.keep",
                    f"{rule.keep} is shorter than the statutory minimum {floor.minimum} ({', '.join(hit)}: {floor.basis})",
                )
        if rule.action == "anonymize":
            yield from anonymizable_problems(catalog, RETENTION, f"{path}.action", targets)
