"""An Airflow world for end-to-end runs: the embedded defaults in a temp folder.

One per test session: SQLite metadata DB (migrated once), the demo app seeded
into SQLite, moto's S3 server and a mail sink on free ports.  DAGs run in a
child process through ``python -m lifecycle.demo run`` (Airflow's
``dag.test()``), as a user's ``make demo`` does.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa

from lifecycle import devenv
from lifecycle.mailsink import MailSink
from tests.support.s3 import moto_server

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-26"


@dataclass
class AirflowWorld:
    env: dict
    var: Path
    mail: MailSink

    def run(self, *args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args],
            env={**self.env, **(env or {})},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def run_dags(self, *dag_ids: str, as_of: str = AS_OF, env: dict | None = None) -> subprocess.CompletedProcess:
        return self.run("-m", "lifecycle.demo", "run", "--dags", ",".join(dag_ids), "--as-of", as_of, env=env)


def dag_runs(stdout: str) -> list[dict[str, str]]:
    """Each run the demo runner printed, in order: ``{"dag_id", "run" (its state), task id: state, …}``
    from ``<dag id>: <state> in <s>s (run <run id>)`` and the task lines indented below it."""
    runs, current = [], None
    for line in stdout.splitlines():
        header = re.fullmatch(r"(\S+): (\w+) in [\d.]+s \(run .+\)", line)
        if header:
            current = {"dag_id": header[1], "run": header[2]}
            runs.append(current)
        elif current is not None and re.match(r"  \S+ +\S+", line):
            task, state = line.split()[:2]
            current[task] = state
        else:
            current = None
    return runs


def run_id_of(stdout: str, dag_id: str) -> str:
    """The id of the one run of ``dag_id`` the demo runner printed."""
    [run_id] = re.findall(rf"{dag_id}: \w+ in [\d.]+s \(run (.+)\)", stdout)
    return run_id


def asset_events(world: AirflowWorld, dag_id: str, run_id: str) -> dict[str, list[dict]]:
    """The asset events a run emitted, by asset name, from Airflow's metadata database."""
    engine = sa.create_engine(f"sqlite:///{world.var / 'airflow' / 'airflow.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                "WHERE e.source_dag_id = :d AND e.source_run_id = :r ORDER BY e.id"
            ),
            {"d": dag_id, "r": run_id},
        ).all()
    engine.dispose()
    events: dict[str, list[dict]] = {}
    for name, extra in rows:
        events.setdefault(name, []).append(json.loads(extra) if isinstance(extra, str) else extra)
    return events


@pytest.fixture(scope="session")
def airflow_world(tmp_path_factory):
    var = tmp_path_factory.mktemp("var")
    with moto_server() as endpoint, MailSink(folder=var / "mail") as mail:
        overrides = {
            "LIFECYCLE_VAR_DIR": str(var),
            "LIFECYCLE_S3_PORT": str(urlparse(endpoint).port),
            "LIFECYCLE_SMTP_PORT": str(mail.port),
        }
        env = devenv.child_environment(REPO, {**_base_env(), **overrides})
        world = AirflowWorld(env, var, mail)
        pools = world.run("-m", "lifecycle", "pools")
        (var / "pools.json").write_text(pools.stdout)
        for step in (
            ("-m", "airflow", "db", "migrate"),
            ("-m", "airflow", "pools", "import", str(var / "pools.json")),
            # no events in the analytics lake's Iceberg table: these runs' logical dates are before
            # its writes, and an Iceberg purge judges files by when they were written
            # (tests/conformance/test_dags.py runs cancellation_erasure on lake tables)
            ("-m", "lifecycle.demo", "seed", "--users", "120", "--as-of", AS_OF, "--lake-rows", "0"),
        ):
            result = world.run(*step)
            assert result.returncode == 0, f"{' '.join(step)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        yield world


def _base_env() -> dict:
    import os

    # The suite's own AIRFLOW_HOME must not leak into the child: devenv sets its own.
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIFECYCLE_"))}
