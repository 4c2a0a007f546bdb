"""What every DAG file shares (``lifecycle.runs``): the ``@dag`` settings, the run's time and
context, terminal errors, the run's last task."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.sdk.execution_time.context import set_current_context

from lifecycle import runs
from lifecycle.errors import TransientError
from lifecycle.runs import terminal_errors
from tests.config import sample

INTERVAL_START = datetime(2026, 5, 31, tzinfo=UTC)
INTERVAL_END = datetime(2026, 6, 1, tzinfo=UTC)
LOGICAL_DATE = datetime(2026, 5, 30, 12, tzinfo=UTC)
RUN_AFTER = datetime(2026, 6, 1, 0, 5, tzinfo=UTC)


class _DagRun:
    """The ``dag_run`` of a task's context: what ``run_info`` reads of it."""

    dag_id, run_id, run_after = "retention_expiry", "scheduled__2026-06-01T00:00:00+00:00", RUN_AFTER


def _context(**values) -> dict:
    return {"dag_run": _DagRun(), **values}


def test_every_dag_runs_one_at_a_time_without_catch_up_with_the_house_tags_and_retries():
    settings = runs.dag_settings("retention_expiry", schedule="@daily", tags=["retention"], doc_md="Expiry.")
    assert settings == {
        "dag_id": "retention_expiry",
        "schedule": "@daily",
        "start_date": runs.START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": runs.DEFAULT_ARGS,
        "tags": ["privacy-lifecycle", "retention"],
        "doc_md": "Expiry.",
    }
    assert runs.DEFAULT_ARGS["retries"] > 0, "a transient failure is retried"
    assert runs.dag_settings("d", schedule=None, tags=[], doc_md="", max_active_runs=3)["max_active_runs"] == 3


@pytest.mark.parametrize(
    "context, as_of",
    [
        (_context(data_interval_end=INTERVAL_END, logical_date=LOGICAL_DATE), INTERVAL_END),
        (_context(data_interval_end=None, logical_date=LOGICAL_DATE), LOGICAL_DATE),
        (_context(data_interval_end=None, logical_date=None), RUN_AFTER),
    ],
    ids=["data interval end", "logical date", "queued for"],
)
def test_a_run_decides_by_its_data_interval_end_else_its_logical_date_else_when_it_was_queued_for(context, as_of):
    run = runs.run_info(context | {"data_interval_start": INTERVAL_START})
    assert (run.dag_id, run.run_id) == ("retention_expiry", "scheduled__2026-06-01T00:00:00+00:00")
    assert run.as_of == as_of
    assert run.interval_start == INTERVAL_START


def test_the_task_context_is_the_configuration_loaded_now_and_the_running_tasks_run(tmp_path, monkeypatch):
    folder = sample.write(tmp_path / "config")
    monkeypatch.setenv("LIFECYCLE_CONFIG_DIR", str(folder))
    with set_current_context(_context(data_interval_end=INTERVAL_END, data_interval_start=INTERVAL_START)):
        ctx = runs.task_context()
    assert ctx.config.directory == folder
    assert list(ctx.config.catalog.model.datasets) == list(sample.CATALOG["datasets"])
    assert (ctx.run.dag_id, ctx.run.as_of, ctx.run.interval_start) == ("retention_expiry", INTERVAL_END, INTERVAL_START)


def test_a_terminal_failure_is_recorded_once_before_the_task_fails_and_a_transient_one_is_not():
    recorded = []

    def fails(exc):
        raise exc

    step = terminal_errors(record=recorded.append)(fails)

    with pytest.raises(AirflowFailException, match=r"^KeyError: 'orders'$") as failed:
        step(KeyError("orders"))
    assert isinstance(failed.value.__cause__, KeyError), "the failure is chained to what caused it"
    with pytest.raises(TransientError):
        step(TransientError("server closed"))
    assert recorded == ["KeyError: 'orders'"], "the terminal failure's one line, once; the retried one not at all"

    def unrecordable(message):
        raise TransientError("state store unreachable")

    with pytest.raises(TransientError, match="state store unreachable"):
        terminal_errors(record=unrecordable)(fails)(ValueError("bad"))


def test_airflows_own_exceptions_and_return_values_pass_through_untouched():
    @terminal_errors
    def skips():
        raise AirflowSkipException("nothing to do")

    with pytest.raises(AirflowSkipException, match="nothing to do"):
        skips()
    assert terminal_errors(lambda a, *, b: (a, b))(1, b=2) == (1, 2)
    assert terminal_errors(skips).__name__ == "skips", "the task keeps its name"


def test_the_runs_last_task_is_below_every_step_and_runs_only_when_none_failed():
    with DAG("runs_last_task", schedule=None, start_date=runs.START_DATE):
        one, two, three = (EmptyOperator(task_id=name) for name in ("one", "two", "three"))
        done = runs.run_complete(one, [two, three])
    assert done.operator.task_id == "run_complete"
    assert done.operator.upstream_task_ids == {"one", "two", "three"}
    assert done.operator.trigger_rule == "none_failed"
    assert done.operator.retries == 0, "it checks the run; retrying it changes nothing"
