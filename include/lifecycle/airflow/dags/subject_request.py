"""
### subject_request

Answers a person's own request about their information
(`config/lifecycle/requests.yaml`): the policy's "right to access, delete
… or withdraw authorization", replied to within `respond_within` (default
seven days). Triggered from the form (one request), or on `intake.schedule`
to read the app's own requests table. Decisions use the run's data interval
end, never the clock.

Form: `kind` (`access` | `erase` | `withdraw_consent`), the person by
`subject` (their key) or `email` (the address on file: the answer goes there
only), `categories` (erase), `purpose` (withdraw_consent), `request_id`
(optional), `dry_run` (default **on**: record and count, change nothing).

1. **preflight**: every table reachable from the subject matches the catalog.
2. **intake**: the form's request, or the requests table's new rows, into
   the requests register (`lifecycle_subject_requests`) with their due date;
   nobody on file: *rejected*, nothing else happens.
3. **answer** (one mapped task per request, pool `lifecycle_<system>`):
   - *access*: a signed zip of every row and current object reachable from
     the person, uploaded with server-side encryption; a link that expires is
     e-mailed to the address on file;
   - *erase*: the chosen categories deleted or anonymized everywhere, the
     account kept; statutory floors, legal holds and references that keep
     rows are named; verified; a certificate;
   - *withdraw_consent*: the consent marked withdrawn; every recipient that
     received the person's data under it is asked to delete it.
   Every step is in the ledger; a rerun resumes and sends nothing twice.
   An erase that reached a lake table (Iceberg, Delta) is *purging* until the
   table's `purge_after` has passed: its certificate waits for the purge.
4. **purge**: every *purging* request whose purges are due: old snapshots
   expired, unreferenced files removed, every Parquet file read again for the
   person (must be 0), then the certificate and *done*.
5. **report**: `requests/<date>/<run>/report.html|json` — requests of this
   run and by state, those past their due date. Ids and counts only.
6. **run_complete**: the run fails when any step failed.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from lifecycle.config import load_config
from lifecycle.lineage import emit, outlets, personal_datasets, request_changes
from lifecycle.runs import dag_settings, run_complete, task_context, terminal_errors

CONFIG = load_config()


def _rights(ctx):
    from lifecycle.rights import SubjectRights

    return SubjectRights(ctx.config, ctx.state, ctx.stores)


if CONFIG.requests is not None:
    from lifecycle.rights.form import airflow_params

    SUBJECT_SYSTEM = CONFIG.catalog.dataset(CONFIG.catalog.subject.dataset).system
    INTAKE = CONFIG.requests.intake

    @dag(
        **dag_settings(
            "subject_request",
            schedule=INTAKE.schedule if INTAKE else None,
            tags=["requests"],
            doc_md=__doc__,
            params=airflow_params(CONFIG),
        )
    )
    def subject_request():
        @task
        @terminal_errors
        def preflight() -> dict:
            from lifecycle.health import schema_matches

            return schema_matches(task_context().config)

        @task
        @terminal_errors
        def intake() -> list[str]:
            ctx = task_context()
            rights = _rights(ctx)
            form = rights.parse(dict(get_current_context()["params"]), ctx.run.run_id)
            return rights.take_in(form, ctx.run.run_id, ctx.run.as_of)

        @task(
            pool=f"lifecycle_{SUBJECT_SYSTEM}",
            map_index_template="{{ request_id }}",
            outlets=outlets(personal_datasets(CONFIG.catalog)),
        )
        @terminal_errors
        def answer(request_id: str) -> dict:
            ctx = task_context()
            rights = _rights(ctx)
            form = rights.parse(dict(get_current_context()["params"]), ctx.run.run_id)
            dry_run = form is not None and form.dry_run  # the app's own requests are real
            answered = rights.answer(request_id, ctx.run.run_id, ctx.run.as_of, dry_run=dry_run)
            emit(ctx.config.catalog, request_changes(ctx.state.ledger, request_id))
            return answered

        @task(trigger_rule="all_done")
        @terminal_errors
        def purge() -> dict:
            ctx = task_context()
            return _rights(ctx).purge(ctx.run.run_id, ctx.run.as_of)

        @task(trigger_rule="all_done")
        @terminal_errors
        def report() -> dict:
            ctx = task_context()
            return _rights(ctx).report(ctx.run.run_id, ctx.run.as_of)

        checked = preflight()
        requests = intake()
        checked >> requests
        answered = answer.expand(request_id=requests)
        purged = purge()
        written = report()
        answered >> purged >> written
        run_complete(checked, requests, answered, purged, written)

    subject_request_dag = subject_request()
