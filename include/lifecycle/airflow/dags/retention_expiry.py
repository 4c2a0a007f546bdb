"""
### retention_expiry

Keeps the policy's promise to hold personal information no longer than its
purpose needs, and never less than the law demands
(`config/lifecycle/retention.yaml`). Time comes from the run's data interval,
never the clock: a rerun of the same run decides the same way.

1. **preflight**: the tables the rules touch match the catalog (`scan`).
2. **plan**: per dataset, the rule's cutoff, the statutory floor that applies,
   and counts: candidates, under the floor, held (legal holds), *referenced*
   (expired, but still pointed at by rows that stay: kept, and the report says
   which configuration change lets them go), to delete or anonymize, with the
   key ranges to work through. Recorded in the ledger once; a rerun of the
   run reuses it. A dataset that cannot be planned (a missing table, say) is
   recorded with its error: its own apply unit fails, the others go on.
   `python -m lifecycle plan` shows the same for "now".
3. **guardrail**: a dataset that would lose more than `max_fraction_per_run`
   stops the run before anything changes. To proceed for one run, trigger it
   with `override_guardrail` and an `override_reason` (both go to the ledger).
4. **units_&lt;system&gt;_stage_&lt;n&gt;** and **apply_&lt;system&gt;_stage_&lt;n&gt;**:
   one mapped apply task per dataset partition, in the system's pool
   `lifecycle_<system>`; stages order foreign keys (rows that point at others
   go first). A later stage runs even when a unit of an earlier one failed:
   a row that rows still in place point at is never deleted. Every batch is
   committed and recorded: a killed run resumes where it stopped.
5. **verify**: count again; nothing expired may remain but held, statutory,
   referenced and locked items. Datasets whose batches did not all apply are
   reported as not verified.
6. **report**: `retention/<date>/<run>/report.html` (and `.json`) in the
   reports destination: per dataset the rule, basis, cutoffs, counts deleted /
   anonymized / held / under floor / referenced / locked, guardrail events
   and duration; after a failed preflight or plan, which step stopped the run
   and why. Counts only: no personal information.
7. **evidence_complete**: the run's last task, after every step. It is
   *upstream_failed*, and the run **failed**, when any step failed (a
   preflight, a plan, the guardrail, any apply unit, verify or the report):
   the run is never green when its work was not done.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from lifecycle.config import load_config
from lifecycle.lineage import emit, outlets, retention_changes, retention_datasets
from lifecycle.retention import retention_systems, stages_of, unit_group
from lifecycle.runs import dag_settings, run_complete, task_context, terminal_errors

CONFIG = load_config()


def _retention(ctx):
    from lifecycle.retention import Retention

    return Retention.of(ctx)


def _recorded(step: str):
    """Record a step's terminal failure for the run's report (``terminal_errors(record=)``)."""

    def record(message: str) -> None:
        ctx = task_context()
        _retention(ctx).record_failure(ctx.run.run_id, step, message, dag_id=ctx.run.dag_id)

    return record


def _plan(retention, run):
    """The run's recorded plan; without one (the plan task failed) there is nothing to do here."""
    from airflow.sdk.exceptions import AirflowSkipException

    recorded = retention.recorded_plan(run.run_id)
    if recorded is None:
        raise AirflowSkipException("this run made no plan (preflight or plan failed): nothing to do")
    return recorded


if CONFIG.retention.rules:

    @dag(
        **dag_settings(
            "retention_expiry",
            schedule=CONFIG.retention.schedule,
            tags=["retention"],
            doc_md=__doc__,
            params={
                "override_guardrail": Param(
                    False,
                    type="boolean",
                    title="Override the guardrail",
                    description="Apply even where a dataset would lose more than max_fraction_per_run (this run only).",
                ),
                "override_reason": Param(
                    "", type="string", title="Why", description="Required with the override; recorded in the ledger."
                ),
            },
        )
    )
    def retention_expiry():
        @task
        @terminal_errors(record=_recorded("preflight"))
        def preflight() -> dict:
            from lifecycle.health import schema_matches

            ctx = task_context()
            return schema_matches(ctx.config, sorted({t.dataset for t in _retention(ctx).targets()}))

        @task
        @terminal_errors(record=_recorded("plan"))
        def plan() -> dict:
            ctx = task_context()
            run = ctx.run
            return _retention(ctx).plan(run.run_id, run.as_of, dag_id=run.dag_id).summary()

        @task(multiple_outputs=True)
        @terminal_errors
        def guardrail() -> dict:
            ctx, params = task_context(), get_current_context()["params"]
            run, retention = ctx.run, _retention(ctx)
            return retention.gate(
                _plan(retention, run),
                override=bool(params["override_guardrail"]),
                reason=params["override_reason"] or "",
                dag_id=run.dag_id,
            )

        @task(trigger_rule="all_done")
        def work(group: str) -> list[dict]:
            """The units of one system and stage, as the guardrail let them through (Airflow maps
            over return values only).  Runs once the stage before is done, even if a unit there
            failed; skipped when the guardrail did not pass."""
            from airflow.sdk.exceptions import AirflowSkipException

            units = get_current_context()["ti"].xcom_pull(task_ids="guardrail", key=group)
            if units is None:
                raise AirflowSkipException("the guardrail did not pass: nothing is applied")
            return units

        @task(trigger_rule="none_failed")
        @terminal_errors
        def apply(unit: dict) -> dict:
            ctx = task_context()
            run = ctx.run
            applied = _retention(ctx).apply(unit, run.run_id, run.as_of, dag_id=run.dag_id)
            emit(ctx.config.catalog, retention_changes(ctx.config.catalog, applied))
            return applied

        @task(trigger_rule="all_done")
        @terminal_errors
        def verify() -> dict:
            ctx = task_context()
            run, retention = ctx.run, _retention(ctx)
            return retention.verify(_plan(retention, run), dag_id=run.dag_id)

        @task(trigger_rule="all_done")
        @terminal_errors
        def report() -> dict:
            ctx, ti = task_context(), get_current_context()["ti"]
            run = ctx.run
            states = ti.get_task_states(
                dag_id=run.dag_id, task_ids=["preflight", "plan", "guardrail"], run_ids=[run.run_id]
            )
            failed = [task for task, state in (states.get(run.run_id) or {}).items() if state == "failed"]
            return _retention(ctx).report(run.run_id, as_of=run.as_of, failed_steps=failed, dag_id=run.dag_id)

        checked, planned, units = preflight(), plan(), guardrail()
        checked >> planned >> units
        applies = []
        for system in retention_systems(CONFIG):
            previous = units
            for stage in range(stages_of(CONFIG, system)):
                group = work.override(task_id=f"units_{system}_stage_{stage}")(unit_group(system, stage))
                step = apply.override(
                    task_id=f"apply_{system}_stage_{stage}",
                    pool=f"lifecycle_{system}",
                    outlets=outlets(retention_datasets(CONFIG, system)),
                ).expand(unit=group)
                previous >> group
                previous = step
                applies.append(step)
        verified = verify()
        applies >> verified
        written = report()
        verified >> written
        run_complete(checked, planned, units, applies, verified, written, task_id="evidence_complete")

    retention_expiry_dag = retention_expiry()
