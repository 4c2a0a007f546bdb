"""The fault suite's tools: proxies in front of the servers, runs retried as Airflow retries a
task, and the table of what each cell survived (``LIFECYCLE_FAULTS_REPORT``: a JSON-lines file
each cell appends to; ``python -m tests.faults.report <file>`` prints README's table).

``LIFECYCLE_FAULTS_LONG=1`` runs the long variants (more fault points, larger worlds)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from lifecycle import connections
from lifecycle.failures import retryable
from tests.support.faults import FaultProxy

LONG = os.environ.get("LIFECYCLE_FAULTS_LONG") == "1"
# S3's faults do not depend on the SQL backend, and boto3's own backoff makes them slow: one backend unless long
S3_BACKENDS = ["sqlite", "postgresql", "mariadb"] if LONG else ["sqlite"]


def smtp_connection(port: int) -> str:
    return json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": {"disable_ssl": True, "disable_tls": True}}
    )


@pytest.fixture
def proxies():
    """``proxies(port, protocol)``: a started ``FaultProxy``, stopped after the test."""
    started: list[FaultProxy] = []

    def make(port: int, protocol: str = "tcp", **kwargs) -> FaultProxy:
        proxy = FaultProxy(port, protocol, **kwargs).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()
    if any(proxy.counts["connections"] for proxy in started):
        time.sleep(0.3)  # the servers notice the connections reset by stop() before their database is dropped


@pytest.fixture
def db_proxy(engine, proxies):
    """A proxy in front of the test's database server and the URL through it (None on SQLite)."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return None, url
    proxy = proxies(url.port or (5432 if url.get_backend_name() == "postgresql" else 3306), url.get_backend_name())
    return proxy, url.set(host="127.0.0.1", port=proxy.port)


@dataclass
class Tally:
    """What a run took: tries of its tasks, and the retryable failures met on the way."""

    tries: int = 0
    failures: list[str] = field(default_factory=list)


def with_retries(
    steps: Sequence[tuple[str, Callable[[], object]]],
    *,
    retries: int = 3,
    delay: float = 0.0,
    tally: Tally | None = None,
):
    """Run ``steps`` as a DAG's tasks with ``retries`` each (Airflow's retry, or a responder
    clearing the failed task): a retryable failure runs the task again after ``delay`` seconds
    as a new process would (``connections.forget()``: new engines and clients), a terminal one
    fails at once.  Returns the tally; raises the last failure when retries run out."""
    tally = tally or Tally()
    for name, step in steps:
        for attempt in range(retries + 1):
            tally.tries += 1
            try:
                step()
                break
            except Exception as exc:
                if not retryable(exc):
                    raise
                tally.failures.append(f"{name}: {type(exc).__name__}")
                connections.forget()
                time.sleep(delay)
                if attempt == retries:
                    raise
    return tally


def outcome_of(tally: Tally, finished: str = "retry finishes") -> str:
    """How a run met its fault: failed and finished on retry, or absorbed (a pool's reconnect, a client's own retry)."""
    return f"fails, {finished}" if tally.failures else "absorbed, succeeds"


def record(dag: str, fault: str, backend: str, outcome: str, runs: int, checked: str) -> None:
    """One cell of README's "Faults survived" table, appended to ``$LIFECYCLE_FAULTS_REPORT``."""
    path = os.environ.get("LIFECYCLE_FAULTS_REPORT")
    if not path:
        return
    line = {"dag": dag, "fault": fault, "backend": backend, "outcome": outcome, "runs": runs, "checked": checked}
    with open(path, "a") as fh:
        fh.write(json.dumps(line) + "\n")


def backend_of(engine: sa.Engine) -> str:
    """The backend's name as the suite's parameters say it (MariaDB speaks the mysql dialect)."""
    name = engine.url.get_backend_name()
    return "mariadb" if name == "mysql" else name
