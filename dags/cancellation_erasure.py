"""
### cancellation_erasure

Keeps the policy's promise that a cancelled account's personal information is
deleted or anonymized once the grace period is over
(`config/lifecycle/cancellation.yaml`).

**preflight**: every table reachable from the subject must match the catalog
(`python -m lifecycle scan`) before any erasure starts.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from lifecycle.config import load_config
from lifecycle.runs import dag_settings, terminal_errors

CONFIG = load_config()

if CONFIG.cancellation is not None:

    @dag(**dag_settings("cancellation_erasure", schedule=CONFIG.cancellation.schedule,
                        tags=["erasure"], doc_md=__doc__))
    def cancellation_erasure():
        @task
        @terminal_errors
        def preflight() -> dict:
            from lifecycle.health import schema_matches

            return schema_matches(load_config())

        preflight()

    cancellation_erasure()
