"""
### lifecycle_checks

Is the lifecycle's picture of the world still true?  Runs daily, changes
nothing, and fails loudly when something needs a person:

1. **validate_config**: every file in `config/lifecycle/` parses and agrees
   with the others (the same checks as `python -m lifecycle validate`).
2. **scan_schema**: every table of every SQL system in the catalog is a
   dataset, every column is classified or marked `personal: false`, every
   column the catalog names exists (`python -m lifecycle scan`).
3. **verify_ledger**: the hash chain of the ledger is intact
   (`python -m lifecycle ledger verify`).
4. **run_complete**: the run's last task, after the three checks: it is
   *upstream_failed*, and the run **failed**, when any check failed.

A failed task's log lists each finding by table and column; no values are
logged.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from lifecycle.runs import dag_settings, run_complete, task_context, terminal_errors


@dag(**dag_settings("lifecycle_checks", schedule="@daily", tags=["checks"], doc_md=__doc__))
def lifecycle_checks():
    @task
    @terminal_errors
    def validate_config() -> dict:
        from lifecycle.health import config_summary

        return config_summary(task_context().config)

    @task
    @terminal_errors
    def scan_schema() -> dict:
        from lifecycle.health import schema_matches

        return schema_matches(task_context().config)

    @task
    @terminal_errors
    def verify_ledger() -> dict:
        from lifecycle.health import ledger_intact

        return ledger_intact(task_context().state)

    validated, scanned, verified = validate_config(), scan_schema(), verify_ledger()
    validated >> [scanned, verified]
    run_complete(validated, scanned, verified)


lifecycle_checks()
