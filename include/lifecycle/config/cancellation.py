"""cancellation.yaml: erasure after an account is cancelled (SPEC §3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from lifecycle.catalog import Catalog
from lifecycle.catalog.checks import anonymizable_problems, applies_to_problems, keyed_problems, purge_within
from lifecycle.catalog.models import AppliesTo
from lifecycle.config.erasure_actions import check_anonymized
from lifecycle.errors import Problem
from lifecycle.shapes import DurationField, Model

CANCELLATION = "cancellation.yaml"


class Requests(Model):
    dataset: str
    subject: str
    requested_at: str
    withdrawn_at: str | None = None


class ActionOverride(Model):
    applies_to: AppliesTo
    action: Literal["delete", "anonymize"]


class Notify(Model):
    scheduled: str | None = None
    completed: str | None = None


class CancellationFile(Model):
    schedule: str | None = "@hourly"
    requests: Requests
    grace_period: DurationField
    complete_within: DurationField
    default_action: Literal["delete", "anonymize"] = "delete"
    overrides: list[ActionOverride] = []
    notify: Notify = Notify()
    batch_size: Annotated[int, Field(gt=0, le=10_000)] = 500


def check_cancellation(catalog: Catalog, cancellation) -> Iterator[Problem]:
    requests = cancellation.requests
    if requests.dataset not in catalog.datasets:
        yield Problem(CANCELLATION, "requests.dataset", f"unknown dataset {requests.dataset!r}")
    elif not catalog.dataset(requests.dataset).is_table:
        yield Problem(CANCELLATION, "requests.dataset", f"{requests.dataset!r} must be a table dataset")
    else:
        yield from keyed_problems(catalog, CANCELLATION, "requests.dataset", requests.dataset)
    if not cancellation.grace_period.surely_shorter_than(cancellation.complete_within):
        yield Problem(
            CANCELLATION,
            "complete_within",
            f"{cancellation.complete_within} leaves no time after the grace period {cancellation.grace_period}",
        )
    yield from purge_within(catalog, CANCELLATION, "complete_within", cancellation.complete_within)
    for i, override in enumerate(cancellation.overrides):
        yield from applies_to_problems(catalog, CANCELLATION, f"overrides[{i}].applies_to", override.applies_to)
        if override.action == "anonymize":
            targets = catalog.rule_targets(override.applies_to.categories, override.applies_to.datasets, "anonymize")
            yield from anonymizable_problems(catalog, CANCELLATION, f"overrides[{i}].action", targets)
    yield from check_anonymized(catalog, cancellation)
