"""What every DAG file shares: default arguments, run time, terminal errors, the task's heap.

Time inside a run comes from the run itself (data interval end, else logical
date, else the time the run was queued for), never from ``now()``, so a rerun
of the same run decides the same way.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from lifecycle.errors import LifecycleError, TransientError

START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
DEFAULT_ARGS = {"owner": "privacy", "retries": 2, "retry_delay": timedelta(minutes=1)}
TAGS = ["privacy-lifecycle"]


def dag_settings(dag_id: str, *, schedule, tags: list[str], doc_md: str, **overrides) -> dict:
    """The ``@dag`` arguments every lifecycle DAG shares: one run at a time, no
    catch-up, the house tags and retries."""
    return {
        "dag_id": dag_id,
        "schedule": schedule,
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": DEFAULT_ARGS,
        "tags": TAGS + tags,
        "doc_md": doc_md,
        **overrides,
    }


def iso_utc(when: datetime) -> str:
    """An instant as ISO text in UTC, the form every record keeps (naive means UTC)."""
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


@dataclass(frozen=True)
class RunInfo:
    dag_id: str
    run_id: str
    as_of: datetime          # the instant the run decides by
    interval_start: datetime | None


def run_info(context) -> RunInfo:
    run = context["dag_run"]
    as_of = context.get("data_interval_end") or context.get("logical_date") or run.run_after
    return RunInfo(run.dag_id, run.run_id, as_of, context.get("data_interval_start"))


def terminal_errors(fn):
    """A ``LifecycleError`` fails the task at once (no retry); transient errors retry."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TransientError:
            raise
        except LifecycleError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc

    return wrapper


@contextlib.contextmanager
def loaded_objects_frozen():
    """Keep what the task process loaded before the work (Airflow, SQLAlchemy,
    boto3, the config: some 270,000 objects) out of the collector's full passes
    while a batch runs.  A batch's own objects start full passes; each pass
    over the loaded ones would cost 0.1-0.3 s of a worker's time and free
    nothing (``gc.freeze``).  Objects an outer caller froze stay frozen."""
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()
