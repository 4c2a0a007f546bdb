"""The sharing gate: may this recipient receive these fields on this date?

The static rules (``config.recipients``: role and legal basis, fields and
their categories, consent configuration) depend only on the configuration and
are applied at load time too; the dated rules here (the agreement is signed
and not expired) need the run's date.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from lifecycle.config.recipients import SUBJECT_FIELD, Refusal, static_refusals
from lifecycle.errors import LifecycleError

if TYPE_CHECKING:
    from lifecycle.catalog import Catalog
    from lifecycle.config.recipients import Recipient

__all__ = ["SUBJECT_FIELD", "Refusal", "SharingRefused", "dated_refusals", "gate", "shared_categories"]


class SharingRefused(LifecycleError):
    """The gate refused the delivery (terminal): nothing was read or delivered."""

    def __init__(self, recipient: str, refusals: list[Refusal]):
        self.recipient, self.refusals = recipient, refusals
        super().__init__("sharing refused, nothing delivered: " + "; ".join(r.message(recipient) for r in refusals))


def dated_refusals(recipient: Recipient, on: date) -> list[Refusal]:
    """The agreement must be in force on the run's date: signed <= date <= expires."""
    agreement = recipient.agreement
    if agreement is None:
        return []
    out = []
    if on < agreement.signed:
        out.append(
            Refusal(
                "agreement_signed",
                "agreement.signed",
                None,
                f"agreement {agreement.id} is signed on {agreement.signed}, after the run's date {on}",
            )
        )
    if agreement.expires is not None and on > agreement.expires:
        out.append(
            Refusal(
                "agreement_in_force",
                "agreement.expires",
                None,
                f"agreement {agreement.id} expired on {agreement.expires}, before the run's date {on}",
            )
        )
    return out


def gate(recipient: Recipient, catalog: Catalog, on: date) -> list[Refusal]:
    """Every reason this recipient may not receive its share on ``on`` (empty: it may)."""
    return static_refusals(recipient, catalog) + dated_refusals(recipient, on)


def shared_categories(catalog: Catalog, dataset: str, columns: list[str]) -> list[str]:
    """The categories a delivery of ``columns`` of ``dataset`` discloses: the shared personal
    fields' categories and the dataset's whole-row category (each record names its subject)."""
    ds = catalog.dataset(dataset)
    found = {f.category for f in catalog.personal_fields(dataset) if f.column in columns}
    if ds.personal and ds.category:
        found.add(ds.category)
    return sorted(found)
