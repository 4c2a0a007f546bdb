"""The embedded defaults behind ``make demo`` and ``make up``.

Everything runs on this machine, under one state folder (``<repo>/var``, or
``$LIFECYCLE_VAR_DIR``)::

    var/airflow/    AIRFLOW_HOME: airflow.cfg, airflow.db (SQLite), task logs
    var/app.db      the demo app's database (connection app_db)
    var/state.db    the lifecycle's ledger and registers (connection lifecycle_state)
    var/mail/       every mail the SMTP sink received, one .eml each
    var/run/        pidfiles of the background services
    var/log/        their logs

Background services (detached processes, each in its own process group):

    s3              moto in server mode: S3 at http://127.0.0.1:$LIFECYCLE_S3_PORT (5055)
    mail            lifecycle.mailsink at 127.0.0.1:$LIFECYCLE_SMTP_PORT (1025)
    api-server, scheduler, dag-processor, triggerer   (``start --airflow``)
                    Airflow, UI/API at http://127.0.0.1:$LIFECYCLE_API_PORT (8080)

The *cluster* profile (``LIFECYCLE_PROFILE=cluster``, what ``make cluster``
uses) is the production shape on loopback: Airflow's metadata, the app
database and the state store on PostgreSQL, CeleryExecutor with Redis as the
broker, ``$LIFECYCLE_WORKERS`` (2) Celery workers (services ``worker-1`` ...),
and the FAB auth manager with the roles of ``config/roles.json`` and one user
per role (passwords generated into ``var/airflow/users.json``).  Its settings:

    LIFECYCLE_PG_URL      postgresql://postgres@127.0.0.1:5432   (trust auth, creates the databases)
    LIFECYCLE_DB_PREFIX   lifecycle   -> databases <prefix>_airflow, <prefix>_app, <prefix>_state
    LIFECYCLE_REDIS_URL   redis://127.0.0.1:6379/0
    LIFECYCLE_WORKERS     2

Commands (``python -m lifecycle.devenv ...``)::

    start [--airflow]   start what is not running yet, wait until it answers
    stop                stop every service that has a pidfile
    status              what runs (exit 0 when s3 and mail run, else 3)
    env                 ``export`` lines for the embedded defaults
    run -- CMD ...      run CMD under the embedded defaults (venv bin on PATH)

Python callers get the same values from :func:`environment`.

All keys below are demo values for a loopback-only sandbox; nothing here is
meant for production.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: The repository this module lives in (include/lifecycle/devenv.py -> repo).
REPO = Path(__file__).resolve().parents[2]

HOST = "127.0.0.1"

#: port name -> (environment variable that overrides it, default)
PORTS: dict[str, tuple[str, int]] = {
    "s3": ("LIFECYCLE_S3_PORT", 5055),
    "smtp": ("LIFECYCLE_SMTP_PORT", 1025),
    "api": ("LIFECYCLE_API_PORT", 8080),
}

#: Demo-only secrets.  Loopback sandbox only: never use these anywhere else.
DEMO_HMAC_KEY = "demo-only-hmac-key--NOT-A-SECRET--do-not-use-in-production"
DEMO_SIGNING_KEY = "demo-only-signing-key--NOT-A-SECRET--do-not-use-in-production"

AWS_DEMO_CREDENTIALS = ("testing", "testing")  # moto accepts anything
AWS_REGION = "us-east-1"

CORE_SERVICES = ("s3", "mail")
AIRFLOW_SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")

#: The cluster profile's defaults (see the module docstring).
CLUSTER_DEFAULTS = {
    "LIFECYCLE_PG_URL": "postgresql://postgres@127.0.0.1:5432",
    "LIFECYCLE_DB_PREFIX": "lifecycle",
    "LIFECYCLE_REDIS_URL": "redis://127.0.0.1:6379/0",
    "LIFECYCLE_WORKERS": "2",
}
#: Demo-only secret shared by the cluster's Airflow processes (JWTs between them).
DEMO_JWT_SECRET = "demo-only-jwt-secret--NOT-A-SECRET--do-not-use-in-production"
#: One user per role of config/roles.json (plus an admin); passwords are generated.
CLUSTER_USERS = {"admin": "Admin", "engineer": "DataEngineer", "responder": "IncidentResponder", "auditor": "Auditor"}


class DevenvError(RuntimeError):
    """A service could not be started or stopped; the message says why."""


# -- configuration --------------------------------------------------------------
def ports(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """``{"s3": 5055, "smtp": 1025, "api": 8080}``, overridden by the environment."""
    env = os.environ if env is None else env
    out = {}
    for name, (var, default) in PORTS.items():
        raw = env.get(var, "").strip()
        try:
            out[name] = int(raw) if raw else default
        except ValueError:
            raise DevenvError(f"{var}={raw!r} is not a port number") from None
        if not 0 < out[name] < 65536:
            raise DevenvError(f"{var}={raw!r} is not a port number")
    return out


def cluster_settings(env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The cluster profile's settings, or None when the embedded profile is in use."""
    env = os.environ if env is None else env
    profile = env.get("LIFECYCLE_PROFILE", "embedded").strip() or "embedded"
    if profile not in ("embedded", "cluster"):
        raise DevenvError(f"LIFECYCLE_PROFILE={profile!r}: expected 'embedded' or 'cluster'")
    if profile == "embedded":
        return None
    settings = {k: (env.get(k, "").strip() or default) for k, default in CLUSTER_DEFAULTS.items()}
    if not settings["LIFECYCLE_WORKERS"].isdigit() or not 1 <= int(settings["LIFECYCLE_WORKERS"]) <= 8:
        raise DevenvError(f"LIFECYCLE_WORKERS={settings['LIFECYCLE_WORKERS']!r}: expected 1 to 8")
    if not settings["LIFECYCLE_DB_PREFIX"].replace("_", "").isalnum():
        raise DevenvError(f"LIFECYCLE_DB_PREFIX={settings['LIFECYCLE_DB_PREFIX']!r}: letters, digits and _ only")
    return settings


