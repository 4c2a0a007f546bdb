"""What a task works with, built once per task: the configuration as the files are when
the task runs, the run it belongs to, the state store and one store per system.

Plain data and lazy handles, no Airflow: DAG files build it with
``runs.task_context()``; tests and benchmarks build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from lifecycle.config import Config


@dataclass(frozen=True)
class Run:
    dag_id: str
    run_id: str
    as_of: datetime  # the instant the run decides by: its data interval end, never now()
    interval_start: datetime | None


@dataclass(frozen=True)
class RunContext:
    config: Config
    run: Run

    @cached_property
    def state(self):
        """The state store (ledger, holds, registers), migrated on first use."""
        from lifecycle.state import StateStore

        return StateStore.for_catalog(self.config.catalog)

    @cached_property
    def stores(self):
        """One store per system, opened through its Airflow connection on first use."""
        from lifecycle.stores import Stores

        return Stores(self.config.catalog)
