"""
### lifecycle_deadlines

Is any promise about to be broken?  Runs hourly (`deadlines.yaml: schedule`),
changes nothing in the data, and fails loudly when a deadline is near or past,
so Airflow's own alerting fires:

1. **check**: each check over the state store and the configuration, at the
   run's logical date (never the clock):
   * *erasure_requests*: cancellations not done within `cancellation.yaml:
     complete_within` (a legal hold suspends the clock), near = within
     `near.erasure_requests` (default 24 h);
   * *regulator_reports*: regulator reports of an incident not delivered,
     near = deadline within `near.regulator_reports` (default 6 h);
   * *owed_notices*: incidents whose approved runs found people and never
     sent them their notice (a run killed or failed mid-send), with the count:
     past from that run's logical date, until a run with phase `update` (or
     the cleared send tasks) tells them;
   * *agreements*: recipients' agreements (`recipients.yaml:
     agreement.expires`, in force through that day) expiring within
     `near.agreements` (default 30 days) or expired.

   Its result lists, per check, the ids past and near with their deadlines:
   request ids, `<incident id>/<regulator id>`, incident ids with a count,
   recipient ids. Never a name or an address.
2. **notify_contact**: when anything is near or past, one e-mail per run to
   `notifications.yaml: contact` with the same counts and ids (claimed before
   it is sent: a retried task does not mail twice). `deadlines.yaml: notify:
   false` turns it off.
3. **deadlines_kept**: fails when any finding is past **or** near, naming
   each check's ids.
4. **run_complete**: the run's last task: *upstream_failed*, and the run
   **failed**, when a step failed.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from lifecycle.config import load_deadlines
from lifecycle.runs import dag_settings, run_complete, task_context, terminal_errors

SETTINGS = load_deadlines()  # deadlines.yaml only: the tasks load the whole configuration when they run


def _deadlines(ctx):
    from lifecycle.deadlines import Deadlines

    return Deadlines(ctx.config, ctx.state)


@dag(**dag_settings("lifecycle_deadlines", schedule=SETTINGS.schedule, tags=["checks", "deadlines"], doc_md=__doc__))
def lifecycle_deadlines():
    @task
    @terminal_errors
    def check() -> dict:
        ctx = task_context()
        return _deadlines(ctx).check(ctx.run.as_of).to_json()

    @task
    @terminal_errors
    def notify_contact(report: dict) -> dict:
        from lifecycle.deadlines import DeadlineReport

        ctx = task_context()
        return _deadlines(ctx).notify(DeadlineReport.from_json(report), ctx.run.run_id)

    @task(retries=0)
    @terminal_errors
    def deadlines_kept(report: dict) -> dict:
        from lifecycle.deadlines import DeadlineReport, verdict

        return verdict(DeadlineReport.from_json(report))

    checked = check()
    notified, kept = notify_contact(checked), deadlines_kept(checked)
    notified >> kept
    run_complete(checked, notified, kept)


lifecycle_deadlines_dag = lifecycle_deadlines()