def cluster_databases(settings: Mapping[str, str]) -> dict[str, str]:
    """``{"airflow": url, "app": url, "state": url}`` (psycopg2 URLs) of the cluster profile."""
    base = settings["LIFECYCLE_PG_URL"].rstrip("/").replace("postgresql://", "postgresql+psycopg2://", 1)
    return {name: f"{base}/{settings['LIFECYCLE_DB_PREFIX']}_{name}" for name in ("airflow", "app", "state")}


def var_dir(repo: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The state folder: ``$LIFECYCLE_VAR_DIR`` or ``<repo>/var`` (absolute)."""
    env = os.environ if env is None else env
    repo = Path(repo) if repo is not None else REPO
    raw = env.get("LIFECYCLE_VAR_DIR", "").strip()
    return Path(raw).resolve() if raw else (repo / "var").resolve()


def _json(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def environment(repo: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The embedded defaults as environment variables (what ``env`` prints).

    ``repo`` defaults to this checkout; ``env`` (default ``os.environ``) is
    only read for the overrides ``LIFECYCLE_VAR_DIR`` and the
    ``LIFECYCLE_*_PORT`` variables.
    """
    repo = (Path(repo) if repo is not None else REPO).resolve()
    env = os.environ if env is None else env
    var = var_dir(repo, env)
    p = ports(env)
    values = {
        **_airflow_environment(repo, var, p["api"], env),
        **_lifecycle_environment(repo, var, env),
        **_connections(var, p),
        **_demo_secrets(),
    }
    cluster = cluster_settings(env)
    if cluster:
        values.update(_cluster_environment(cluster))
    return values


def _airflow_environment(repo: Path, var: Path, api_port: int, env: Mapping[str, str]) -> dict[str, str]:
    """Airflow's own settings: its home, metadata database and API under ``var``, the repo's DAGs and plugins."""
    airflow_home = var / "airflow"
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{api_port}/execution/",
        # LocalExecutor forks `parallelism` workers up front (default 32, ~5 GB RSS);
        # a handful is plenty on SQLite, which serializes writers anyway
        "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
    }


