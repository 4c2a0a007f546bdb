"""The store contract's verbs for lake tables, once for Iceberg and Delta.

A verb reads the columns it needs (key, subject link, ``created``), selects rows with an
Arrow mask (``arrow.mask``), and, for a change, commits once by primary key: the keys
selected are the rows changed, so a row another writer appends meanwhile is never touched.
When another writer commits first, the same keys are applied again on the new snapshot
(``commit_attempts`` times, then a ``TransientStoreError``: the task retries later).
The engines (``iceberg``, ``delta``) supply reading, the two commits, the schema and the
purge; everything else is here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc

from lifecycle.catalog import Catalog
from lifecycle.errors import TerminalStoreError, TransientStoreError, store_failures
from lifecycle.stores.contract import ALL, BeforeCommit, Change, KeyRange, Remaining, Selection
from lifecycle.stores.lake import arrow
from lifecycle.stores.lake.files import Storage
from lifecycle.stores.lake.links import Links
from lifecycle.stores.lake.rows import LakeRows
from lifecycle.stores.lake.verify import LakeVerification
from lifecycle.stores.sql.values import json_key

# how pyarrow's S3 client (Iceberg) and delta-rs's object store name failures a retry may get past
TRANSIENT_SIGNS = (
    "NETWORK_CONNECTION",
    "SlowDown",
    "Throttl",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "timed out",
    "error sending request",
    "Connection refused",
)


@dataclass(frozen=True)
class Chosen:
    """The rows a change takes: its selection, the link values of its people, and the keys
    (and key, link and created columns) of the rows selected when it read them.  An engine
    commits by the selection (``expressible``; on a retry bounded by the keys' range), else by
    the keys.  The first commit is checked against the snapshot the read saw, so the
    selection alone takes exactly those rows."""

    selection: Selection
    values: dict
    keys: pa.Array | None
    rows: pa.Table
    bounded: bool = False  # a retry: the rows another writer added since the read have keys past the range

    @property
    def expressible(self) -> bool:
        """Whether the selection is a predicate the engine can evaluate (a pending anonymization
        is decided per value: only the keys say which rows)."""
        return not self.selection.pending_anonymization

    @property
    def key_range(self) -> tuple:
        return pc.min(self.keys).as_py(), pc.max(self.keys).as_py()


class LakeStore(LakeRows, LakeVerification):
    """Datasets of one lake system: the contract, ``Rows``, ``StorageVerification``, ``Describing``."""

    commit_attempts = 5
    replace_by_keys = False  # a rewrite's commit names the keys (its new rows must match its predicate)
    conflicts: tuple[type[BaseException], ...] = ()
    data_suffix = ".parquet"

    def __init__(self, catalog: Catalog, system: str, storage: Storage, open_store: Callable | None = None):
        self.catalog, self.system, self.storage = catalog, system, storage
        self.spec = catalog.systems[system]
        self.links = Links(catalog, system, open_store)

    # engines: _read, _delete_rows, _replace_rows, _refresh, _schema, location, purge

    @contextlib.contextmanager
    def snapshot(self):
        yield

    @contextlib.contextmanager
    def _failures(self, dataset: str | None, purpose: str):
        with store_failures(
            self.system, dataset, purpose, catching=(Exception,), transient=self._transient, describe=_describe
        ):
            yield

    def _transient(self, exc: BaseException) -> bool:
        """Another writer first, a lost connection, throttling or a 5xx: a retry may pass."""
        if isinstance(exc, (*self.conflicts, ConnectionError, TimeoutError)):
            return True
        return isinstance(exc, OSError | RuntimeError) and any(sign in str(exc) for sign in TRANSIENT_SIGNS)

    # --------------------------------------------------------------- reading

    def _columns(self, dataset: str) -> tuple[str, str | None, str | None]:
        ds = self.catalog.dataset(dataset)
        if not ds.primary_key:
            raise TerminalStoreError(self.system, dataset, "select rows", "the dataset has no primary_key")
        return ds.primary_key, self.links.column(dataset), ds.created

    def _link_values(self, dataset: str, selection: Selection) -> dict[str, list[str]]:
        """The link column's values of ``subjects`` and of ``exclude_subjects`` (as text)."""
        link, values = self.links.column(dataset), {}
        if selection.subjects is not None and link:
            values["subjects"] = list(self.links.values(dataset, selection.subjects))
        if selection.exclude_subjects and link:
            values["excluded"] = list(self.links.values(dataset, selection.exclude_subjects))
        return values

    def _selected(
        self, dataset: str, selection: Selection, extra: tuple[str, ...] = (), values: dict | None = None
    ) -> pa.Table:
        """The selected rows' key, link, created and ``extra`` columns, in key order."""
        pk, link, created = self._columns(dataset)
        names = list(dict.fromkeys(c for c in (pk, link, created, *extra, *selection.pending_anonymization) if c))
        if selection.subjects is not None and link is None:
            return pa.table({c: [] for c in names})
        values = self._link_values(dataset, selection) if values is None else values
        table = self._read(dataset, names, link_values=values.get("subjects"), keys=selection.keys)
        keep = arrow.mask(table, selection, pk=pk, created=created, link=link, values=values)
        if selection.pending_anonymization:
            specs = {f: self.catalog.dataset(dataset).fields[f].anonymize for f in selection.pending_anonymization}
            keep = pc.and_kleene(keep, arrow.pending(table, selection.pending_anonymization, specs))
        table = table.filter(keep)
        return table.sort_by(pk) if table.num_rows else table

    def _per_subject(self, dataset: str, table: pa.Table) -> dict[str, int]:
        link = self.links.column(dataset)
        if link is None or table.num_rows == 0:
            return {}
        counts = pc.value_counts(arrow.plain(table[link]).combine_chunks())
        owners = self.links.owners(dataset, counts.field("values").to_pylist())
        out: dict[str, int] = {}
        for value, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
            subject = owners.get(str(value)) if value is not None else None
            if subject is not None:
                out[subject] = out.get(subject, 0) + n
        return out

    def count(self, dataset: str, selection: Selection = ALL) -> int:
        with self._failures(dataset, "count rows"):
            return self._selected(dataset, selection).num_rows

    def count_by_subject(self, dataset: str, selection: Selection = ALL) -> dict[str, int]:
        with self._failures(dataset, "count rows per subject"):
            return self._per_subject(dataset, self._selected(dataset, selection))

    def tally(self, dataset: str, selection: Selection, within: Selection = ALL) -> tuple[int, int]:
        """(rows of ``within``, of those the rows ``selection`` takes)."""
        with self._failures(dataset, "count rows"):
            pk = self._columns(dataset)[0]
            rows = arrow.plain(self._selected(dataset, within)[pk]).combine_chunks()
            taken = arrow.plain(self._selected(dataset, selection)[pk]).combine_chunks()
            if not len(rows) or not len(taken):
                return len(rows), 0
            return len(rows), int(pc.sum(pc.is_in(taken, value_set=rows).cast(pa.int64())).as_py() or 0)

    def references(self, dataset: str) -> list:
        """A lake table declares no foreign keys: no other table's rows keep its rows."""
        return []

    def kept_by_references(self, dataset: str, selection: Selection) -> int:
        return 0

    def units(self, dataset: str, selection: Selection, size: int, *, expected: int | None = None) -> list[KeyRange]:
        """Key ranges of ``size`` rows over the selected keys (read whole: ``expected`` changes nothing)."""
        with self._failures(dataset, "plan key ranges"):
            keys = self._selected(dataset, selection)[self._columns(dataset)[0]].to_pylist()
        return [
            KeyRange(json_key(part[0]), json_key(part[-1]), len(part))
            for part in (keys[i : i + size] for i in range(0, len(keys), size))
        ]

    def remaining(self, dataset: str, selection: Selection) -> Remaining:
        with self._failures(dataset, "verify"):
            table = self._selected(dataset, selection)
            left = Remaining(table.num_rows)
            if selection.subjects is not None:
                left.by_subject = self._per_subject(dataset, table)
        return left

    # --------------------------------------------------------------- changes

    def delete(self, dataset: str, selection: Selection, *, before_commit: BeforeCommit | None = None) -> Change:
        """Delete the selected rows in one commit; ``before_commit(rows per subject, [])`` first."""
        with self._failures(dataset, "delete rows"):
            chosen = self._chosen(dataset, selection)
            if chosen.keys is None:
                return Change()
            if before_commit is not None:
                before_commit(self._per_subject(dataset, chosen.rows), [])
            return Change(
                rows=self._committing(dataset, "delete rows", chosen, lambda c: self._delete_rows(dataset, c))
            )

    def _chosen(self, dataset: str, selection: Selection) -> Chosen:
        values = self._link_values(dataset, selection)
        rows = self._selected(dataset, selection, values=values)
        keys = rows[self._columns(dataset)[0]].combine_chunks() if rows.num_rows else None
        return Chosen(selection, values, keys, rows)

    def anonymize(
        self,
        dataset: str,
        selection: Selection,
        fields: list,
        *,
        hmac_key: bytes | None = None,
        unlink: bool = False,
        before_commit: BeforeCommit | None = None,
    ) -> Change:
        """Rewrite the selected rows with each field's strategy in one commit (only the files
        holding them are rewritten); ``unlink`` also clears the subject link."""
        for f in fields:
            self._check_strategy(dataset, f, hmac_key)
        with self._failures(dataset, "anonymize rows"):
            chosen = self._chosen(dataset, selection)
            if chosen.keys is None:
                return Change()
            if before_commit is not None:
                keys = [json_key(k) for k in chosen.keys.to_pylist()]
                before_commit(self._per_subject(dataset, chosen.rows), keys)
            hops = self.catalog.path_to_subject(dataset)
            cleared = (hops[0].column,) if unlink and hops else ()

            def rewrite(chosen: Chosen) -> int:
                rows = self._read(dataset, None, link_values=chosen.values.get("subjects"), keys=selection.keys)
                rows = rows.filter(self._taken(dataset, chosen, rows))
                return self._replace_rows(dataset, chosen, arrow.anonymized(rows, fields, hmac_key, cleared))

            return Change(rows=self._committing(dataset, "anonymize rows", chosen, rewrite))

    def _taken(self, dataset: str, chosen: Chosen, rows: pa.Table):
        """Which of ``rows`` the engine's commit takes: the selection within the keys' range
        (``Chosen.expressible``), else the keys: a rewrite puts back every row its predicate removes."""
        pk, link, created = self._columns(dataset)
        if not chosen.expressible or self.replace_by_keys:
            return pc.is_in(arrow.plain(rows[pk]), value_set=arrow.plain(chosen.keys))
        selection = chosen.selection
        if chosen.bounded:
            selection = replace(selection, within=KeyRange(*chosen.key_range, 0))
        return arrow.mask(rows, selection, pk=pk, created=created, link=link, values=chosen.values)

    def _check_strategy(self, dataset: str, field, hmac_key: bytes | None) -> None:
        from lifecycle import anonymize as strategies

        spec = field.spec.anonymize
        if spec is None:
            raise TerminalStoreError(
                self.system, dataset, "anonymize rows", f"field {field.column!r} has no anonymize strategy"
            )
        if strategies.strategy(spec.strategy).needs_key and not hmac_key:
            raise TerminalStoreError(
                self.system,
                dataset,
                "anonymize rows",
                f"field {field.column!r} uses {spec.strategy}, which needs the HMAC key",
            )

    def _committing(self, dataset: str, purpose: str, chosen: Chosen | None, attempt: Callable[[Chosen], int]) -> int:
        """One commit against the snapshot the selection read; when another writer committed
        first, again on the new snapshot, bounded by the selected keys' range from then on."""
        last: BaseException | None = None
        for n in range(self.commit_attempts):
            try:
                return attempt(replace(chosen, bounded=True) if n and chosen is not None else chosen)
            except self.conflicts as exc:
                last = exc
                self._refresh(dataset)
        raise TransientStoreError(
            self.system,
            dataset,
            purpose,
            f"another writer committed first {self.commit_attempts} times ({type(last).__name__}); retry later",
        )


def _describe(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:500]
