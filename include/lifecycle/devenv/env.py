"""Environment values of the embedded defaults: ports, the state folder and where each
file lives in it, the Airflow and lifecycle settings, connections and demo keys, the
cluster profile's settings; ``export`` lines and a child process's environment."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from lifecycle.errors import LifecycleError

#: The repository this package lives in (include/lifecycle/devenv/env.py -> repo).
REPO = Path(__file__).resolve().parents[3]

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
#: The Ed25519 private key (base64 of 32 bytes) generated from a fixed seed, so every process
#: of the sandbox signs with the same key and its public key stays the same across restarts.
DEMO_EVIDENCE_KEY = base64.b64encode(hashlib.sha256(b"demo-only-evidence-key--NOT-A-SECRET").digest()).decode("ascii")

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


class DevenvError(LifecycleError):
    """A service could not be started or stopped; the message says why."""


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
    """Airflow's own settings: its home, metadata database and API under ``var``, the repo's dags folder
    (its one file builds the DAGs; the plugin comes through the installed package's entry point)."""
    airflow_home = var / "airflow"
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
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
        "AIRFLOW_CONN_LAKE_CATALOG": _json({"conn_type": "sqlite", "host": str(var / "lake-catalog.db")}),
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
    manifests' signing key (a connection: recipients.yaml signing.conn_id), the Ed25519 key of
    every signed document (a connection: catalog.yaml evidence.signing_conn_id)."""
    return {
        "AIRFLOW_VAR_LIFECYCLE_HMAC_KEY": DEMO_HMAC_KEY,
        "AIRFLOW_CONN_LIFECYCLE_SIGNING": _json({"conn_type": "generic", "password": DEMO_SIGNING_KEY}),
        "AIRFLOW_CONN_LIFECYCLE_EVIDENCE_SIGNING": _json({"conn_type": "generic", "password": DEMO_EVIDENCE_KEY}),
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


# -- a child process's environment and the state folder's files -----------------------
def venv_bin() -> Path:
    return Path(sys.executable).parent


def child_environment(repo: Path | None = None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` + the embedded defaults, venv bin first on PATH and
    ``include/`` on PYTHONPATH (belt and braces next to the venv's .pth)."""
    base = dict(os.environ if env is None else env)
    repo = (repo or REPO).resolve()
    out = {**base, **environment(repo, base)}
    out["PATH"] = os.pathsep.join([str(venv_bin()), base.get("PATH", os.defpath)])
    include = str(repo / "include")
    pp = [x for x in base.get("PYTHONPATH", "").split(os.pathsep) if x]
    out["PYTHONPATH"] = os.pathsep.join([include, *[x for x in pp if x != include]])
    out.setdefault("PYTHONUNBUFFERED", "1")
    return out


def pidfile(var: Path, name: str) -> Path:
    return var / "run" / f"{name}.pid"


def logfile(var: Path, name: str) -> Path:
    return var / "log" / f"{name}.log"


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