def _lifecycle_environment(repo: Path, var: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Where the lifecycle finds its configuration and keeps its state and mail."""
    return {
        "LIFECYCLE_CONFIG_DIR": env.get("LIFECYCLE_CONFIG_DIR") or str(repo / "config" / "lifecycle"),
        "LIFECYCLE_VAR_DIR": str(var),
        "LIFECYCLE_MAIL_DIR": str(var / "mail"),
    }


def _connections(var: Path, p: Mapping[str, int]) -> dict[str, str]:
    """The Airflow connections (JSON form): the SQLite databases under ``var``, the S3 endpoint, the SMTP sink."""
    return {
        "AIRFLOW_CONN_APP_DB": _json({"conn_type": "sqlite", "host": str(var / "app.db")}),
        "AIRFLOW_CONN_LIFECYCLE_STATE": _json({"conn_type": "sqlite", "host": str(var / "state.db")}),
        "AIRFLOW_CONN_MEDIA_S3": _s3_conn(p["s3"]),
        "AIRFLOW_CONN_PARTNER_S3": _s3_conn(p["s3"]),
        "AIRFLOW_CONN_PUBLIC_S3": _s3_conn(p["s3"]),
        "AIRFLOW_CONN_SMTP_DEFAULT": _smtp_conn(p["smtp"]),
    }


def _s3_conn(port: int) -> str:
    login, password = AWS_DEMO_CREDENTIALS
    return _json(
        {
            "conn_type": "aws",
            "login": login,
            "password": password,
            "extra": {"endpoint_url": f"http://{HOST}:{port}", "region_name": AWS_REGION},
        }
    )


def _smtp_conn(port: int) -> str:
    return _json(
        {
            "conn_type": "smtp",
            "host": HOST,
            "port": port,
            # the smtp provider defaults to SMTP_SSL and STARTTLS; the sink speaks neither
            "extra": {
                "disable_ssl": True,
                "disable_tls": True,
                "from_email": "privacy@mic.example",
                "timeout": 30,
                "retry_limit": 3,
            },
        }
    )


def _demo_secrets() -> dict[str, str]:
    """DEMO-ONLY secrets: the HMAC key (Airflow variable lifecycle_hmac_key) and the
    manifests' signing key (a connection: recipients.yaml signing.conn_id)."""
    return {
        "AIRFLOW_VAR_LIFECYCLE_HMAC_KEY": DEMO_HMAC_KEY,
        "AIRFLOW_CONN_LIFECYCLE_SIGNING": _json({"conn_type": "generic", "password": DEMO_SIGNING_KEY}),
    }


def _cluster_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """What the cluster profile changes: PostgreSQL, Celery on Redis, the FAB auth manager."""
    db = cluster_databases(settings)

    def pg_conn(url: str) -> str:
        u = urllib.parse.urlsplit(url.replace("+psycopg2", ""))
        return _json(
            {
                "conn_type": "postgres",
                "host": u.hostname,
                "port": u.port or 5432,
                "login": u.username or "postgres",
                "password": u.password or "",
                "schema": u.path.lstrip("/"),
            }
        )

    return {
        **settings,
        "LIFECYCLE_PROFILE": "cluster",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db["airflow"],
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "16",
        "AIRFLOW__CELERY__BROKER_URL": settings["LIFECYCLE_REDIS_URL"],
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db["airflow"].replace("+psycopg2", ""),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "AIRFLOW__API_AUTH__JWT_SECRET": DEMO_JWT_SECRET,
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW_CONN_APP_DB": pg_conn(db["app"]),
        "AIRFLOW_CONN_LIFECYCLE_STATE": pg_conn(db["state"]),
    }


def shell_exports(values: Mapping[str, str]) -> str:
    """``export K=V`` lines, quoted for POSIX shells."""
    lines = [
        "# Privacy Lifecycle embedded defaults (python -m lifecycle.devenv env).",
        "# DEMO ONLY: loopback services and demo keys, not for production.",
    ]
    for key, value in values.items():
        if key == "AIRFLOW_VAR_LIFECYCLE_HMAC_KEY":
            lines.append("# demo-only keys: replace with real secrets outside the sandbox")
        lines.append(f"export {key}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


# -- services ---------------------------------------------------------------------
def _venv_bin() -> Path:
    return Path(sys.executable).parent


def _airflow_argv(*args: str) -> list[str]:
    script = _venv_bin() / "airflow"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "airflow", *args]


@dataclass
class Service:
    name: str
    argv: list[str]
    ready: Callable[[], bool]
    port: int | None = None
    port_var: str | None = None
    start_timeout: float = 30.0
    stop_timeout: float = 15.0
    env: dict[str, str] = field(default_factory=dict)


def _http_ok(url: str, timeout: float = 2.0) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, ValueError):
        return None


