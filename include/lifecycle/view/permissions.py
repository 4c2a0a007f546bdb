"""What a user may see in the Privacy view, decided by the auth manager the api-server runs.

The view adds no permission of its own: it asks the questions Airflow already
answers for the lifecycle's DAGs, so ``config/roles.json`` (FAB) and the simple
auth manager's roles decide it as they decide the DAGs.

- ``everything`` (Overview, Documents): may read every lifecycle DAG
  (DataEngineer, Auditor);
- ``incidents`` (Incident pages and their documents): may read
  ``incident_notification`` (IncidentResponder too);
- ``contact_lists`` (letters/telephone CSV): may trigger ``incident_notification``
  (IncidentResponder, DataEngineer; not the Auditor, who reads only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

INCIDENT_DAG = "incident_notification"
EVERYTHING, INCIDENTS, CONTACT_LISTS = "everything", "incidents", "contact_lists"

#: ``(method, dag_id, run) -> allowed``: ``run`` asks about the DAG's runs rather than the DAG
DagCheck = Callable[[str, str, bool], bool]


def lifecycle_dag_ids(config) -> list[str]:
    """The DAGs whose records the Overview and Documents show."""
    ids = ["lifecycle_checks", "retention_expiry"]
    if config.cancellation is not None:
        ids.append("cancellation_erasure")
    ids += [f"sharing_{r.id}" for r in config.recipients.recipients]
    if config.requests is not None:
        ids.append("subject_request")
    if config.incidents is not None:
        ids.append(INCIDENT_DAG)
    return ids


@dataclass(frozen=True)
class Abilities:
    everything: bool
    incidents: bool
    contact_lists: bool

    def allows(self, need: str) -> bool:
        return bool(getattr(self, need))

    @property
    def any(self) -> bool:
        return self.everything or self.incidents


def abilities(check: DagCheck, dag_ids: list[str]) -> Abilities:
    everything = all(check("GET", dag_id, False) for dag_id in dag_ids)
    incidents = check("GET", INCIDENT_DAG, False)
    contact_lists = incidents and check("POST", INCIDENT_DAG, True)
    return Abilities(everything=everything, incidents=incidents or everything, contact_lists=contact_lists)


def auth_manager_check(auth_manager, user) -> DagCheck:
    """``DagCheck`` over an Airflow auth manager (``get_auth_manager()``) and its user."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    def check(method: str, dag_id: str, run: bool) -> bool:
        return auth_manager.is_authorized_dag(
            method=method,
            user=user,
            access_entity=DagAccessEntity.RUN if run else None,
            details=DagDetails(id=dag_id),
        )

    return check
