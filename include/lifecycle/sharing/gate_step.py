"""The ``gate`` task: refuse before anything is read, and enter a refusal in the register."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lifecycle.sharing.gate import SharingRefused, gate
from lifecycle.sharing.register import SharingRegister, disclosure

if TYPE_CHECKING:
    from lifecycle.catalog import Catalog
    from lifecycle.config.recipients import Recipient
    from lifecycle.sharing.interval import Interval

log = logging.getLogger(__name__)


def admit(
    recipient: Recipient,
    catalog: Catalog,
    register: SharingRegister,
    interval: Interval,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> dict:
    """What the delivery may go ahead under (agreement, date, datasets); a refusal is
    recorded in the register, then raised, so the run fails with nothing read."""
    refusals = gate(recipient, catalog, interval.end.date())
    if refusals:
        error = SharingRefused(recipient.id, refusals)
        register.record(
            {
                **disclosure(recipient, catalog, interval),
                "outcome": "refused",
                "rule": refusals[0].rule,
                "reason": str(error),
                "records": 0,
            },
            dag_id=dag_id,
            run_id=run_id,
        )
        log.error("%s", error)
        raise error
    return {
        "recipient": recipient.id,
        "agreement": recipient.agreement.id,
        "on": interval.end.date().isoformat(),
        "datasets": sorted(recipient.share),
    }
