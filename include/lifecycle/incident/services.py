"""What every stage of an incident run works with: configuration, stores, state, mail.

The stages take a ``Services`` and a run id, read the run from the register
(``run``), and write their documents back (``save``) and their ledger entry
(``record``); ids, counts and batch numbers are all they return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lifecycle.errors import LifecycleError
from lifecycle.evidence import incident_event
from lifecycle.incident.documents import Documents
from lifecycle.incident.models import Run, to_json

if TYPE_CHECKING:
    from lifecycle.catalog import Catalog
    from lifecycle.config.incidents import IncidentsFile
    from lifecycle.config.notifications import NotificationsFile
    from lifecycle.notifier import Notifier
    from lifecycle.state import StateStore
    from lifecycle.stores import Stores


@dataclass(frozen=True)
class Services:
    incidents: IncidentsFile  # incidents.yaml
    mail: NotificationsFile  # notifications.yaml: connection, sender, rate, retries, contact, locales
    catalog: Catalog
    state: StateStore
    stores: Stores
    notifier: Notifier  # sends each person a notice at most once

    def run(self, run_id: str) -> Run:
        row = self.state.incidents.run(run_id)
        if row is None:
            raise LifecycleError(f"run {run_id!r} is not in the incident register; the register task did not run")
        return Run.from_row(row)

    def save(self, run_id: str, **documents) -> None:
        """Replace the run's documents named (``scope=``, ``obligations=``, ``approval=``, ``figures=``)."""
        self.state.incidents.update_run(run_id, **{name: to_json(doc) for name, doc in documents.items()})

    def record(self, event: str, payload: dict, run: Run, *, part: str | None = None, dag_id: str | None = None):
        """The ledger entry ``incident.<event>`` of a run, once: a rerun finds it under its key."""
        key = incident_event(run.incident_id, run.run_id, event, part)
        self.state.ledger.append(f"incident.{event}", payload, dag_id=dag_id, run_id=run.run_id, key=key)

    def people(self):
        """The store of the subject's dataset: contacts and reach."""
        return self.stores.of(self.catalog.subject.dataset)

    def documents(self, run: Run) -> Documents:
        return Documents(self.catalog, run.incident_id, run.run_id, self.state.ledger)
