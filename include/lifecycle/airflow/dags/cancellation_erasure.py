"""
### cancellation_erasure

Keeps the policy's promise that a cancelled account's personal information
is deleted or anonymized once the grace period is over
(`config/lifecycle/cancellation.yaml`). Decisions use the run's data
interval end, never the clock.

1. **preflight**: every table reachable from the subject matches the catalog.
2. **intake**: each request becomes *pending* (in its grace period),
   *withdrawn*, *held* (legal hold), *rejected* (no such subject) or *due*;
   due subjects go into batches of `batch_size` (*erasing*). States live in
   the state store (`lifecycle_erasures`).
3. **notify_scheduled**: one e-mail per newly seen request, in the person's
   language: when erasure happens and how to withdraw. Never sent twice: each
   notice is claimed in `lifecycle_deliveries` before it goes out (a claim a
   killed run left open is reported *uncertain*, not resent).
4. **erase** (one mapped task per batch, pool `lifecycle_<system>`): every
   dataset reachable from the subject, deeper links first, deleted or
   anonymized (`overrides`), set-based for the whole batch; every object
   version and delete marker under the subject's prefixes; then verification,
   the completion notice, the subject's own row, and the batch's signed
   certificate: a Merkle root over one leaf per person (`certificates/<batch>/`
   in the reports destination; a person's certificate is rendered on demand).
   Locked objects and statutory records are kept and named in the
   certificate. A subject that fails verification is *failed* and the task fails.
   An address the mail server refuses is recorded *undeliverable* (5xx) or
   *deferred* (4xx on every try) and does not hold the erasure up.
   A batch with lake datasets (Iceberg, Delta) is certified only once their
   purge is done: until then its people are *purging*.
5. **purge**: the lake purges due by the run's time (`purge_after` after the
   erasing run's logical time): old snapshots expired, unreferenced files
   removed, then every data file under the table read for the batch's people
   (must be none, else the task fails naming the dataset); counts in the
   ledger and the certificates, issued then. A rerun finishes a killed purge.
6. **check_deadlines**: fails when a request is not done within
   `complete_within` of its request (held requests wait for their hold;
   pending purges count).
7. **report**: `cancellation/<date>/<run>/report.html|json`: subjects by state,
   certificates of this run, requests past their deadline. No personal information.
   Runs (like check_deadlines) even when an earlier step failed.
8. **run_complete**: the run's last task, after every step above. It is
   *upstream_failed*, and the run **failed**, when any step failed (a failed
   preflight erases nobody: the run is red, not green); a run with no due
   subjects (erase skipped: zero batches) succeeds.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from lifecycle.config import load_config
from lifecycle.lineage import emit, erasure_changes, outlets, personal_datasets
from lifecycle.runs import dag_settings, run_complete, task_context, terminal_errors

CONFIG = load_config()


def _erasure(ctx):
    from lifecycle.erasure import Erasure

    return Erasure(ctx.config, ctx.state, open_store=ctx.stores)


if CONFIG.cancellation is not None:
    SUBJECT_SYSTEM = CONFIG.catalog.dataset(CONFIG.catalog.subject.dataset).system

    @dag(
        **dag_settings("cancellation_erasure", schedule=CONFIG.cancellation.schedule, tags=["erasure"], doc_md=__doc__)
    )
    def cancellation_erasure():
        @task
        @terminal_errors
        def preflight() -> dict:
            from lifecycle.health import schema_matches

            return schema_matches(task_context().config)

        @task
        @terminal_errors
        def intake() -> list[str]:
            ctx = task_context()
            return _erasure(ctx).intake(ctx.run.run_id, ctx.run.as_of).batches

        @task
        @terminal_errors
        def notify_scheduled() -> dict:
            ctx = task_context()
            return _erasure(ctx).notify_scheduled(run_id=ctx.run.run_id)

        @task(pool=f"lifecycle_{SUBJECT_SYSTEM}", outlets=outlets(personal_datasets(CONFIG.catalog)))
        @terminal_errors
        def erase(batch: str) -> dict:
            ctx = task_context()
            result = _erasure(ctx).erase(batch, ctx.run.as_of, run_id=ctx.run.run_id)
            emit(ctx.config.catalog, erasure_changes(ctx.state.ledger, batch))
            return result.to_json()

        @task(trigger_rule="all_done")
        @terminal_errors
        def purge() -> dict:
            ctx = task_context()
            return _erasure(ctx).purge(ctx.run.as_of, run_id=ctx.run.run_id)

        @task(trigger_rule="all_done")
        @terminal_errors
        def check_deadlines() -> dict:
            from lifecycle.erasure.late import check_overdue

            ctx = task_context()
            return check_overdue(_erasure(ctx), ctx.run.as_of)

        @task(trigger_rule="all_done")
        @terminal_errors
        def report() -> dict:
            ctx = task_context()
            written = _erasure(ctx).report(ctx.run.run_id, ctx.run.as_of)
            return {"html": written["html"], "states": written["states"], "certificates": len(written["certificates"])}

        checked = preflight()
        batches = intake()
        notices = notify_scheduled()
        checked >> batches >> notices
        erased = erase.expand(batch=batches)
        notices >> erased
        purged = purge()
        deadlines = check_deadlines()
        written = report()
        erased >> purged >> deadlines >> written
        run_complete(checked, batches, notices, erased, purged, deadlines, written)

    cancellation_erasure_dag = cancellation_erasure()