def _smtp_ok(port: int) -> bool:
    try:
        with smtplib.SMTP(HOST, port, timeout=2) as smtp:
            return smtp.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def _airflow_health(api_port: int) -> dict:
    got = _http_ok(f"http://{HOST}:{api_port}/api/v2/monitor/health")
    if not got or got[0] != 200:
        return {}
    try:
        return json.loads(got[1])
    except ValueError:
        return {}


def _component_healthy(api_port: int, component: str) -> bool:
    return (_airflow_health(api_port).get(component) or {}).get("status") == "healthy"


def services(repo: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> dict[str, Service]:
    """Every service devenv knows, in start order."""
    var = var_dir(repo, env)
    p = ports(env)
    return {
        **_core_services(var, p["s3"], p["smtp"]),
        **_airflow_process_services(p["api"]),
        **_worker_services(var, env),
    }


def _core_services(var: Path, s3: int, smtp: int) -> dict[str, Service]:
    """The local S3 endpoint (moto) and the SMTP sink that keeps each mail under ``var/mail``."""
    return {
        "s3": Service(
            "s3",
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(s3)],
            ready=lambda: (_http_ok(f"http://{HOST}:{s3}/") or (599,))[0] < 500,
            port=s3,
            port_var=PORTS["s3"][0],
        ),
        "mail": Service(
            "mail",
            [
                sys.executable,
                "-m",
                "lifecycle.mailsink",
                "--host",
                HOST,
                "--port",
                str(smtp),
                "--folder",
                str(var / "mail"),
            ],
            ready=lambda: _smtp_ok(smtp),
            port=smtp,
            port_var=PORTS["smtp"][0],
        ),
    }


def _airflow_process_services(api: int) -> dict[str, Service]:
    """Airflow's api-server, then the components its health check reports on.

    --skip-serve-logs: one machine, the api-server reads the log files itself
    (and no log server on 0.0.0.0:8793).
    """
    return {
        "api-server": Service(
            "api-server",
            _airflow_argv("api-server", "--host", HOST, "--port", str(api)),
            ready=lambda: bool(_airflow_health(api)),
            port=api,
            port_var=PORTS["api"][0],
            start_timeout=180.0,
            stop_timeout=30.0,
        ),
        "scheduler": _airflow_component("scheduler", "scheduler", api, "--skip-serve-logs"),
        "dag-processor": _airflow_component("dag-processor", "dag_processor", api),
        "triggerer": _airflow_component("triggerer", "triggerer", api, "--skip-serve-logs"),
    }


def _airflow_component(name: str, component: str, api: int, *args: str) -> Service:
    """``airflow <name> <args>``, ready once the API's health check calls ``component`` healthy."""
    return Service(
        name,
        _airflow_argv(name, *args),
        ready=lambda: _component_healthy(api, component),
        start_timeout=180.0,
        stop_timeout=30.0,
    )


def _worker_services(var: Path, env: Mapping[str, str] | None) -> dict[str, Service]:
    """Celery workers of the cluster profile: ``worker-1`` ... ``worker-N``.

    Each has its own Celery hostname (``worker-N@<host>``); none serves logs
    over HTTP: on one machine the api-server reads the task log files itself.
    """
    cluster = cluster_settings(env)
    if not cluster:
        return {}
    workers = {}
    for n in range(1, int(cluster["LIFECYCLE_WORKERS"]) + 1):
        name = f"worker-{n}"
        log = _logfile(var, name)
        workers[name] = Service(
            name,
            _airflow_argv(
                "celery", "worker", "--concurrency", "2", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"
            ),
            ready=lambda log=log, name=name: _log_says(log, f"{name}@", " ready."),
            start_timeout=120.0,
            stop_timeout=30.0,
        )
    return workers


def _log_says(log: Path, *parts: str) -> bool:
    """Does the last start section of ``log`` hold a line with every one of ``parts``?"""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return False
    section = text.rsplit("\n=== ", 1)[-1]
    return any(all(p in line for p in parts) for line in section.splitlines())


