"""The catalog: where personal information lives and how it reaches its person.

Built once from ``catalog.yaml``.  Answers the questions every DAG asks:
which datasets hold category X, which columns of a dataset are personal and
how to anonymize them, and how a dataset's rows reach the subject (a join
path the SQL store can follow).  catalog.yaml's shape is ``catalog.models``,
its rules (and the references other files make into it) ``catalog.checks``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cached_property

from lifecycle.catalog.models import CatalogFile, Dataset, FieldSpec, System


@dataclass(frozen=True)
class Hop:
    """One step of a subject link: ``dataset.column`` points at ``target.target_column``."""

    dataset: str
    column: str
    target: str
    target_column: str

    def __str__(self) -> str:
        return f"{self.dataset}.{self.column} -> {self.target}.{self.target_column}"


@dataclass(frozen=True)
class PersonalField:
    column: str
    category: str
    spec: FieldSpec


class LinkError(ValueError):
    """A dataset whose subject links do not reach the subject (cycle or dead end)."""


class Catalog:
    def __init__(self, model: CatalogFile):
        self.model = model
        self.systems: dict[str, System] = dict(model.systems)
        self.datasets: dict[str, Dataset] = dict(model.datasets)
        self.subject = model.subject

    # ------------------------------------------------------------ categories

    def category_lineage(self, category: str) -> list[str]:
        """The category and its ancestors, nearest first (stops at a cycle)."""
        lineage: list[str] = []
        while category and category in self.model.categories and category not in lineage:
            lineage.append(category)
            category = self.model.categories[category].parent
        return lineage

    def is_within(self, category: str, ancestor: str) -> bool:
        return ancestor in self.category_lineage(category)

    def shareable(self, category: str) -> bool:
        """False if the category or any ancestor says ``shareable: false``."""
        return all(self.model.categories[c].shareable for c in self.category_lineage(category))

    # -------------------------------------------------------------- datasets

    def dataset(self, name: str) -> Dataset:
        try:
            return self.datasets[name]
        except KeyError:
            raise KeyError(f"unknown dataset {name!r}; the catalog has {', '.join(sorted(self.datasets))}") from None

    def system_of(self, dataset: str) -> System:
        return self.systems[self.dataset(dataset).system]

    def structural_columns(self, name: str) -> set[str]:
        """Columns that locate or date a row rather than describe a person."""
        ds = self.dataset(name)
        cols = {ds.primary_key, ds.created}
        if ds.subject:
            cols.add(ds.subject.column)
        if name == self.subject.dataset:
            cols.add(self.subject.key)
        return {c for c in cols if c}

    def named_columns(self, dataset: str) -> dict[str, str]:
        """Every column the catalog names for a table dataset, with the key that names it: its
        fields, key, created, subject link, consent columns, and the subject's key and contacts."""
        ds = self.dataset(dataset)
        named = {column: f"fields.{column}" for column in ds.fields}
        for column, key in ((ds.primary_key, "primary_key"), (ds.created, "created")):
            if column:
                named[column] = key
        if ds.subject:
            named[ds.subject.column] = "subject"
        if ds.consent:
            for key in ("purpose", "granted", "withdrawn"):
                if getattr(ds.consent, key):
                    named[getattr(ds.consent, key)] = f"consent.{key}"
        for column in ds.times:
            named.setdefault(column, f"times.{column}")
        if dataset == self.subject.dataset:
            named[self.subject.key] = "subject.key"
            for key, column in self.subject.contact.model_dump().items():
                if column:
                    named.setdefault(column, f"subject.contact.{key}")
        return named

    def personal_fields(self, name: str) -> list[PersonalField]:
        """Personal columns with their effective category (own, else the dataset's)."""
        ds = self.dataset(name)
        if not ds.personal:
            return []
        return [
            PersonalField(column, spec.category or ds.category, spec)
            for column, spec in ds.fields.items()
            if spec.personal and (spec.category or ds.category)
        ]

    def categories_of(self, name: str) -> set[str]:
        ds = self.dataset(name)
        found = {f.category for f in self.personal_fields(name)}
        if ds.personal and ds.category:
            found.add(ds.category)
        return found

    def category_purposes(self, category: str) -> set[str]:
        """The purposes a category serves: its own and its ancestors'."""
        return {p for c in self.category_lineage(category) for p in self.model.categories[c].purposes}

    def purposes_of(self, name: str) -> dict[str, set[str]]:
        """A personal dataset's purposes, each with the categories of the dataset it covers: the
        dataset's own purposes cover all its categories, a category's purposes that category."""
        ds = self.dataset(name)
        if not ds.personal:
            return {}
        categories = self.categories_of(name)
        found: dict[str, set[str]] = {purpose: set(categories) for purpose in ds.purposes}
        for category in categories:
            for purpose in self.category_purposes(category):
                found.setdefault(purpose, set()).add(category)
        return found

    def datasets_in_category(self, category: str) -> list[str]:
        """Datasets holding ``category`` or any category below it."""
        return [name for name in self.datasets if any(self.is_within(c, category) for c in self.categories_of(name))]

    def resolve(self, categories: list[str], datasets: list[str]) -> list[str]:
        """The datasets an ``applies_to`` selects, in catalog order."""
        chosen = set(datasets)
        for category in categories:
            chosen.update(self.datasets_in_category(category))
        return [name for name in self.datasets if name in chosen]

    def _within_any(self, category: str | None, categories: list[str]) -> bool:
        return category is not None and any(self.is_within(category, c) for c in categories)

    def rule_targets(self, categories: list[str], datasets: list[str], action: str) -> dict[str, list[PersonalField]]:
        """What an ``applies_to`` with ``action`` touches: dataset -> fields.

        Named datasets are taken whole.  By category, ``delete`` takes only
        datasets whose rows *are* of the category (whole-row category, or
        every personal field within it): a rule on credentials must never
        delete user rows.  ``anonymize`` takes the fields within the category
        wherever they are.
        """
        targets: dict[str, list[PersonalField]] = {}
        for name in self.datasets:
            fields = self.personal_fields(name)
            if name in datasets:
                targets[name] = fields
                continue
            if not categories or not self.dataset(name).personal:
                continue
            within = [f for f in fields if self._within_any(f.category, categories)]
            if action == "delete":
                whole_row = self._within_any(self.dataset(name).category, categories)
                if whole_row or (fields and len(within) == len(fields)):
                    targets[name] = fields
            elif within or self._within_any(self.dataset(name).category, categories):
                targets[name] = within
        return targets

    # --------------------------------------------------------- subject links

    def path_to_subject(self, name: str) -> tuple[Hop, ...]:
        """The join path from a table dataset to the subject dataset.

        Empty for the subject dataset itself.  The last hop's column holds the
        subject's key, so a store can select by subject without joining the
        subject table.  Raises ``LinkError`` on a cycle or a dead end.
        """
        hops: list[Hop] = []
        seen = [name]
        current = name
        while current != self.subject.dataset:
            link = self.dataset(current).subject
            if link is None:
                via = " -> ".join(seen)
                raise LinkError(f"{via} has no subject link and is not the subject dataset {self.subject.dataset!r}")
            if link.dataset not in self.datasets:
                raise LinkError(f"{link} points at unknown dataset {link.dataset!r}")
            if link.dataset in seen:
                raise LinkError(f"subject links form a cycle: {' -> '.join(seen + [link.dataset])}")
            hops.append(Hop(current, link.column, link.dataset, link.target_column))
            seen.append(link.dataset)
            current = link.dataset
        return tuple(hops)

    def subject_column(self, name: str) -> tuple[str, str]:
        """(dataset, column) that holds the subject key for rows of ``name``."""
        hops = self.path_to_subject(name)
        if not hops:
            return name, self.subject.key
        return hops[-1].dataset, hops[-1].column

    @staticmethod
    def prefix_fields(prefix: str) -> set[str]:
        return {field for _, field, _, _ in string.Formatter().parse(prefix) if field is not None}

    def subject_prefix(self, name: str, subject_id: object) -> str:
        """The object prefix of one subject in an S3 dataset."""
        return self.dataset(name).prefix.format(subject=subject_id)

    def subject_of_key(self, name: str, key: str) -> str | None:
        """The subject id an object key belongs to, read back through the prefix template."""
        before, _, after = self.dataset(name).prefix.partition("{subject}")
        if not key.startswith(before):
            return None
        rest = key[len(before) :]
        end = rest.find(after) if after else rest.find("/")
        return rest[:end] if end > 0 else None

    def static_prefix(self, name: str) -> str:
        """The part of an S3 dataset's prefix before any placeholder (for age scans)."""
        prefix = self.dataset(name).prefix
        return prefix.split("{", 1)[0]

    @cached_property
    def table_datasets(self) -> list[str]:
        return [n for n, d in self.datasets.items() if d.is_table]

    @cached_property
    def object_datasets(self) -> list[str]:
        return [n for n, d in self.datasets.items() if not d.is_table]
