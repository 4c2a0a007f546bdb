"""A real distributed Airflow for tests: devenv's cluster profile in a temp folder.

Scheduler, dag-processor, api-server, triggerer and two Celery workers on
loopback, Airflow's metadata, the app database and the state store on
PostgreSQL (throwaway databases), Redis as the broker (one of its numbered
databases, flushed first), moto's server as S3 and the mail sink as SMTP.
Everything is driven through the REST API as the users of config/roles.json.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from lifecycle import devenv

REPO = Path(__file__).resolve().parents[2]
TERMINAL = {"success", "failed"}


def clean_environ() -> dict[str, str]:
    """The suite's environment without its own Airflow and lifecycle settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIFECYCLE_"))}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class ApiError(AssertionError):
    pass


@dataclass
class Cluster:
    env: dict[str, str]
    var: Path
    users: dict[str, dict[str, str]]
    api: str
    needles: object = None  # tests.support.leaks.Needles, read before any run
    _tokens: dict[str, str] = field(default_factory=dict)

    # -- REST API (/api/v2), as one of the role users ---------------------------------
    def token(self, user: str) -> str:
        if user not in self._tokens:
            status, body = self._http(
                "POST", "/auth/token", {"username": user, "password": self.users[user]["password"]}
            )
            if status not in (200, 201):
                raise ApiError(f"login as {user}: HTTP {status} {body!r}")
            self._tokens[user] = body["access_token"]
        return self._tokens[user]

    def call(self, user: str, method: str, path: str, body=None) -> tuple[int, object]:
        return self._http(method, path, body, {"Authorization": f"Bearer {self.token(user)}"})

    def _http(self, method: str, path: str, body=None, headers=None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api + path, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def trigger(self, user: str, dag_id: str, conf: dict | None = None) -> str:
        status, body = self.call(
            user, "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}}
        )
        if status != 200:
            raise ApiError(f"{user} triggering {dag_id}: HTTP {status} {body!r}")
        return body["dag_run_id"]

    def answer(self, user: str, dag_id: str, run_id: str, task_id: str, option: str, timeout: float = 300) -> dict:
        """Answer a human-in-the-loop task (the standard provider's HITL) once it waits for one."""
        deadline = time.monotonic() + timeout
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
        while time.monotonic() < deadline:
            status, body = self.call(user, "PATCH", path, {"chosen_options": [option], "params_input": {}})
            if status == 200:
                return body
            if status == 403:
                raise ApiError(f"{user} may not answer {dag_id}.{task_id}: {body!r}")
            time.sleep(2)  # not waiting for an answer yet
        raise ApiError(f"{dag_id}.{task_id} never waited for an answer within {timeout:.0f}s")

    def wait(self, runs: dict[str, str], timeout: float = 600) -> dict[str, str]:
        """``{dag_id: run_id}`` -> ``{dag_id: final state}``, polling as the auditor."""
        states: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for dag_id, run_id in runs.items():
                if states.get(dag_id) in TERMINAL:
                    continue
                status, body = self.call("auditor", "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
                if status == 200:
                    states[dag_id] = body["state"]
            if all(states.get(d) in TERMINAL for d in runs):
                return states
            time.sleep(2)
        raise ApiError(f"runs not finished after {timeout:.0f}s: {states}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        status, body = self.call("auditor", "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")
        assert status == 200, body
        return {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in body["task_instances"]}

    # -- what ran where ------------------------------------------------------------------
    def tasks_by_worker(self) -> dict[str, list[str]]:
        """``{worker: ["dag_id/run_id/task_id", ...]}`` from each Celery worker's own log."""
        pattern = re.compile(
            r"Executing workload in Celery: .*?log_path='dag_id=([^/]+)/run_id=([^/]+)/task_id=([^/']+)"
        )
        out = {}
        for log in sorted((self.var / "log").glob("worker-*.log")):
            out[log.stem] = ["/".join(m.groups()) for m in pattern.finditer(log.read_text(errors="replace"))]
        return out

    # -- data ----------------------------------------------------------------------------
    def database(self, name: str) -> sa.Engine:
        return sa.create_engine(devenv.cluster_databases(devenv.cluster_settings(self.env))[name])

    def run(self, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        child = devenv.child_environment(REPO, self.env)
        result = subprocess.run(
            [sys.executable, *args],
            env=child,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        return result


def start_cluster(var: Path, *, as_of: str, config_dir: Path, users: int = 200) -> Cluster:
    """Start everything, seed the demo world, import the pools; the caller stops it."""
    s3, smtp, api = free_ports(3)
    prefix = f"lc_t{uuid.uuid4().hex[:8]}"
    redis_db = random.randint(1, 15)
    env = {
        **clean_environ(),
        "LIFECYCLE_PROFILE": "cluster",
        "LIFECYCLE_VAR_DIR": str(var),
        "LIFECYCLE_CONFIG_DIR": str(config_dir),
        "LIFECYCLE_DB_PREFIX": prefix,
        "LIFECYCLE_REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "LIFECYCLE_S3_PORT": str(s3),
        "LIFECYCLE_SMTP_PORT": str(smtp),
        "LIFECYCLE_API_PORT": str(api),
        # only the runs a test triggers: no scheduled runs beside them
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    _flush_redis(redis_db)
    names = [*devenv.CORE_SERVICES, *devenv.airflow_services(env)]
    cluster = Cluster(env, var, {}, f"http://127.0.0.1:{api}")
    try:
        devenv.start(names, repo=REPO, env=env, say=lambda _m: None)
        cluster.users = devenv.cluster_users(var)
        pools = cluster.run("-m", "lifecycle", "pools")
        (var / "pools.json").write_text(pools.stdout)
        cluster.run("-m", "airflow", "pools", "import", str(var / "pools.json"))
        cluster.run("-m", "lifecycle.demo", "seed", "--users", str(users), "--as-of", as_of)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: Cluster) -> dict[str, int | None]:
    """Stop every process, drop the databases; return what still runs (should be nothing)."""
    devenv.stop(repo=REPO, env=cluster.env, say=lambda _m: None)
    left = {name: pid for name, pid in devenv.status(REPO, cluster.env).items() if pid}
    server = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        for url in devenv.cluster_databases(devenv.cluster_settings(cluster.env)).values():
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    server.dispose()
    return left


def _flush_redis(db: int) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()
