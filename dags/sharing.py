"""
### sharing_&lt;recipient&gt;

One DAG per recipient in `config/lifecycle/recipients.yaml`: a delivery to a
third party happens only under its recorded legal basis and agreement, with
only the fields the agreement covers.

**preflight**: the tables this recipient receives from must match the catalog.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from lifecycle.config import load_config
from lifecycle.runs import dag_settings, terminal_errors

CONFIG = load_config()


def build(recipient):
    about = f"\n\n**Recipient**: {recipient.name} ({recipient.role}, {recipient.legal_basis}): {recipient.purpose}"

    @dag(**dag_settings(f"sharing_{recipient.id}", schedule=recipient.schedule,
                        tags=["sharing", recipient.role], doc_md=__doc__ + about))
    def sharing():
        @task
        @terminal_errors
        def preflight() -> dict:
            from lifecycle.health import schema_matches

            config = load_config()
            current = next(r for r in config.recipients.recipients if r.id == recipient.id)
            return schema_matches(config, sorted(current.share))

        preflight()

    return sharing()


for _recipient in CONFIG.recipients.recipients:
    globals()[f"sharing_{_recipient.id}"] = build(_recipient)
