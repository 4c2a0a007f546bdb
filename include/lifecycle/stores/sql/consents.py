"""The ``Consents`` ability: a person's consent periods for a purpose, and withdrawing them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from lifecycle.clock import aware_utc, naive_utc
from lifecycle.errors import TerminalStoreError
from lifecycle.stores.contract import ConsentPeriod, Selection


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
        granted, withdrawn = self.column(dataset, spec.granted), self.column(dataset, spec.withdrawn)
        query = (
            sa.select(self._pk(dataset), granted, withdrawn)
            .where(self.where(dataset, Selection(subjects=(subject,))), self.column(dataset, spec.purpose) == purpose)
            .order_by(granted, self._pk(dataset))
        )
        with self._connect(dataset, "read consent periods") as conn:
            rows = conn.execute(query).all()
        return [
            ConsentPeriod(str(key), aware_utc(start), aware_utc(end) if end is not None else None)
            for key, start, end in rows
            if start is not None
        ]

    def withdraw_consent(self, dataset: str, subject: str, purpose: str, at: datetime) -> int:
        """Set the withdrawn column to ``at`` on the person's rows for ``purpose`` granted by
        ``at`` and not withdrawn; the rows changed (0 on a rerun)."""
        spec = self._consent_spec(dataset, "withdraw consent")
        table, when = self.table(dataset), naive_utc(at)
        granted, withdrawn = self.column(dataset, spec.granted), self.column(dataset, spec.withdrawn)
        statement = (
            table.update()
            .where(
                self.where(dataset, Selection(subjects=(subject,))),
                self.column(dataset, spec.purpose) == purpose,
                granted <= when,
                withdrawn.is_(None),
            )
            .values({withdrawn: when})
        )
        with self._begin(dataset, "withdraw consent") as conn:
            return conn.execute(statement).rowcount
