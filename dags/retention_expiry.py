"""
### retention_expiry

Keeps the policy's promise to hold personal information no longer than its
purpose needs, never less than the law demands (`config/lifecycle/retention.yaml`).

**preflight**: before anything changes, the tables the rules touch must match
the catalog (`python -m lifecycle scan`); a drifted schema stops the run.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from lifecycle.config import load_config
from lifecycle.runs import dag_settings, terminal_errors

CONFIG = load_config()


def _rule_datasets(config) -> list[str]:
    catalog = config.catalog
    return sorted({d for r in config.retention.rules for d in catalog.resolve(r.applies_to.categories, r.applies_to.datasets)})


if CONFIG.retention.rules:

    @dag(**dag_settings("retention_expiry", schedule=CONFIG.retention.schedule, tags=["retention"], doc_md=__doc__))
    def retention_expiry():
        @task
        @terminal_errors
        def preflight() -> dict:
            from lifecycle.health import schema_matches

            config = load_config()
            return schema_matches(config, _rule_datasets(config))

        preflight()

    retention_expiry()
