"""The destructive verbs: ``delete`` and ``anonymize``, each one committed statement (or two in
one transaction), with ``before_commit`` told per subject what is about to change."""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle import anonymize as strategies
from lifecycle.batching import chunks
from lifecycle.catalog import PersonalField
from lifecycle.errors import TerminalStoreError
from lifecycle.stores.contract import BeforeCommit, Change, Selection
from lifecycle.stores.sql.values import json_key


class Writes:
    """``delete`` and ``anonymize`` of ``SqlStore``."""

    def delete(self, dataset: str, selection: Selection, *, before_commit: BeforeCommit | None = None) -> Change:
        """Delete every selected row in one committed statement.

        ``before_commit(rows_per_subject, [])`` is called inside the
        transaction, after the DELETE and before its commit, with the deleted
        rows counted per subject (text) — from ``DELETE … RETURNING`` the
        subject link where the database has it (PostgreSQL, MariaDB, SQLite
        3.35+), else from a GROUP BY first.  If it raises, nothing is deleted.
        """
        statement = self.table(dataset).delete().where(self.where(dataset, selection))
        if before_commit is not None and self._file_locking:
            with self._connect(dataset, "count rows to delete per subject") as conn:
                counts = self._selected_by_subject(conn, dataset, self.where(dataset, selection))
            before_commit(counts, [])
            before_commit = None
        with self._begin(dataset, "delete rows") as conn:
            if before_commit is None:
                return Change(rows=conn.execute(statement).rowcount)
            if conn.dialect.delete_returning:
                returned = (
                    conn.execute(statement.returning(self._link_of(dataset, self.table(dataset)))).scalars().all()
                )
                counts, rows = self._owners(conn, dataset, returned), len(returned)
            else:
                counts = self._selected_by_subject(conn, dataset, self.where(dataset, selection))
                rows = conn.execute(statement).rowcount
            before_commit(counts, [])
            return Change(rows=rows)

    def anonymize(
        self,
        dataset: str,
        selection: Selection,
        fields: list[PersonalField],
        *,
        hmac_key: bytes | None = None,
        unlink: bool = False,
        before_commit: BeforeCommit | None = None,
    ) -> Change:
        """Apply each field's strategy to the selected rows.

        Strategies SQL can express become one set-based UPDATE; the others are
        computed in Python and written with one executemany, in the same
        transaction.  ``unlink``: also set the subject-link column to NULL, so
        the row no longer leads to its person (erasure keeps it only
        anonymized).  ``before_commit(rows_per_subject, primary_keys)``: the
        selected rows, read in the same transaction before they change (one
        query), reported after the updates and before the commit; if it
        raises, nothing changes.
        """
        table = self.table(dataset)
        where = self.where(dataset, selection)
        constants, computed = self._strategies(dataset, fields, hmac_key)
        if unlink:
            hops = self.catalog.path_to_subject(dataset)
            if hops:
                constants[hops[0].column] = None
        if before_commit is not None and self._file_locking:
            with self._connect(dataset, "read the rows to anonymize") as conn:
                before_commit(*self._keys_by_subject(conn, dataset, where))
            before_commit = None
        with self._begin(dataset, "anonymize rows") as conn:
            if before_commit is not None:
                counts, keys = self._keys_by_subject(conn, dataset, where)
            touched = self._rewrite(conn, dataset, where, computed, hmac_key) if computed else 0
            if constants:
                touched = conn.execute(table.update().where(where).values(constants)).rowcount
            if before_commit is not None:
                before_commit(counts, keys)
            return Change(rows=touched)

    def _strategies(
        self, dataset: str, fields: list[PersonalField], hmac_key: bytes | None
    ) -> tuple[dict, list[PersonalField]]:
        """The fields' outputs SQL can set as constants, and the fields computed row by row."""
        constants, computed = {}, []
        for f in fields:
            spec = f.spec.anonymize
            if spec is None:
                raise TerminalStoreError(
                    self.system, dataset, "anonymize rows", f"field {f.column!r} has no anonymize strategy"
                )
            strategy = strategies.strategy(spec.strategy)
            if strategy.needs_key and not hmac_key:
                raise TerminalStoreError(
                    self.system,
                    dataset,
                    "anonymize rows",
                    f"field {f.column!r} uses {spec.strategy}, which needs the HMAC key",
                )
            if strategy.constant is not None:
                constants[f.column] = strategy.constant(spec)
            else:
                computed.append(f)
        return constants, computed

    def _rewrite(
        self, conn: sa.Connection, dataset: str, where, computed: list[PersonalField], hmac_key: bytes | None
    ) -> int:
        """Computed strategies: the selected rows read, transformed in Python, written back with one executemany."""
        pk = self._pk(dataset)
        columns = [self.column(dataset, f.column) for f in computed]
        rows = conn.execute(sa.select(pk, *columns).where(where)).all()
        if not rows:
            return 0
        transforms = [(f, strategies.strategy(f.spec.anonymize.strategy).transform) for f in computed]
        params = [
            {
                "_pk": row[0],
                **{
                    f"_{f.column}": transform(value, f.spec.anonymize, hmac_key)
                    for (f, transform), value in zip(transforms, row[1:])
                },
            }
            for row in rows
        ]
        update = (
            self.table(dataset)
            .update()
            .where(pk == sa.bindparam("_pk"))
            .values({f.column: sa.bindparam(f"_{f.column}") for f in computed})
        )
        conn.execute(update, params)
        return len(rows)

    @property
    def _file_locking(self) -> bool:
        """SQLite: a write transaction locks the whole file, and a ledger in the same file
        could not be appended inside it; there ``before_commit`` hears of the rows first
        (nothing else writes meanwhile), then they change."""
        return self.engine.dialect.name == "sqlite"

    def _keys_by_subject(self, conn: sa.Connection, dataset: str, where) -> tuple[dict[str, int], list]:
        """Rows per subject and the primary keys (JSON-safe) of the rows ``where`` selects."""
        source, subject = self.subject_source(dataset)
        pk = self._pk(dataset)
        selected = conn.execute(sa.select(pk, subject).select_from(source).where(where).order_by(pk)).all()
        counts: dict[str, int] = {}
        for _, owner in selected:
            if owner is not None:
                counts[str(owner)] = counts.get(str(owner), 0) + 1
        return counts, [json_key(key) for key, _ in selected]

    def _owners(self, conn: sa.Connection, dataset: str, links: list) -> dict[str, int]:
        """Rows per subject (text), given each row's value of the dataset's link column.

        One hop: the link is the subject key.  Deeper: the link values are
        resolved to subjects through the next dataset on the path (its rows
        still exist: children go first), by primary-key lookups.
        """
        per_link: dict = {}
        for value in links:
            if value is not None:
                per_link[value] = per_link.get(value, 0) + 1
        hops = self.catalog.path_to_subject(dataset)
        if len(hops) <= 1:
            return {str(value): n for value, n in per_link.items()}
        target = self.column(hops[0].target, hops[0].target_column)
        source, subject = self.subject_source(hops[0].target)
        counts: dict[str, int] = {}
        by_text = {str(value): n for value, n in per_link.items()}
        for part in chunks(list(per_link), 5000):
            query = sa.select(target, subject).select_from(source).where(self.one_of(target, part))
            for value, owner in conn.execute(query):
                if owner is not None:
                    counts[str(owner)] = counts.get(str(owner), 0) + by_text.get(str(value), 0)
        return counts
