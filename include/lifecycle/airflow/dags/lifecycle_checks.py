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
4. **discover_columns**: a bounded sample of every unclassified column and
   every column marked `personal: false` (`python -m lifecycle scan
   --suggest`); fails when a column is unclassified or a `personal: false`
   column looks personal.  Its result (names, verdicts, counts) goes to the
   reports destination as `discovery/coverage.json`, which the Privacy
   view's Coverage page shows.
5. **run_complete**: the run's last task, after the four checks: it is
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

    @task
    @terminal_errors
    def discover_columns() -> dict:
        from lifecycle.discovery.report import check
        from lifecycle.reports import ReportSink

        ctx = task_context()
        catalog = ctx.config.catalog
        return check(catalog, ReportSink(catalog), as_of=ctx.run.as_of.date(), open_store=ctx.stores)

    validated, scanned, verified, discovered = validate_config(), scan_schema(), verify_ledger(), discover_columns()
    validated >> [scanned, verified, discovered]
    run_complete(validated, scanned, verified, discovered)


lifecycle_checks_dag = lifecycle_checks()
