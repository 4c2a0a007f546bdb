"""
### incident_notification — for the incident responder

Tells the people affected by a personal information security incident, the
public where individual notice is impractical, and the regulators, within
their deadlines (`config/lifecycle/incidents.yaml`). Press **Trigger** and
fill in the form; **Dry run** is on by default: the first run only shows
you what would happen.

**The form**

| field | what to write |
|---|---|
| Incident id | your reference, e.g. `INC-2026-042`. Use it again with phase *update* for a follow-up |
| Title | a short name people and regulators will read |
| Discovered at | when the company became aware (UTC). Every regulator deadline runs from here |
| Occurred from / to | the window in which data was exposed (UTC) |
| Cause | what happened and why |
| Affected datasets / categories | where the exposed data lives; people with a row there created inside the window are affected. Choices come from the catalog |
| Affected people from a file | instead of datasets and window: `s3://bucket/key` of a file with one subject id per line |
| Possible impact, Measures taken, Precautions, Remedies | the four statements every notice and report must carry (GDPR art. 33(3), 34; PIPL art. 57) |
| Contact | leave empty to name the privacy officer from `incidents.yaml`, or give `{"name", "email", "phone"}` |
| Channels | `email`, `letter`, `telephone` (work lists for people e-mail cannot reach) and `announcement` (publish the public notice even if the fallback rule does not require it) |
| Reasons for delay | only when a deadline has passed: why |
| Phase | `initial`, or `update` to notify people not notified before: the newly affected, and those an interrupted earlier run still owes a notice; reports are marked as follow-ups |
| Dry run | on: decide and write previews, send nothing |
| Decision, Why not notify | `notify` (default), or `not_notify` with the reason: the decision not to tell the people affected, approved like a sending run and recorded; no notice, list or announcement goes out. Regulators whose conditions hold still get their report, stating the decision. Trigger again with `notify` to tell them after all |
| Resend uncertain notices, Why | `update` only: also mail the people whose notice is *uncertain* (a kill while it was on the wire), with the reason (ledgered). Off by default: nobody is mailed twice |

Input that does not fit is refused with the field and the reason before
anything is recorded.

**What happens after Trigger**

1. **preflight**: the catalog matches the live databases.
2. **register**: the form is checked and the incident entered in the incident register.
3. **resolve**: the people affected are found in the databases and how each can be reached (e-mail; only phone or postal address; none), with counts by country and language. Only ids and counts leave the databases.
4. **obligations**: which regulators must be told and by when (deadline = discovered at + the regulator's `deadline`), and whether the public announcement is required (`fallback`), with the reasons.
5. **preview**: one e-mail per language, the announcement and each regulator report under `incidents/<id>/<run>/preview/` in the reports folder. **A dry run stops here.** Read them, then trigger again with dry run off.
6. **approve**: a person approves in *Required Actions* (or via the REST API). Reject, or no answer within `approval_timeout`, ends the run with nothing sent. With `approval: none` in `incidents.yaml` this step approves by itself (automation, demo).
7. **send** (one task per batch, up to `email.connections` batches side by side, at most `max_per_second` for the whole run): each person is recorded before their mail goes, so a rerun never mails anyone twice. Temporary refusals (4xx) are retried with backoff; permanent ones (5xx) count as unreachable.
8. **contact_lists**: `letters.csv` and `telephone.csv` for people e-mail did not reach (internal: they hold addresses and phone numbers). It and the steps after it also run when there was no mail batch to send (nobody with an e-mail address, or an update with nobody new).
9. **announce**: the public notice goes to the announcement bucket when the fallback rule fires (or when chosen).
10. **regulator_reports**: one report per regulator in HTML, PDF and JSON: facts, timeline with the deadline and whether it was met, counts by category and country, channels and delivery figures, and how the report is delivered. No personal information.
11. **deliver_reports**: each report goes to its regulator: e-mailed to the regulator's `contact` with the PDF and JSON attached, and/or uploaded to its `delivery` system. Each regulator is mailed once: its claim is recorded before the mail goes, so a rerun never mails it twice. The register keeps the Message-ID, the SHA-256 of both files, the delivery time (the run's logical time) and whether it was after the deadline (the report and the e-mail then carry *Reasons for delay*). A delivery that failed fails this task; a follow-up run (phase *update*) delivers again.
12. **finish**: the figures go into the register (people still owed a notice among them: a run that owes people ends failed); the task's result lists counts, what was delivered to each regulator when, against its deadline, and where everything is. It runs after every path: sent, dry run, rejected, and after a failed step.
13. **run_complete**: the run's last task. A step that failed (preflight, register, resolve, …, deliver_reports, finish) makes it *upstream_failed* and the run **failed**; a dry run and a rejected approval skip the steps after them and end **success**.

**If a run is interrupted** (a worker lost mid-send): the people it did not
reach are *owed* their notice; the Privacy view, the register's figures and
`lifecycle_deadlines` say how many. Trigger the same incident with phase
*update* (or clear the failed `send` tasks): it sends to them, once each. A
second *initial* run is refused with the count and that command.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, get_current_context, task

from lifecycle.config import load_config
from lifecycle.runs import DEFAULT_ARGS, dag_settings, run_complete, task_context, terminal_errors

CONFIG = load_config()
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

APPROVAL_SUBJECT = """{% set registered = ti.xcom_pull(task_ids='register') %}\
{% if registered.get('decision') == 'not_notify' %}Record the decision not to notify the people affected by \
incident {{ registered['incident_id'] }}?{% else %}Send the notices of incident {{ registered['incident_id'] }}?{% endif %}"""
# the Privacy view's macro renders the counts, deadlines and the English notice (lifecycle/airflow/plugin.py);
# without the plugin, the steps' return values
APPROVAL_BODY = """{% if macros.privacy_view is defined %}{{ macros.privacy_view.approval_body(ti) }}{% else %}\
Approve to send the notices of this incident now (decision notify), or to record the decision \
not to notify its people (decision not_notify: no notice, list or announcement goes out).

