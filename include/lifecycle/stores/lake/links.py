"""How a lake table's rows reach their person: its link column holds the subject key (one
hop) or a key of another dataset, resolved through that dataset's store along the catalog's
subject path (``Rows.stream`` gives each of its rows' subject beside the linked column)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lifecycle.catalog import Catalog
from lifecycle.errors import TerminalStoreError
from lifecycle.stores.contract import Rows, Selection


class Links:
    """Link values of subjects, and subjects of link values, for the datasets of one lake system."""

    def __init__(self, catalog: Catalog, system: str, open_store: Callable[[str], object] | None = None):
        self.catalog, self.system = catalog, system
        self._open = open_store
        self._stores: dict[str, object] = {}

    def column(self, dataset: str) -> str | None:
        """The column of ``dataset`` that leads to its person (None: it reaches nobody)."""
        if dataset == self.catalog.subject.dataset:
            return self.catalog.subject.key
        link = self.catalog.dataset(dataset).subject
        return link.column if link else None

    def values(self, dataset: str, subjects: Iterable[str]) -> dict[str, str]:
        """{link value as text: subject} for the given subjects (text)."""
        hops = self.catalog.path_to_subject(dataset)
        if len(hops) <= 1:
            return {str(s): str(s) for s in subjects}
        return self._through(dataset, hops[0].target, hops[0].target_column, Selection(subjects=tuple(subjects)))

    def owners(self, dataset: str, links: Iterable) -> dict[str, str]:
        """{link value as text: subject} for link values found in ``dataset``'s rows."""
        texts = {str(v) for v in links if v is not None}
        hops = self.catalog.path_to_subject(dataset)
        if len(hops) <= 1:
            return {v: v for v in texts}
        found = self._through(dataset, hops[0].target, hops[0].target_column, None)
        return {v: found[v] for v in texts if v in found}

    def _through(self, dataset: str, target: str, column: str, selection: Selection | None) -> dict[str, str]:
        store = self.rows_of(dataset, target)
        found: dict[str, str] = {}
        for chunk in store.stream(target, [column], selection=selection):
            for subject, value in chunk:
                if value is not None and subject is not None:
                    found[str(value)] = str(subject)
        return found

    def rows_of(self, dataset: str, target: str):
        """The store of ``target`` (another dataset ``dataset`` depends on), as a ``Rows`` reader."""
        system = self.catalog.dataset(target).system
        if system not in self._stores:
            if self._open is None:
                raise TerminalStoreError(
                    self.system, dataset, "resolve subjects", f"opened without a way to reach system {system!r}"
                )
            self._stores[system] = self._open(system)
        store = self._stores[system]
        if not isinstance(store, Rows):
            raise TerminalStoreError(
                self.system, dataset, "resolve subjects", f"dataset {target!r} it links to cannot be read row by row"
            )
        return store
