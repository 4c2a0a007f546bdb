"""What cancellation erasure does to each dataset, and the combinations it could not verify.

``cancellation_actions`` is the one reading of ``default_action`` and
``overrides`` (the erasure's steps and the checks below use it);
``anonymized_link`` reads a dataset's ``on_anonymize.link``.  An anonymized
row is verified by what anonymization promises: with its link cleared, it no
longer reaches the person; with its link kept (``link: keep``, or the
subject's own row, whose key is the person), its personal fields hold their
anonymized values.  ``check_anonymized`` refuses, before any run, what that
verification could not accept.
"""

from __future__ import annotations

from collections.abc import Iterator

from lifecycle.catalog import Catalog
from lifecycle.errors import Problem

CATALOG, CANCELLATION = "catalog.yaml", "cancellation.yaml"


def cancellation_actions(catalog: Catalog, cancellation) -> dict[str, str]:
    """Every personal dataset -> ``delete`` or ``anonymize``: the first override covering it,
    else ``default_action``; objects are always deleted (catalog order)."""
    overrides: dict[str, str] = {}
    for override in cancellation.overrides:
        targets = catalog.rule_targets(override.applies_to.categories, override.applies_to.datasets, override.action)
        for name in targets:
            overrides.setdefault(name, override.action)
    actions = {}
    for name, ds in catalog.datasets.items():
        if ds.personal:
            actions[name] = overrides.get(name, cancellation.default_action) if ds.is_table else "delete"
    return actions


def anonymized_link(catalog: Catalog, dataset: str) -> str:
    """``clear`` or ``keep``: what anonymizing ``dataset`` in cancellation erasure does to its
    subject link (the subject's own row has none: it stays the person's by its key)."""
    if dataset == catalog.subject.dataset:
        return "keep"
    ds = catalog.dataset(dataset)
    return ds.on_anonymize.link if ds.on_anonymize is not None else "clear"


def check_anonymized(catalog: Catalog, cancellation) -> Iterator[Problem]:
    """Anonymized datasets verification could accept: every personal field has a strategy
    (``default_action``; overrides are checked where they are), a row kept linked has a field
    that changes, and it does not point at a row the erasure deletes."""
    actions = cancellation_actions(catalog, cancellation)
    overridden = {
        name
        for o in cancellation.overrides
        for name in catalog.rule_targets(o.applies_to.categories, o.applies_to.datasets, o.action)
    }
    for name, action in actions.items():
        if action != "anonymize":
            continue
        fields = catalog.personal_fields(name)
        if name not in overridden:
            for field in fields:
                if field.spec.anonymize is None:
                    yield Problem(
                        CANCELLATION,
                        "default_action",
                        f"anonymize applies to {name!r}, but its personal field {field.column!r} has no anonymize "
                        "strategy in catalog.yaml; give it one, or delete the dataset (overrides)",
                    )
        if anonymized_link(catalog, name) == "keep":
            yield from _kept_linked(catalog, name, fields, actions)


def _kept_linked(catalog: Catalog, name: str, fields: list, actions: dict[str, str]) -> Iterator[Problem]:
    own = name == catalog.subject.dataset
    path = "default_action" if own else f"datasets.{name}.on_anonymize.link"
    if not any(f.spec.anonymize for f in fields):
        yield Problem(
            CANCELLATION if own else CATALOG,
            path,
            f"anonymizing {name!r} keeps its rows the person's, but it has no personal field with an anonymize "
            "strategy: nothing would change; give its fields strategies"
            + (" or delete it (overrides)" if own else ", clear the link, or delete it"),
        )
    if not own:
        target = catalog.dataset(name).subject.dataset
        if actions.get(target) == "delete":
            yield Problem(
                CATALOG,
                path,
                f"keep: cancellation erasure deletes {target!r}, which {name!r} rows point at; "
                f"clear the link, or anonymize {target!r} too (cancellation.yaml: overrides)",
            )
