"""
### incident_notification

Triggered by an incident responder.  Keeps the policy's promise to tell
affected people, the public where individual notice is impractical, and the
regulators, within their deadlines (`config/lifecycle/incidents.yaml`).

**preflight**: the incident configuration and the catalog agree, and the
datasets an incident may name match the live schema.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from lifecycle.config import load_config
from lifecycle.runs import DEFAULT_ARGS, dag_settings, terminal_errors

CONFIG = load_config()

if CONFIG.incidents is not None:

    @dag(**dag_settings(
        "incident_notification", schedule=None, tags=["incident"], doc_md=__doc__,
        max_active_runs=8,                              # incidents do not wait for each other
        default_args={**DEFAULT_ARGS, "retries": 0},    # a notice is never re-sent by a blind retry
    ))
    def incident_notification():
        @task
        @terminal_errors
        def preflight() -> dict:
            from lifecycle.health import schema_matches

            return schema_matches(load_config())

        preflight()

    incident_notification()
