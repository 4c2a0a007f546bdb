"""Instants as the lifecycle keeps them: UTC, as ISO text in records, naive in SQL.

Nothing here reads the clock: a run's time comes from the run (``runs.run_info``),
so a rerun decides the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime


def aware_utc(when: datetime) -> datetime:
    """``when`` in UTC with its zone (naive means UTC)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def naive_utc(when: datetime) -> datetime:
    """``when`` in UTC without a zone: how SQL columns without a time zone hold it."""
    return when if when.tzinfo is None else when.astimezone(UTC).replace(tzinfo=None)


def iso_utc(when: datetime) -> str:
    """An instant as ISO text in UTC, the form every record keeps (naive means UTC)."""
    return aware_utc(when).isoformat()
