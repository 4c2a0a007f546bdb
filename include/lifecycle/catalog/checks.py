"""catalog.yaml's rules that need the whole catalog, and the references other files make into it.

``check_catalog`` checks catalog.yaml on its own; the ``*_problems`` helpers
check a reference any file makes (a system of a kind, a category, a keyed
table, an ``applies_to`` selection, datasets to anonymize) and yield
``Problem``s naming that file and key.
"""

from __future__ import annotations

from collections.abc import Iterator

from lifecycle import anonymize
from lifecycle.catalog import Catalog, LinkError
from lifecycle.catalog.models import LEGAL_BASES, AppliesTo, CatalogFile, Dataset, FieldSpec
from lifecycle.errors import Problem

CATALOG = "catalog.yaml"


TABLE_SYSTEMS = ("sql", "iceberg", "delta")  # systems a table dataset may live in


def system_problems(
    catalog: Catalog, file: str, path: str, name: str, kind: str | tuple[str, ...]
) -> Iterator[Problem]:
    system = catalog.systems.get(name)
    kinds = (kind,) if isinstance(kind, str) else kind
    if system is None:
        yield Problem(file, path, f"unknown system {name!r}; the catalog has {', '.join(sorted(catalog.systems))}")
    elif system.type not in kinds:
        needed = f"{'an' if kinds[0] == 's3' else 'a'} {kinds[0]} system"
        if len(kinds) > 1:
            needed += f" (or {' or '.join(kinds[1:])})"
        yield Problem(file, path, f"system {name!r} is of type {system.type}, this needs {needed}")


def purge_within(catalog: Catalog, file: str, key: str, promise) -> Iterator[Problem]:
    """A lake system's ``purge_after`` fits within a promise it serves: an erasure is complete
    only once the files still holding the rows are gone."""
    for name, system in catalog.systems.items():
        purge = getattr(system, "purge_after", None)
        if purge is not None and promise.surely_shorter_than(purge):
            yield Problem(
                CATALOG,
                f"systems.{name}.purge_after",
                f"{purge} is longer than {file} {key} ({promise}): the deleted rows would outlive the promise; "
                f"set purge_after to {promise} or less",
            )


def category_problems(catalog: Catalog, file: str, path: str, name: str | None) -> Iterator[Problem]:
    if name is not None and name not in catalog.model.categories:
        yield Problem(file, path, f"unknown category {name!r}; defined: {', '.join(sorted(catalog.model.categories))}")


def check_catalog(catalog: Catalog) -> Iterator[Problem]:
    """catalog.yaml on its own: the state and reports systems, category parents, the subject, each dataset."""
    model: CatalogFile = catalog.model
    yield from system_problems(catalog, CATALOG, "state", model.state, "sql")
    if model.reports.system:
        yield from system_problems(catalog, CATALOG, "reports.system", model.reports.system, "s3")
    for name in model.categories:
        yield from _category_parent(catalog, name)
    yield from _subject_dataset(model)
    for name, ds in model.datasets.items():
        yield from _dataset(catalog, name, ds)
    yield from _purposes(catalog)


def purpose_problems(catalog: Catalog, file: str, path: str, names: list[str]) -> Iterator[Problem]:
    """Each of ``names`` is a purpose catalog.yaml defines."""
    defined = catalog.model.purposes
    for i, name in enumerate(names):
        if name not in defined:
            known = ", ".join(sorted(defined)) or "none: add purposes: to catalog.yaml"
            yield Problem(file, f"{path}[{i}]", f"unknown purpose {name!r}; defined: {known}")


