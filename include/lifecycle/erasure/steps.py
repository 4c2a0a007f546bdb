"""What erasing one person means under the configuration: every dataset reachable
from them, in an order the database's foreign keys accept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lifecycle.config import Config
from lifecycle.config.erasure_actions import anonymized_link, cancellation_actions
from lifecycle.floors import statutory_floors


@dataclass(frozen=True)
class Step:
    dataset: str
    action: str  # delete | anonymize
    basis: str | None  # why an anonymized dataset is kept (statutory floor)
    link: str | None = None  # anonymize: the subject link cleared or kept (catalog ``on_anonymize.link``)


def erasure_steps(config: Config, as_of: datetime | None = None) -> list[Step]:
    """Every dataset reachable from the subject, in erasure order: deeper links first
    (children before parents), objects, the subject's own row last.  ``as_of``: the run's
    time, which decides the floor named as an anonymized dataset's basis (None: no basis,
    for callers that need the datasets and their order only)."""
    catalog = config.catalog
    actions = cancellation_actions(catalog, config.cancellation)
    tables, objects = [], []
    subject = catalog.subject.dataset
    for name, action in actions.items():
        if name == subject:
            continue
        if catalog.dataset(name).is_table:
            tables.append((len(catalog.path_to_subject(name)), _step(config, name, action, as_of)))
        else:
            objects.append(Step(name, "delete", None))
    ordered = [step for _, step in sorted(tables, key=lambda pair: -pair[0])]
    own = actions.get(subject, config.cancellation.default_action)
    return ordered + objects + [_step(config, subject, own, as_of)]


def _step(config: Config, dataset: str, action: str, as_of: datetime | None) -> Step:
    if action != "anonymize":
        return Step(dataset, action, None)
    floors = statutory_floors(config, dataset, as_of) if as_of else []
    basis = floors[0].label if floors else None
    return Step(dataset, action, basis, anonymized_link(config.catalog, dataset))
