"""The services devenv knows (the S3 endpoint, the mail sink, Airflow's processes, the
cluster's Celery workers): how each starts and how to tell that it answers."""

from __future__ import annotations

import json
import os
import smtplib
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lifecycle.devenv.env import (
    AIRFLOW_SERVICES,
    HOST,
    PORTS,
    cluster_settings,
    logfile,
    ports,
    var_dir,
    venv_bin,
)


def airflow_argv(*args: str) -> list[str]:
    script = venv_bin() / "airflow"
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
            airflow_argv("api-server", "--host", HOST, "--port", str(api)),
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
        airflow_argv(name, *args),
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
        log = logfile(var, name)
        workers[name] = Service(
            name,
            airflow_argv(
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


def airflow_services(env: Mapping[str, str] | None = None) -> list[str]:
    """The Airflow services of the profile in use (the cluster adds its Celery workers)."""
    cluster = cluster_settings(env)
    workers = [f"worker-{n}" for n in range(1, int(cluster["LIFECYCLE_WORKERS"]) + 1)] if cluster else []
    return [*AIRFLOW_SERVICES, *workers]