* Incident: {{ ti.xcom_pull(task_ids='register') }}
* People: {{ ti.xcom_pull(task_ids='resolve') }}
* Obligations: {{ ti.xcom_pull(task_ids='obligations') }}
* Previews to read first: {{ ti.xcom_pull(task_ids='preview') }}

Reject, or no answer in time, ends the run with nothing sent.{% endif %}"""


def _notifier(ctx):
    from lifecycle.incident import IncidentNotification

    return IncidentNotification.of(ctx)


if CONFIG.incidents is not None:
    from lifecycle.incident import airflow_params

    @dag(
        **dag_settings(
            "incident_notification",
            schedule=None,
            tags=["incident"],
            doc_md=__doc__,
            max_active_runs=8,  # incidents do not wait for each other
            default_args={**DEFAULT_ARGS, "retries": 0},  # a notice is never re-sent by a blind retry
            params=airflow_params(CONFIG.catalog),
        )
    )
    def incident_notification():
        @task
        @terminal_errors
        def preflight() -> dict:
            from lifecycle.health import schema_matches

            return schema_matches(task_context().config, deleting=False)

        @task
        @terminal_errors
        def register() -> dict:
            from lifecycle.incident import parse

            ctx = task_context()
            run, notifier = ctx.run, _notifier(ctx)
            form = parse(dict(get_current_context()["params"]), notifier.catalog)
            return notifier.register(form, run.run_id, run.as_of, dag_id=run.dag_id)

        @task
        @terminal_errors
        def resolve() -> dict:
            ctx = task_context()
            return _notifier(ctx).resolve(ctx.run.run_id)

        @task
        @terminal_errors
        def obligations() -> dict:
            ctx = task_context()
            return _notifier(ctx).obligations(ctx.run.run_id)

        @task
        @terminal_errors
        def preview() -> dict:
            ctx = task_context()
            return _notifier(ctx).preview(ctx.run.run_id)

        @task.short_circuit(ignore_downstream_trigger_rules=False)  # finish (all_done) still records the run
        def not_a_dry_run(previewed: dict) -> bool:
            """A dry run ends after the preview: everything below is skipped."""
            return not previewed["dry_run"]

        if CONFIG.incidents.approval == "required":
            from airflow.providers.standard.operators.hitl import ApprovalOperator

            approve = ApprovalOperator(
                task_id="approve",
                subject=APPROVAL_SUBJECT,
                body=APPROVAL_BODY,
                defaults="Reject",  # no answer within approval_timeout: rejected
                response_timeout=CONFIG.incidents.approval_timeout.after(EPOCH) - EPOCH,
            )
        else:

            @task(task_id="approve")
            def approve_automatically() -> dict:
                """incidents.yaml says `approval: none`: approved by configuration."""
                return {"auto": True}

            approve = approve_automatically()

        @task
        @terminal_errors
        def plan_sends() -> list[int]:
            ctx, ti = task_context(), get_current_context()["ti"]
            return _notifier(ctx).plan_sends(ctx.run.run_id, ti.xcom_pull(task_ids="approve"))

        # batches side by side, one SMTP session each; max_per_second holds for the run (state.rates)
        @task(max_active_tis_per_dagrun=CONFIG.notifications.email.connections)
        @terminal_errors
        def send(batch: int) -> dict:
            ctx = task_context()
            return _notifier(ctx).send_batch(ctx.run.run_id, batch)

        @task(trigger_rule="none_failed_min_one_success")  # after the batches, or after plan_sends when there are none
        @terminal_errors
        def contact_lists() -> dict:
            ctx = task_context()
            return _notifier(ctx).contact_lists(ctx.run.run_id)

        @task
        @terminal_errors
        def announce() -> dict:
            ctx = task_context()
            return _notifier(ctx).announce(ctx.run.run_id)

        @task
        @terminal_errors
        def regulator_reports() -> dict:
            ctx = task_context()
            return _notifier(ctx).regulator_reports(ctx.run.run_id)

        @task
        @terminal_errors
        def deliver_reports() -> dict:
            ctx = task_context()
            return _notifier(ctx).deliver_reports(ctx.run.run_id)

        @task(trigger_rule="all_done")
        @terminal_errors
        def finish() -> dict:
            ctx, ti = task_context(), get_current_context()["ti"]
            run = ctx.run
            return _notifier(ctx).finish(
                run.run_id,
                answer=ti.xcom_pull(task_ids="approve"),
                approve_states=lambda: ti.get_task_states(
                    dag_id=run.dag_id, task_ids=["approve"], run_ids=[run.run_id]
                ),
            )

        checked, registered, resolved, obliged = preflight(), register(), resolve(), obligations()
        previewed = preview()
        checked >> registered >> resolved >> obliged >> previewed
        gate = not_a_dry_run(previewed)
        batches = plan_sends()
        gate >> approve >> batches
        sent = send.expand(batch=batches)
        listed, announced, reported, delivered = contact_lists(), announce(), regulator_reports(), deliver_reports()
        [batches, sent] >> listed >> announced >> reported >> delivered
        recorded = finish()
        delivered >> recorded
        # Not below the gate or approve: they skip their direct downstream tasks (dry run, rejected);
        # a failure of either reaches run_complete through plan_sends (upstream_failed).
        run_complete(
            checked,
            registered,
            resolved,
            obliged,
            previewed,
            batches,
            sent,
            listed,
            announced,
            reported,
            delivered,
            recorded,
        )

    incident_notification_dag = incident_notification()