# -- process bookkeeping ------------------------------------------------------------
def _pidfile(var: Path, name: str) -> Path:
    return var / "run" / f"{name}.pid"


def _logfile(var: Path, name: str) -> Path:
    return var / "log" / f"{name}.log"


def _is_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reap(pid: int) -> None:
    """Collect our own exited child (in-process callers), so it is no zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _ours(pid: int, written: float) -> bool:
    """Is ``pid`` a service this devenv started, per a pidfile written at ``written``?

    devenv starts every service as the leader of a new session (so its pid is
    also its session and process-group id) and writes the pidfile right after
    the fork.  Anything else (a recycled pid, pid 1, this process or its
    parent, a pidfile edited by hand) is not ours and is never signalled.
    """
    import psutil

    if pid <= 1 or pid in (os.getpid(), os.getppid()):
        return False
    try:
        if os.getsid(pid) != pid or os.getpgid(pid) != pid:
            return False
        if os.getpgid(pid) == os.getpgid(0):
            return False
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = proc.create_time()
    except (OSError, psutil.Error):
        return False
    return written - 30.0 <= started <= written + 2.0


def running_pid(var: Path, name: str) -> int | None:
    """The pid of a running service, or None (a stale pidfile is removed).

    A pidfile is trusted only if its process is a session leader that started
    within seconds before the file was written (see :func:`_ours`).
    """
    path = _pidfile(var, name)
    try:
        pid = int(path.read_text().split()[0])
        written = path.stat().st_mtime
    except (OSError, ValueError, IndexError):
        if path.exists():
            path.unlink(missing_ok=True)
        return None
    _reap(pid)
    if _ours(pid, written):
        return pid
    path.unlink(missing_ok=True)
    return None


def _group_members(pgid: int) -> list[int]:
    import psutil

    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return members


def _port_in_use(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def child_environment(repo: Path | None = None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` + the embedded defaults, venv bin first on PATH and
    ``include/`` on PYTHONPATH (belt and braces next to the venv's .pth)."""
    base = dict(os.environ if env is None else env)
    repo = (repo or REPO).resolve()
    out = {**base, **environment(repo, base)}
    out["PATH"] = os.pathsep.join([str(_venv_bin()), base.get("PATH", os.defpath)])
    include = str(repo / "include")
    pp = [x for x in base.get("PYTHONPATH", "").split(os.pathsep) if x]
    out["PYTHONPATH"] = os.pathsep.join([include, *[x for x in pp if x != include]])
    out.setdefault("PYTHONUNBUFFERED", "1")
    return out


