"""The ``Consents`` ability: a person's consent periods for a purpose, and withdrawing them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from lifecycle.errors import TerminalStoreError
from lifecycle.stores.contract import ConsentPeriod, Selection
from lifecycle.stores.sql.times import read_as


class ConsentRecords:
    """``consent_periods`` and ``withdraw_consent`` of ``SqlStore``."""

    def _consent_spec(self, dataset: str, action: str):
        spec = self.catalog.dataset(dataset).consent
        if spec is None or not spec.withdrawn:
            raise TerminalStoreError(
                self.system,
                dataset,
                action,
                "the dataset has no consent: {purpose, granted, withdrawn} in catalog.yaml",
            )
        return spec

    def consent_periods(self, dataset: str, subject: str, purpose: str) -> list[ConsentPeriod]:
        """Every row of the person's consent for ``purpose``, oldest grant first (times aware UTC)."""
        spec = self._consent_spec(dataset, "read consent periods")
        granted, withdrawn = self.time_column(dataset, spec.granted), self.time_column(dataset, spec.withdrawn)
        query = (
            sa.select(self._pk(dataset), self.column(dataset, spec.granted), self.column(dataset, spec.withdrawn))
            .where(self.where(dataset, Selection(subjects=(subject,))), self.column(dataset, spec.purpose) == purpose)
            .order_by(granted.expression, self._pk(dataset))
        )
        with self._connect(dataset, "read consent periods") as conn:
            rows = conn.execute(query).all()
        return [
            ConsentPeriod(str(key), read_as(granted.kind, start), read_as(withdrawn.kind, end))
            for key, start, end in rows
            if start is not None
        ]

    def withdraw_consent(self, dataset: str, subject: str, purpose: str, at: datetime) -> int:
        """Set the withdrawn column to ``at`` on the person's rows for ``purpose`` granted by
        ``at`` and not withdrawn; the rows changed (0 on a rerun)."""
        spec = self._consent_spec(dataset, "withdraw consent")
        table = self.table(dataset)
        granted, withdrawn = self.time_column(dataset, spec.granted), self.time_column(dataset, spec.withdrawn)
        statement = (
            table.update()
            .where(
                self.where(dataset, Selection(subjects=(subject,))),
                self.column(dataset, spec.purpose) == purpose,
                granted.expression <= granted.value(at),
                self.column(dataset, spec.withdrawn).is_(None),
            )
            .values({self.column(dataset, spec.withdrawn): withdrawn.stored(at)})
        )
        with self._begin(dataset, "withdraw consent") as conn:
            return conn.execute(statement).rowcount
