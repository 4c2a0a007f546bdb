"""The ``Rows`` ability: reading columns of the selected rows, and streaming them (sharing,
a person's access package)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa

from lifecycle.errors import TerminalStoreError
from lifecycle.stores.contract import ALL, Selection
from lifecycle.stores.sql.times import read_as
from lifecycle.stores.sql.values import to_text


class RowReading:
    """``read`` and ``stream`` of ``SqlStore``."""

    def read(
        self, dataset: str, columns: list[str], selection: Selection = ALL, *, instants: tuple[str, ...] = ()
    ) -> list[tuple]:
        """The columns of the selected rows as Python values, in key order; the time columns
        named in ``instants`` as aware UTC datetimes, whatever their kind."""
        table = self.table(dataset)
        kinds = {i: self.time_column(dataset, c).kind for i, c in enumerate(columns) if c in instants}
        query = (
            sa.select(*(self.column(dataset, c) for c in columns))
            .where(self.where(dataset, selection))
            .order_by(self._pk(dataset))
        )
        with self._connect(dataset, f"read {', '.join(columns)}") as conn:
            rows = conn.execute(query.select_from(table)).all()
        return [tuple(read_as(kinds[i], v) if i in kinds else v for i, v in enumerate(row)) for row in rows]

    def stream(
        self,
        dataset: str,
        columns: list[str],
        *,
        consent: tuple[str, str, datetime] | None = None,
        selection: Selection | None = None,
        fetch_rows: int = 5000,
    ) -> Iterator[list[tuple]]:
        """Rows of ``(subject, *columns)`` in key order, in lists of ``fetch_rows`` from a
        server-side cursor (memory does not grow with the result); values JSON-ready
        (dates in ISO form, decimals and uuids as text, bytes as hex), the subject as text.
        ``consent=(consent dataset, purpose, as_of)``: only subjects whose consent is in force;
        ``selection``: only the rows it selects (``subjects`` follows every hop of the
        subject path, as ``count`` does)."""
        source, subject = self.subject_source(dataset)
        selected = [self.column(dataset, c) for c in columns]
        query = sa.select(subject, *selected).select_from(source)
        if selection is not None:
            query = query.where(self.where(dataset, selection))
        if consent is not None:
            query = query.where(subject.in_(self._consenting(*consent)))
        query = query.order_by(self._pk(dataset))
        convert = [str] + [to_text(c.type) for c in selected]
        converted = [(i, f) for i, f in enumerate(convert) if f is not None]
        with self._connect(dataset, f"read {', '.join(columns)}") as conn:
            result = conn.execution_options(stream_results=True, yield_per=fetch_rows).execute(query)
            for chunk in result.partitions(fetch_rows):
                rows = []
                for row in chunk:
                    values = list(row)
                    for i, f in converted:
                        if values[i] is not None:
                            values[i] = f(values[i])
                    rows.append(values)
                yield rows

    def _consenting(self, dataset: str, purpose: str, as_of: datetime) -> sa.Select:
        """Subject keys whose consent for ``purpose`` is in force at ``as_of``.

        ``dataset`` records consent (``consent: {purpose, granted, withdrawn}``);
        a re-grant is a new row, so the row in force is the latest one granted
        by ``as_of``, and it counts unless withdrawn by then.
        """
        spec = self.catalog.dataset(dataset).consent
        if spec is None:
            raise TerminalStoreError(
                self.system,
                dataset,
                "select consenting subjects",
                "the dataset has no consent: {purpose, granted, withdrawn} in catalog.yaml",
            )
        source, subject = self.subject_source(dataset)
        time = self.time_column(dataset, spec.granted)
        about, granted, when = self.column(dataset, spec.purpose) == purpose, time.expression, time.value(as_of)
        latest = (
            sa.select(subject.label("subject"), sa.func.max(granted).label("granted"))
            .select_from(source)
            .where(about, granted <= when)
            .group_by(subject)
            .subquery()
        )
        in_force = sa.true()
        if spec.withdrawn:
            withdrawn = self.time_column(dataset, spec.withdrawn)
            in_force = sa.or_(withdrawn.expression.is_(None), withdrawn.expression > withdrawn.value(as_of))
        joined = source.join(latest, sa.and_(subject == latest.c.subject, granted == latest.c.granted))
        return sa.select(subject).select_from(joined).where(about, in_force)