def _purposes(catalog: Catalog) -> Iterator[Problem]:
    """Purposes name a known legal basis; categories and datasets name known purposes; every
    personal dataset serves at least one purpose (the record of processing lists it under each)."""
    model = catalog.model
    for name, purpose in model.purposes.items():
        if purpose.legal_basis not in LEGAL_BASES:
            yield Problem(
                CATALOG,
                f"purposes.{name}.legal_basis",
                f"unknown legal basis {purpose.legal_basis!r}; one of {', '.join(LEGAL_BASES)} (GDPR art. 6(1)(a)-(f))",
            )
    for name, category in model.categories.items():
        yield from purpose_problems(catalog, CATALOG, f"categories.{name}.purposes", category.purposes)
    for name, ds in model.datasets.items():
        yield from purpose_problems(catalog, CATALOG, f"datasets.{name}.purposes", ds.purposes)
        if ds.personal and catalog.categories_of(name) and not catalog.purposes_of(name):
            yield Problem(
                CATALOG,
                f"datasets.{name}",
                f"personal dataset {name!r} serves no purpose; add purposes: [<purpose>] to the dataset, "
                f"or to one of its categories ({', '.join(sorted(catalog.categories_of(name)))}), "
                "naming purposes defined under purposes:",
            )


def _category_parent(catalog: Catalog, name: str) -> Iterator[Problem]:
    """A category's parent is defined, and following parents never leads back to it."""
    categories = catalog.model.categories
    yield from category_problems(catalog, CATALOG, f"categories.{name}.parent", categories[name].parent)
    lineage, current = [name], categories[name].parent
    while current in categories:
        if current in lineage:
            yield Problem(
                CATALOG,
                f"categories.{name}.parent",
                f"category parents form a cycle: {' -> '.join(lineage + [current])}",
            )
            break
        lineage.append(current)
        current = categories[current].parent


def _subject_dataset(model: CatalogFile) -> Iterator[Problem]:
    subject = model.subject
    if subject.dataset not in model.datasets:
        yield Problem(CATALOG, "subject.dataset", f"unknown dataset {subject.dataset!r}")
    elif not model.datasets[subject.dataset].is_table:
        yield Problem(CATALOG, "subject.dataset", f"the subject dataset {subject.dataset!r} must be a table")


def _dataset(catalog: Catalog, name: str, ds: Dataset) -> Iterator[Problem]:
    """One dataset: its system and category, its fields, then how a person's rows or objects are found."""
    where = f"datasets.{name}"
    yield from system_problems(catalog, CATALOG, f"{where}.system", ds.system, TABLE_SYSTEMS if ds.is_table else "s3")
    yield from category_problems(catalog, CATALOG, f"{where}.category", ds.category)
    if not ds.personal and (ds.category or any(f.personal for f in ds.fields.values())):
        yield Problem(
            CATALOG,
            where,
            "personal: false, yet it has a category or personal fields; mark those fields personal: false",
        )
    for column, spec in ds.fields.items():
        yield from _field(catalog, ds, f"{where}.fields.{column}", spec)
    if ds.is_table:
        yield from _subject_chain(catalog, name, ds)
    else:
        yield from _object_dataset(catalog, where, ds)
    if ds.inventory is not None:
        if ds.is_table:
            yield Problem(CATALOG, f"{where}.inventory", "only an object dataset (prefix) has an S3 Inventory")
        yield from system_problems(catalog, CATALOG, f"{where}.inventory.system", ds.inventory.system, "s3")
        if ds.inventory.prefix and not ds.inventory.prefix.endswith("/"):
            yield Problem(
                CATALOG,
                f"{where}.inventory.prefix",
                f"{ds.inventory.prefix!r} must end with '/': <destination prefix>/<source bucket>/<configuration id>/",
            )


def _field(catalog: Catalog, ds: Dataset, fpath: str, spec: FieldSpec) -> Iterator[Problem]:
    """A field's category (its own or the dataset's, if personal) and its anonymize strategy."""
    yield from category_problems(catalog, CATALOG, f"{fpath}.category", spec.category)
    if ds.personal and spec.personal and not (spec.category or ds.category):
        yield Problem(
            CATALOG,
            f"{fpath}.category",
            "personal field without a category, and the dataset has no whole-row category",
        )
    if spec.anonymize:
        apath = f"{fpath}.anonymize"
        if spec.anonymize.strategy not in anonymize.STRATEGIES:
            yield Problem(
                CATALOG,
                apath,
                f"unknown strategy {spec.anonymize.strategy!r}; valid: {', '.join(anonymize.STRATEGIES)}",
            )
        else:
            for message in anonymize.option_problems(spec.anonymize):
                yield Problem(CATALOG, apath, message)
        if not ds.is_table:
            yield Problem(CATALOG, apath, "objects in S3 cannot be anonymized field by field; use delete")


