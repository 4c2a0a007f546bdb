"""
### retention_expiry

Keeps the policy's promise to hold personal information no longer than its
purpose needs, and never less than the law demands
(`config/lifecycle/retention.yaml`). Time comes from the run's data interval,
never the clock: a rerun of the same run decides the same way.

1. **preflight**: the tables the rules touch match the catalog (`scan`).
2. **plan**: per dataset, the rule's cutoff, the statutory floor that applies,
   and counts: candidates, under the floor, held (legal holds), to delete or
   anonymize, with the primary-key ranges to work through. Recorded in the
   ledger once; a rerun of the run reuses it. `python -m lifecycle plan`
   shows the same for "now".
3. **guardrail**: a dataset that would lose more than `max_fraction_per_run`
   stops the run before anything changes. To proceed for one run, trigger it
   with `override_guardrail` and an `override_reason` (both go to the ledger).
4. **apply_&lt;system&gt;_stage_&lt;n&gt;**: one mapped task per dataset
   partition, in the system's pool `lifecycle_<system>`; stages order
   foreign keys (rows that point at others go first). Every batch is
   committed and recorded: a killed run resumes where it stopped.
5. **verify**: count again; nothing expired may remain but held, statutory
   and locked items.
6. **report**: `retention/<date>/<run>/report.html` (and `.json`) in the
   reports destination: per dataset the rule, basis, cutoffs, counts deleted /
   anonymized / held / under floor / locked, guardrail events and duration.
   Counts only: no personal information.
7. **evidence_complete**: the run succeeded and left its report.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from lifecycle.config import load_config
from lifecycle.retention import MAX_STAGES, retention_systems, unit_group
from lifecycle.runs import dag_settings, run_info, terminal_errors

CONFIG = load_config()


def _retention():
    from lifecycle.retention import Retention
    from lifecycle.state import StateStore

    config = load_config()
    return Retention(config, StateStore.for_catalog(config.catalog))


def _plan(retention, run):
    from lifecycle.retention import Plan

    recorded = retention.state.ledger.find(f"retention:{run.run_id}:plan")
    return Plan.from_dict(recorded.payload)


if CONFIG.retention.rules:

    @dag(**dag_settings(
        "retention_expiry", schedule=CONFIG.retention.schedule, tags=["retention"], doc_md=__doc__,
        params={
            "override_guardrail": Param(False, type="boolean", title="Override the guardrail",
                                        description="Apply even where a dataset would lose more than max_fraction_per_run (this run only)."),
            "override_reason": Param("", type="string", title="Why",
                                     description="Required with the override; recorded in the ledger."),
        },
    ))
    def retention_expiry():
        @task
        @terminal_errors
        def preflight() -> dict:
            from lifecycle.health import schema_matches

            config = load_config()
            return schema_matches(config, sorted({d for _, d, _ in _retention().targets()}))

        @task
        @terminal_errors
        def plan() -> dict:
            run = run_info(get_current_context())
            made = _retention().plan(run.run_id, run.as_of, dag_id=run.dag_id)
            return {d.dataset: {"to_delete": d.to_delete, "to_anonymize": d.to_anonymize, "held": d.held,
                                "under_floor": d.under_floor, "batches": len(d.ranges), "guardrail": d.guardrail}
                    for d in made.datasets}

        @task(multiple_outputs=True)
        @terminal_errors
        def guardrail() -> dict:
            context = get_current_context()
            run, params = run_info(context), context["params"]
            retention = _retention()
            return retention.gate(_plan(retention, run), override=bool(params["override_guardrail"]),
                                  reason=params["override_reason"] or "", dag_id=run.dag_id)

        @task
        def work(units: list[dict]) -> list[dict]:
            """The units of one system and stage (Airflow maps over return values only)."""
            return units

        @task(trigger_rule="none_failed")
        @terminal_errors
        def apply(unit: dict) -> dict:
            run = run_info(get_current_context())
            return _retention().apply(unit, run.run_id, run.as_of, dag_id=run.dag_id)

        @task(trigger_rule="none_failed")
        @terminal_errors
        def verify() -> dict:
            run = run_info(get_current_context())
            retention = _retention()
            return retention.verify(_plan(retention, run), dag_id=run.dag_id)

        @task(trigger_rule="all_done")
        @terminal_errors
        def report() -> dict:
            run = run_info(get_current_context())
            retention = _retention()
            return retention.report(_plan(retention, run), dag_id=run.dag_id)

        @task
        def evidence_complete(verified: dict, written: dict) -> str:
            return written["html"]

        units = guardrail()
        preflight() >> plan() >> units
        last_stages = []
        for system in retention_systems(CONFIG):
            previous = units
            for stage in range(MAX_STAGES if CONFIG.catalog.systems[system].type == "sql" else 1):
                group = work.override(task_id=f"units_{system}_stage_{stage}")(units[unit_group(system, stage)])
                step = apply.override(task_id=f"apply_{system}_stage_{stage}", pool=f"lifecycle_{system}").expand(unit=group)
                previous >> step
                previous = step
            last_stages.append(previous)
        verified = verify()
        last_stages >> verified
        written = report()
        verified >> written
        evidence_complete(verified, written)

    retention_expiry()
