"""The cancellation run's deadline rule: a request not done within ``complete_within`` of its
request (legal holds suspend the clock) fails the run's ``check_deadlines`` task."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lifecycle.errors import LifecycleError

if TYPE_CHECKING:
    from lifecycle.erasure import Erasure


def check_overdue(erasure: Erasure, as_of: datetime) -> dict:
    """``{"overdue": 0}``, or a ``LifecycleError`` counting the late requests (no one named:
    the run's report lists them by keyed hash)."""
    late = erasure.overdue(as_of)
    if late:
        raise LifecycleError(
            f"{len(late)} cancellation request(s) are past complete_within "
            f"({erasure.config.cancellation.complete_within}); see the run's report"
        )
    return {"overdue": 0}