def _ensure_airflow_db(repo: Path, var: Path, child_env: dict[str, str], say) -> None:
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
    log = _logfile(var, "db-migrate")
    say(f"airflow {' '.join(args)} (log: {log})")
    with open(log, "ab") as fh:
        rc = subprocess.call(
            _airflow_argv(*args),
            cwd=repo,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    if rc != 0:
        raise DevenvError(f"airflow {' '.join(args)} failed (exit {rc}):\n{_tail(log)}")


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


def _grant_access(repo: Path, var: Path, child_env: dict[str, str], say) -> None:
    """Cluster profile: the DAGs serialized, then the roles of config/roles.json
    and one user per role (``python -m lifecycle.access``)."""
    _airflow_step(repo, var, child_env, say, "dags", "reserialize")
    users = cluster_users(var)
    env = {**child_env, **{f"LIFECYCLE_PASSWORD_{name.upper()}": u["password"] for name, u in users.items()}}
    argv = [sys.executable, "-m", "lifecycle.access", "apply", "--roles", str(repo / "config" / "roles.json")]
    for name, user in users.items():
        argv += ["--user", f"{name}:{user['role']}"]
    log = _logfile(var, "db-migrate")
    with open(log, "ab") as fh:
        rc = subprocess.call(argv, cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0:
        raise DevenvError(f"lifecycle.access apply failed (exit {rc}):\n{_tail(log)}")
    say(f"roles and users applied; logins in {var / 'airflow' / 'users.json'}")


def start(
    names: list[str] | tuple[str, ...] = CORE_SERVICES,
    repo: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, int]:
    """Start the named services that are not running; wait until each answers.

    Returns ``{name: pid}`` for all of them.  Idempotent.
    """
    repo = (Path(repo) if repo is not None else REPO).resolve()
    child_env = child_environment(repo, env)
    var = var_dir(repo, child_env)
    known = services(repo, child_env)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DevenvError(f"unknown service(s) {unknown}; known: {list(known)}")
    for sub in ("run", "log", "mail", "airflow"):
        (var / sub).mkdir(parents=True, exist_ok=True)
    if any(n in AIRFLOW_SERVICES for n in names):
        _ensure_airflow_db(repo, var, child_env, say)
    granting = cluster_settings(child_env) is not None and "api-server" in names

    pids: dict[str, int] = {}
    launched: list[tuple[Service, subprocess.Popen]] = []
    for name in names:
        pid = running_pid(var, name)
        if pid:
            say(f"{name}: already running (pid {pid})")
            pids[name] = pid
            continue
        proc = _launch(known[name], repo, var, child_env)
        launched.append((known[name], proc))
        pids[name] = proc.pid

    failures = [failure for svc, proc in launched if (failure := _await_ready(svc, proc, var, say))]
    if failures:
        raise DevenvError("\n".join(failures))
    if granting:
        _grant_access(repo, var, child_env, say)
    return pids


def _launch(svc: Service, repo: Path, var: Path, child_env: dict[str, str]) -> subprocess.Popen:
    """Start ``svc`` detached (its own session and process group), logging to its log file,
    and write its pidfile; refuse a port that something else holds."""
    if svc.port and _port_in_use(svc.port):
        raise DevenvError(
            f"{svc.name}: port {HOST}:{svc.port} is already in use by another process "
            f"(not one this devenv started); stop it or set {svc.port_var} to a free port"
        )
    with open(_logfile(var, svc.name), "ab") as fh:
        fh.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {shlex.join(svc.argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            svc.argv,
            cwd=repo,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # detached: own session and process group
            close_fds=True,
        )
    _pidfile(var, svc.name).write_text(f"{proc.pid}\n")
    return proc


def _await_ready(svc: Service, proc: subprocess.Popen, var: Path, say) -> str | None:
    """Wait until ``svc`` answers; what went wrong if it exited or did not answer in time."""
    deadline = time.monotonic() + svc.start_timeout
    while True:
        if proc.poll() is not None:
            _pidfile(var, svc.name).unlink(missing_ok=True)
            return f"{svc.name}: exited with code {proc.returncode}; {_last_lines(var, svc.name)}"
        if svc.ready():
            where = f" on {HOST}:{svc.port}" if svc.port else ""
            say(f"{svc.name}: started (pid {proc.pid}){where}, log {_logfile(var, svc.name)}")
            return None
        if time.monotonic() > deadline:
            return f"{svc.name}: not answering after {svc.start_timeout:.0f}s; {_last_lines(var, svc.name)}"
        time.sleep(0.25)


def _last_lines(var: Path, name: str) -> str:
    return f"last lines of {_logfile(var, name)}:\n{_tail(_logfile(var, name))}"


def airflow_services(env: Mapping[str, str] | None = None) -> list[str]:
    """The Airflow services of the profile in use (the cluster adds its Celery workers)."""
    cluster = cluster_settings(env)
    workers = [f"worker-{n}" for n in range(1, int(cluster["LIFECYCLE_WORKERS"]) + 1)] if cluster else []
    return [*AIRFLOW_SERVICES, *workers]


def stop(
    names: list[str] | tuple[str, ...] | None = None,
    repo: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> list[str]:
    """Stop the named services (default: every one with a pidfile), whole
    process group each: SIGTERM, then SIGKILL after the service's timeout.
    Removes the pidfiles.  Idempotent.  Returns the names that were stopped."""
    repo = (Path(repo) if repo is not None else REPO).resolve()
    env = dict(os.environ if env is None else env)
    var = var_dir(repo, env)
    known = services(repo, env)
    if names is None:
        names = _with_pidfiles(var, known)
        if not names:
            say("nothing running")
    signalled: list[tuple[str, int, float]] = []
    for name in names:
        pid = running_pid(var, name)
        if pid is None:
            say(f"{name}: not running")
            _pidfile(var, name).unlink(missing_ok=True)
            continue
        try:
            os.killpg(pid, signal.SIGTERM)  # running_pid checked: pid leads its own group
        except ProcessLookupError:
            pass
        timeout = known[name].stop_timeout if name in known else 15.0
        signalled.append((name, pid, time.monotonic() + timeout))

    for name, pid, deadline in signalled:
        _await_exit(name, pid, deadline, say)
        _pidfile(var, name).unlink(missing_ok=True)
        say(f"{name}: stopped (pid {pid})")
    return [name for name, _, _ in signalled]


def _with_pidfiles(var: Path, known: Mapping[str, Service]) -> list[str]:
    """The services with a pidfile, in reverse start order (Airflow first, then the mail
    sink and S3), then any unknown ones by name."""
    run_dir = var / "run"
    present = {p.stem for p in run_dir.glob("*.pid")} if run_dir.is_dir() else set()
    return [n for n in reversed(list(known)) if n in present] + sorted(present - set(known))


def _await_exit(name: str, pid: int, deadline: float, say) -> None:
    """Wait until the process group of ``pid`` is gone; SIGKILL it at ``deadline``."""
    while True:
        _reap(pid)
        left = _group_members(pid) if not _is_alive(pid) else [pid]
        if not left:
            return
        if time.monotonic() > deadline:
            say(f"{name}: still running after SIGTERM, sending SIGKILL")
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            time.sleep(0.5)
            _reap(pid)
            return
        time.sleep(0.2)


def status(repo: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> dict[str, int | None]:
    """``{name: pid or None}`` for every known service."""
    var = var_dir(repo, env)
    return {name: running_pid(var, name) for name in services(repo, env)}


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


# -- CLI ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """The commands of the module docstring; exit status 1 when devenv refuses, with its reason."""
    ap = _parser()
    args = ap.parse_args(argv)
    try:
        if args.cmd == "env":
            sys.stdout.write(shell_exports(environment()))
            return 0
        if args.cmd == "run":
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            if not command:
                ap.error("run: no command given")
            child_env = child_environment()
            os.execvpe(command[0], command, child_env)
        if args.cmd == "start":
            start(list(CORE_SERVICES) + (airflow_services() if args.airflow else []))
            if args.airflow:
                _print_airflow_login()
            return 0
        if args.cmd == "stop":
            stop()
            return 0
        if args.cmd == "status":
            return _print_status()
    except DevenvError as exc:
        print(f"devenv: {exc}", file=sys.stderr)
        return 1
    return 2


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m lifecycle.devenv", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="start the local S3 endpoint and mail sink (and Airflow)")
    p_start.add_argument(
        "--airflow",
        action="store_true",
        help="also start api-server, scheduler, dag-processor, triggerer (and the cluster's workers)",
    )
    sub.add_parser("stop", help="stop everything devenv started")
    sub.add_parser("status", help="show what runs")
    sub.add_parser("env", help="print export lines for the embedded defaults")
    p_run = sub.add_parser("run", help="run a command under the embedded defaults")
    p_run.add_argument("command", nargs=argparse.REMAINDER)
    return ap


def _print_airflow_login() -> None:
    """Where the UI is and how to log in: the cluster's users, or the simple auth manager's admin."""
    api = ports()["api"]
    print(f"Airflow UI: http://{HOST}:{api}/", end="")
    if cluster_settings():
        print(f"  (users {', '.join(CLUSTER_USERS)}; passwords in {var_dir() / 'airflow' / 'users.json'})")
    else:
        login = airflow_login()
        print(f"  (user {login[0]}, password {login[1]})" if login else "")


def _print_status() -> int:
    """Each service's state and log, then the endpoints; 0 when s3 and mail run, else 3."""
    var = var_dir()
    p = ports()
    st = status()
    for name, pid in st.items():
        state = f"running (pid {pid})" if pid else "stopped"
        print(f"{name:14} {state:24} log {_logfile(var, name)}")
    print(
        f"S3 endpoint   http://{HOST}:{p['s3']}   SMTP sink {HOST}:{p['smtp']} "
        f"-> {var / 'mail'}   Airflow http://{HOST}:{p['api']}/"
    )
    return 0 if all(st[n] for n in CORE_SERVICES) else 3


if __name__ == "__main__":
    sys.exit(main())
