"""Bootstrap before Airflow's processes start: its metadata database migrated once (the
cluster profile's PostgreSQL databases created first), and the cluster's roles and users."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from lifecycle.devenv.env import (
    CLUSTER_USERS,
    DevenvError,
    cluster_databases,
    cluster_settings,
    environment,
    logfile,
    tail,
)
from lifecycle.devenv.services import airflow_argv


def ensure_airflow_db(repo: Path, var: Path, child_env: dict[str, str], say) -> None:
    """The Airflow processes must not race to create airflow.cfg (each would
    generate its own secrets): migrate once, synchronously, if needed.  The
    cluster profile first creates its PostgreSQL databases, then migrates the
    FAB auth manager's tables too."""
    home = Path(child_env["AIRFLOW_HOME"])
    cluster = cluster_settings(child_env)
    marker = home / (f".migrated-{cluster['LIFECYCLE_DB_PREFIX']}" if cluster else "airflow.db")
    if (home / "airflow.cfg").exists() and marker.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    steps = [("db", "migrate")]
    if cluster:
        _create_databases(cluster, say)
        steps.append(("fab-db", "migrate"))
    for step in steps:
        _airflow_step(repo, var, child_env, say, *step)
    if cluster:
        marker.write_text("migrated\n")


def _airflow_step(repo: Path, var: Path, child_env: dict[str, str], say, *args: str) -> None:
    log = logfile(var, "db-migrate")
    say(f"airflow {' '.join(args)} (log: {log})")
    with open(log, "ab") as fh:
        rc = subprocess.call(
            airflow_argv(*args),
            cwd=repo,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    if rc != 0:
        raise DevenvError(f"airflow {' '.join(args)} failed (exit {rc}):\n{tail(log)}")


def _create_databases(settings: Mapping[str, str], say) -> None:
    """CREATE DATABASE for each cluster database that does not exist yet."""
    import sqlalchemy as sa

    server = sa.create_engine(
        cluster_databases(settings)["airflow"].rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        with server.connect() as conn:
            for url in cluster_databases(settings).values():
                name = url.rsplit("/", 1)[1]
                if conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                    continue
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # name checked: [A-Za-z0-9_]
                say(f"postgresql: created database {name}")
    except sa.exc.OperationalError as exc:
        raise DevenvError(f"PostgreSQL at LIFECYCLE_PG_URL is not reachable: {exc.orig}") from None
    finally:
        server.dispose()


def cluster_users(var: Path) -> dict[str, dict[str, str]]:
    """``{username: {"role": ..., "password": ...}}`` of the cluster profile,
    generated once into ``var/airflow/users.json`` (mode 0600)."""
    import secrets

    path = var / "airflow" / "users.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    users = {name: {"role": role, "password": secrets.token_urlsafe(12)} for name, role in CLUSTER_USERS.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(users, fh, indent=2)
    return users


def grant_access(repo: Path, var: Path, child_env: dict[str, str], say) -> None:
    """Cluster profile: the DAGs serialized, then the roles of config/roles.json
    and one user per role (``python -m lifecycle access apply``)."""
    _airflow_step(repo, var, child_env, say, "dags", "reserialize")
    users = cluster_users(var)
    env = {**child_env, **{f"LIFECYCLE_PASSWORD_{name.upper()}": u["password"] for name, u in users.items()}}
    argv = [sys.executable, "-m", "lifecycle", "access", "apply", "--roles", str(repo / "config" / "roles.json")]
    for name, user in users.items():
        argv += ["--user", f"{name}:{user['role']}"]
    log = logfile(var, "db-migrate")
    with open(log, "ab") as fh:
        rc = subprocess.call(argv, cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0:
        raise DevenvError(f"python -m lifecycle access apply failed (exit {rc}):\n{tail(log)}")
    say(f"roles and users applied; logins in {var / 'airflow' / 'users.json'}")


def airflow_login(repo: str | os.PathLike | None = None, env: Mapping[str, str] | None = None):
    """``(user, password)`` of the simple auth manager's generated admin, if known."""
    home = Path(environment(repo, env)["AIRFLOW_HOME"])
    path = home / "simple_auth_manager_passwords.json.generated"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if "admin" in data:
        return "admin", data["admin"]
    return next(iter(data.items()), None)
