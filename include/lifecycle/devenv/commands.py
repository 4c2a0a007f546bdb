"""Start, stop, status, env and run: what ``python -m lifecycle dev …`` (alias
``python -m lifecycle.devenv …``) does."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from lifecycle.devenv.bootstrap import airflow_login, ensure_airflow_db, grant_access
from lifecycle.devenv.env import (
    AIRFLOW_SERVICES,
    CLUSTER_USERS,
    CORE_SERVICES,
    HOST,
    REPO,
    DevenvError,
    child_environment,
    cluster_settings,
    environment,
    logfile,
    pidfile,
    ports,
    shell_exports,
    var_dir,
)
from lifecycle.devenv.processes import await_exit, await_ready, launch, running_pid, with_pidfiles
from lifecycle.devenv.services import Service, airflow_services, services


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
        ensure_airflow_db(repo, var, child_env, say)
    granting = cluster_settings(child_env) is not None and "api-server" in names

    pids: dict[str, int] = {}
    launched: list[tuple[Service, subprocess.Popen]] = []
    for name in names:
        pid = running_pid(var, name)
        if pid:
            say(f"{name}: already running (pid {pid})")
            pids[name] = pid
            continue
        proc = launch(known[name], repo, var, child_env)
        launched.append((known[name], proc))
        pids[name] = proc.pid

    failures = [failure for svc, proc in launched if (failure := await_ready(svc, proc, var, say))]
    if failures:
        raise DevenvError("\n".join(failures))
    if granting:
        grant_access(repo, var, child_env, say)
    return pids


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
        names = with_pidfiles(var, known)
        if not names:
            say("nothing running")
    signalled: list[tuple[str, int, float]] = []
    for name in names:
        pid = running_pid(var, name)
        if pid is None:
            say(f"{name}: not running")
            pidfile(var, name).unlink(missing_ok=True)
            continue
        try:
            os.killpg(pid, signal.SIGTERM)  # running_pid checked: pid leads its own group
        except ProcessLookupError:
            pass
        timeout = known[name].stop_timeout if name in known else 15.0
        signalled.append((name, pid, time.monotonic() + timeout))

    for name, pid, deadline in signalled:
        await_exit(name, pid, deadline, say)
        pidfile(var, name).unlink(missing_ok=True)
        say(f"{name}: stopped (pid {pid})")
    return [name for name, _, _ in signalled]


def status(repo: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> dict[str, int | None]:
    """``{name: pid or None}`` for every known service."""
    var = var_dir(repo, env)
    return {name: running_pid(var, name) for name in services(repo, env)}


def cmd_env(args) -> int:
    sys.stdout.write(shell_exports(environment()))
    return 0


def cmd_run(args) -> int:
    """Replace this process with the command, under the embedded defaults."""
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        raise DevenvError("no command given (python -m lifecycle dev run -- CMD ...)")
    try:
        os.execvpe(command[0], command, child_environment())
    except FileNotFoundError:
        raise DevenvError(f"no command {command[0]!r} on PATH (the venv's bin comes first)") from None


def cmd_start(args) -> int:
    start(list(CORE_SERVICES) + (airflow_services() if args.airflow else []))
    if args.airflow:
        _print_airflow_login()
    return 0


def cmd_stop(args) -> int:
    stop()
    return 0


def add_commands(sub) -> None:
    """The devenv commands, as subcommands of ``sub`` (an ``add_subparsers`` result): mounted
    under ``python -m lifecycle dev`` and by the alias ``python -m lifecycle.devenv``."""
    p_start = sub.add_parser("start", help="start the local S3 endpoint and mail sink (and Airflow)")
    p_start.add_argument(
        "--airflow",
        action="store_true",
        help="also start api-server, scheduler, dag-processor, triggerer (and the cluster's workers)",
    )
    p_start.set_defaults(run=cmd_start)
    sub.add_parser("stop", help="stop everything devenv started").set_defaults(run=cmd_stop)
    sub.add_parser("status", help="show what runs (exit 3 unless S3 and the mail sink run)").set_defaults(
        run=lambda args: _print_status()
    )
    sub.add_parser("env", help="print export lines for the embedded defaults").set_defaults(run=cmd_env)
    p_run = sub.add_parser("run", help="run a command under the embedded defaults: run -- CMD ...")
    p_run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    p_run.set_defaults(run=cmd_run)


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
        print(f"{name:14} {state:24} log {logfile(var, name)}")
    print(
        f"S3 endpoint   http://{HOST}:{p['s3']}   SMTP sink {HOST}:{p['smtp']} "
        f"-> {var / 'mail'}   Airflow http://{HOST}:{p['api']}/"
    )
    return 0 if all(st[n] for n in CORE_SERVICES) else 3
