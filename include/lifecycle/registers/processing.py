"""The record of processing activities (GDPR art. 30), generated from the configuration alone.

For each purpose catalog.yaml defines: its legal basis, the categories of
people and of data, the datasets, the recipients (with their country and the
safeguards of a transfer), the retention periods (retention.yaml's rules and
statutory floors, and what an account's cancellation does) and the security
measures.  The same configuration gives the same record: everything sorted,
no time in it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lifecycle import reports
from lifecycle.catalog.models import LEGAL_BASES
from lifecycle.config.erasure_actions import cancellation_actions
from lifecycle.errors import ConfigError, Problem
from lifecycle.floors import statutory_floors

if TYPE_CHECKING:
    from lifecycle.config import Config
    from lifecycle.config.recipients import Recipient

TEMPLATE = "record_of_processing.html.j2"


def record_of_processing(config: Config) -> dict:
    """The record as a JSON-able document; refused (``ConfigError``) without a ``controller``."""
    catalog = config.catalog
    model = catalog.model
    if model.controller is None:
        raise ConfigError(
            [
                Problem(
                    "catalog.yaml",
                    "controller",
                    "the record of processing names the controller: add controller: {name, address, privacy_contact}",
                )
            ]
        )
    served = _datasets_by_purpose(config)
    return {
        "record": "record of processing activities",
        "controller": model.controller.model_dump(mode="json", exclude_none=True),
        "people": _people(config),
        "purposes": [_purpose(config, name, served.get(name, {})) for name in sorted(model.purposes)],
        "security_measures": list(model.security_measures),
    }


def _people(config: Config) -> list[str]:
    """The categories of people: ``subject.people``, else the subject dataset's name."""
    subject = config.catalog.subject
    return sorted(subject.people) or [subject.dataset]


def _datasets_by_purpose(config: Config) -> dict[str, dict[str, set[str]]]:
    """purpose -> dataset -> the dataset's categories it covers."""
    served: dict[str, dict[str, set[str]]] = {}
    for name in config.catalog.datasets:
        for purpose, categories in config.catalog.purposes_of(name).items():
            served.setdefault(purpose, {})[name] = categories
    return served


def _purpose(config: Config, name: str, datasets: dict[str, set[str]]) -> dict:
    catalog = config.catalog
    purpose = catalog.model.purposes[name]
    categories = sorted(set().union(*datasets.values())) if datasets else []
    return {
        "purpose": name,
        "title": purpose.title,
        "description": purpose.description,
        "legal_basis": purpose.legal_basis,
        "legal_basis_text": LEGAL_BASES.get(purpose.legal_basis, purpose.legal_basis),
        "people": _people(config),
        "categories": [{"category": c, "title": catalog.model.categories[c].title or c} for c in categories],
        "datasets": [
            {
                "dataset": dataset,
                "system": catalog.dataset(dataset).system,
                "categories": sorted(datasets[dataset]),
                "retention": retention_of(config, dataset),
            }
            for dataset in sorted(datasets)
        ],
        "recipients": [
            _recipient(r) for r in sorted(config.recipients.recipients, key=lambda r: r.id) if name in serves(config, r)
        ],
    }


def serves(config: Config, recipient: Recipient) -> set[str]:
    """The purposes a recipient serves: its ``purposes``, else those of the fields it receives."""
    if recipient.purposes:
        return set(recipient.purposes)
    catalog = config.catalog
    found: set[str] = set()
    for dataset, columns in recipient.share.items():
        if dataset not in catalog.datasets:
            continue
        purposes = catalog.purposes_of(dataset)
        for field in catalog.personal_fields(dataset):
            if field.column in columns:
                found.update(p for p, categories in purposes.items() if field.category in categories)
    return found


# The recipient's own keys in recipients.yaml that the record shows as written.
_RECIPIENT_KEYS = {"name", "role", "legal_basis", "purpose", "country", "safeguards"}


def _recipient(recipient: Recipient) -> dict:
    return {
        "recipient": recipient.id,
        **recipient.model_dump(include=_RECIPIENT_KEYS),
        "datasets": {dataset: sorted(columns) for dataset, columns in sorted(recipient.share.items())},
        "agreement": recipient.agreement.id if recipient.agreement else None,
    }


def retention_of(config: Config, dataset: str) -> dict:
    """How long a dataset is kept: its retention rule, the statutory floors that cover it, and
    what an account's cancellation does to it (and within how long)."""
    catalog = config.catalog
    rule = next(
        (
            r
            for r in config.retention.rules
            if dataset in catalog.rule_targets(r.applies_to.categories, r.applies_to.datasets, r.action)
        ),
        None,
    )
    cancellation = config.cancellation
    return {
        "rule": {"name": rule.name, "keep": str(rule.keep), "action": rule.action} if rule else None,
        "statutory_floors": [
            {"name": f.name, "minimum": str(f.minimum), "basis": f.basis} for f in statutory_floors(config, dataset)
        ],
        "on_cancellation": {
            "action": cancellation_actions(catalog, cancellation).get(dataset, cancellation.default_action),
            "grace_period": str(cancellation.grace_period),
            "complete_within": str(cancellation.complete_within),
        }
        if cancellation is not None
        else None,
    }


def render(record: dict) -> str:
    """The record as HTML (``include/lifecycle/templates/record_of_processing.html.j2``)."""
    return reports.render(TEMPLATE, report=record)
