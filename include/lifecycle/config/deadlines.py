"""deadlines.yaml: what ``lifecycle_deadlines`` watches for, and how far ahead (SPEC §3)."""

from __future__ import annotations

from collections.abc import Iterator

from lifecycle.config.notifications import NOTIFICATIONS
from lifecycle.durations import Duration
from lifecycle.errors import Problem
from lifecycle.shapes import DurationField, Model

DEADLINES = "deadlines.yaml"


class NearWindows(Model):
    """How long before its deadline a check reports a finding as *near* (0s: only past ones)."""

    erasure_requests: DurationField = Duration.parse("24h")  # cancellation.yaml complete_within
    subject_requests: DurationField = Duration.parse("24h")  # requests.yaml respond_within
    regulator_reports: DurationField = Duration.parse("6h")  # incidents.yaml regulators[].deadline
    agreements: DurationField = Duration.parse("30d")  # recipients.yaml recipients[].agreement.expires


class DeadlinesFile(Model):
    """The ``lifecycle_deadlines`` DAG: when it looks, how far ahead, whether it mails the contact."""

    schedule: str | None = "@hourly"
    near: NearWindows = NearWindows()
    notify: bool = True  # mail notifications.yaml: contact a summary (counts and ids) when anything is near or past


def check_deadlines(models: dict, notifications) -> Iterator[Problem]:
    """A deadlines.yaml that asks for the summary mail needs the mail settings."""
    deadlines = models.get(DEADLINES)
    if deadlines is not None and deadlines.notify and notifications is None:
        yield Problem(
            DEADLINES,
            "notify",
            f"the summary to the privacy contact needs mail settings: add {NOTIFICATIONS} "
            "(email: conn_id, from; contact), or write notify: false",
        )
