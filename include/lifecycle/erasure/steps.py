"""What erasing one person means under the configuration: every dataset reachable
from them, in an order the database's foreign keys accept."""

from __future__ import annotations

from dataclasses import dataclass

from lifecycle.config import Config


@dataclass(frozen=True)
class Step:
    dataset: str
    action: str  # delete | anonymize
    basis: str | None  # why an anonymized dataset is kept (statutory floor)


def erasure_steps(config: Config) -> list[Step]:
    """Every dataset reachable from the subject, in erasure order: deeper links first
    (children before parents), objects, the subject's own row last."""
    catalog, cancellation = config.catalog, config.cancellation
    overrides: dict[str, str] = {}
    for override in cancellation.overrides:
        targets = catalog.rule_targets(override.applies_to.categories, override.applies_to.datasets, override.action)
        for name in targets:
            overrides.setdefault(name, override.action)
    tables, objects = [], []
    for name in catalog.datasets:
        ds = catalog.dataset(name)
        if not ds.personal or name == catalog.subject.dataset:
            continue
        action = overrides.get(name, cancellation.default_action)
        if ds.is_table:
            basis = _statutory_basis(config, name) if action == "anonymize" else None
            tables.append((len(catalog.path_to_subject(name)), Step(name, action, basis)))
        else:
            objects.append(Step(name, "delete", None))
    ordered = [step for _, step in sorted(tables, key=lambda pair: -pair[0])]
    subject = catalog.subject.dataset
    return ordered + objects + [Step(subject, overrides.get(subject, cancellation.default_action), None)]


def _statutory_basis(config: Config, dataset: str) -> str | None:
    """The first statutory floor covering ``dataset``, as ``<name>: <basis>``."""
    for floor in config.retention.statutory:
        if dataset in config.catalog.resolve(floor.applies_to.categories, floor.applies_to.datasets):
            return f"{floor.name}: {floor.basis}"
    return None
