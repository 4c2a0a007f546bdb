"""The ``Rows`` ability of lake stores: the selected rows' columns, read or streamed with
each row's subject (sharing extracts, access packages), consent filters included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from lifecycle.clock import aware_utc
from lifecycle.errors import TerminalStoreError
from lifecycle.stores.contract import ALL, Selection
from lifecycle.stores.lake import arrow


class LakeRows:
    """``read`` and ``stream`` of ``LakeStore``."""

    def read(self, dataset: str, columns: list[str], selection: Selection = ALL) -> list[tuple]:
        with self._failures(dataset, f"read {', '.join(columns)}"):
            table = self._selected(dataset, selection, tuple(columns))
            return list(zip(*(table[c].to_pylist() for c in columns))) if table.num_rows else []

    def stream(
        self,
        dataset: str,
        columns: list[str],
        *,
        consent: tuple[str, str, datetime] | None = None,
        selection: Selection | None = None,
        fetch_rows: int = 5000,
    ) -> Iterator[list[tuple]]:
        """Rows of ``(subject, *columns)`` in key order, JSON-ready, in lists of ``fetch_rows``."""
        with self._failures(dataset, f"read {', '.join(columns)}"):
            table = self._selected(dataset, selection or ALL, tuple(columns))
            link = self.links.column(dataset)
            links = table[link].to_pylist() if link and table.num_rows else [None] * table.num_rows
            owners = self.links.owners(dataset, links)
            allowed = self._consenting(dataset, *consent) if consent is not None else None
        rows = []
        for n, values in enumerate(zip(*(table[c].to_pylist() for c in columns))):
            subject = owners.get(str(links[n])) if links[n] is not None else None
            if allowed is not None and subject not in allowed:
                continue
            rows.append([subject, *(arrow.json_ready(v) for v in values)])
            if len(rows) == fetch_rows:
                yield rows
                rows = []
        if rows:
            yield rows

    def _consenting(self, dataset: str, consents: str, purpose: str, as_of: datetime) -> set[str]:
        """Subjects whose latest consent for ``purpose`` granted by ``as_of`` is not withdrawn by then."""
        spec = self.catalog.dataset(consents).consent
        if spec is None:
            raise TerminalStoreError(self.system, dataset, "select consenting subjects", f"{consents!r} has no consent")
        when, latest = aware_utc(as_of), {}
        columns = [spec.purpose, spec.granted] + ([spec.withdrawn] if spec.withdrawn else [])
        for chunk in self.links.rows_of(dataset, consents).stream(consents, columns):
            for subject, about, granted, *withdrawn in chunk:
                granted = aware_utc(datetime.fromisoformat(granted)) if granted else None
                newer = subject not in latest or (granted is not None and granted > latest[subject][0])
                if about == purpose and granted is not None and granted <= when and newer:
                    latest[subject] = (granted, withdrawn[0] if withdrawn else None)
        return {s for s, (_, gone) in latest.items() if gone is None or aware_utc(datetime.fromisoformat(gone)) > when}
