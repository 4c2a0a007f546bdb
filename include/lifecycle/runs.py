"""What every DAG file shares: default arguments, run time, terminal errors, the run's
last task.  Only DAG files import this module: its tasks and decorators use Airflow.

Time inside a run comes from the run itself (data interval end, else logical
date, else the time the run was queued for), never from ``now()``, so a rerun
of the same run decides the same way.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from lifecycle.config import load_config
from lifecycle.failures import describe, retryable
from lifecycle.runtime import Run, RunContext

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
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


def run_info(context) -> Run:
    """The run of a task's Airflow context, and the instant it decides by."""
    run = context["dag_run"]
    as_of = context.get("data_interval_end") or context.get("logical_date") or run.run_after
    return Run(run.dag_id, run.run_id, as_of, context.get("data_interval_start"))


def task_context() -> RunContext:
    """The running task's ``RunContext``: the configuration loaded now, this run, and the
    state store and stores opened on first use."""
    from airflow.sdk import get_current_context

    return RunContext(load_config(), run_info(get_current_context()))


def terminal_errors(fn=None, *, record=None):
    """Errors are classified once, here: a transient failure (a store unreachable, a
    timeout, a deadlock, throttling: ``errors.Transient``, or a driver's error the
    stores classify as such) is raised for Airflow to retry; anything else —
    configuration, a SQL error, a missing table, a bug — fails the task at once
    (``AirflowFailException``, no retry) with a message naming what failed.

    ``@terminal_errors(record=f)``: ``f(message)`` is called with that message before
    the task fails (the retention run's report keeps its failed steps); a failure
    while recording is classified the same way."""
    if fn is None:
        return lambda f: terminal_errors(f, record=record)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if type(exc).__module__.startswith("airflow") or retryable(exc):
                raise  # Airflow's own flow (skip, defer, fail), or worth a retry
            failure = exc
        message = describe(failure)
        if record is not None:
            terminal_errors(record)(message)
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(message) from failure

    return wrapper


def checkpoint(ctx: RunContext) -> str | None:
    """The run's end: a signed ledger checkpoint (its time the run's), where the ledger grew."""
    from lifecycle import checkpoints
    from lifecycle.clock import iso_utc

    run = ctx.run
    return checkpoints.publish(
        ctx.config.catalog, ctx.state.ledger, time=iso_utc(run.as_of), dag_id=run.dag_id, run_id=run.run_id
    )


def run_complete(*steps, task_id: str = "run_complete"):
    """The run's last task, directly downstream of ``steps``: every task that
    checks, changes or delivers something, and the reports on ``all_done``.

    Its trigger rule is ``none_failed``: it runs when each step succeeded or was
    skipped (nothing to do: no batches, a dry run, a rejected approval) and is
    *upstream_failed* when any step failed or was upstream_failed, so the run
    ends failed, never green, while the reports on ``all_done`` still ran.
    Never put it directly below a short-circuit or approval task: those skip
    their direct downstream tasks, so a dry run or a rejection would skip it.
    """
    from airflow.sdk import task

    @task(task_id=task_id, trigger_rule="none_failed", retries=0)
    @terminal_errors
    def complete() -> None:
        """Every step of this run succeeded or had nothing to do (skipped). When a step
        failed, this task is upstream_failed and the run failed: the red task upstream is the step.
        When the ledger grew since the last checkpoint, a signed checkpoint of it is published."""
        checkpoint(task_context())

    done = complete()
    for step in steps:
        for one in step if isinstance(step, (list, tuple)) else [step]:
            one >> done
    return done