def _subject_chain(catalog: Catalog, name: str, ds: Dataset) -> Iterator[Problem]:
    """A personal table other than the subject's links to the subject; a SQL table within its own
    system, so a person's rows can be found with one SQL join."""
    model = catalog.model
    if not ds.personal or name == model.subject.dataset:
        return
    where = f"datasets.{name}"
    try:
        hops = catalog.path_to_subject(name)
    except LinkError as exc:
        hops = ()
        yield Problem(CATALOG, f"{where}.subject", f"does not reach the subject: {exc}")
    if ds.system in model.systems and model.systems[ds.system].type == "sql":  # a lake table resolves hop by hop
        apart = sorted({h.target for h in hops if model.datasets[h.target].system != ds.system})
        if apart:
            yield Problem(
                CATALOG,
                f"{where}.subject",
                f"the chain to the subject crosses into another system ({', '.join(apart)}); a chain must stay in {ds.system!r} so it can be joined in SQL",
            )


def _object_dataset(catalog: Catalog, where: str, ds: Dataset) -> Iterator[Problem]:
    """An object dataset finds its person through ``{subject}`` in the prefix, and is dated by last_modified."""
    placeholders = catalog.prefix_fields(ds.prefix)
    if placeholders - {"subject"}:
        yield Problem(
            CATALOG,
            f"{where}.prefix",
            f"unknown placeholder(s) {sorted(placeholders - {'subject'})}; only {{subject}} is allowed",
        )
    if ds.personal and "subject" not in placeholders:
        yield Problem(
            CATALOG,
            f"{where}.prefix",
            "a personal object dataset needs {subject} in its prefix, so a person's objects can be found",
        )
    if ds.subject:
        yield Problem(
            CATALOG,
            f"{where}.subject",
            "an object dataset reaches its person through {subject} in the prefix, not a subject link",
        )
    if ds.created not in (None, "last_modified"):
        yield Problem(CATALOG, f"{where}.created", f"{ds.created!r}: objects are dated by last_modified only")


def keyed_problems(catalog: Catalog, file: str, path: str, name: str) -> Iterator[Problem]:
    """A table the engine deletes from or reads in key order needs its one key column."""
    ds = catalog.datasets.get(name)
    if ds is not None and ds.is_table and not ds.primary_key:
        yield Problem(
            file,
            path,
            f"dataset {name!r} has no primary_key in catalog.yaml; the engine works in ranges "
            "of one unique column: name it as primary_key",
        )


def applies_to_problems(catalog: Catalog, file: str, path: str, applies: AppliesTo) -> Iterator[Problem]:
    for i, category in enumerate(applies.categories):
        yield from category_problems(catalog, file, f"{path}.categories[{i}]", category)
    for i, dataset in enumerate(applies.datasets):
        if dataset not in catalog.datasets:
            yield Problem(file, f"{path}.datasets[{i}]", f"unknown dataset {dataset!r}")


def anonymizable_problems(catalog: Catalog, file: str, path: str, targets: dict) -> Iterator[Problem]:
    for name, fields in targets.items():
        if not catalog.dataset(name).is_table:
            yield Problem(file, path, f"anonymize cannot apply to object dataset {name!r}; objects are deleted")
            continue
        for field in fields:
            if field.spec.anonymize is None:
                yield Problem(
                    file,
                    path,
                    f"anonymize applies to {name!r}, but its personal field {field.column!r} has no anonymize strategy in catalog.yaml",
                )
