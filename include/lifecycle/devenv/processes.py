"""Process supervision: detached services with pidfiles, trusted only when the process is
one devenv started; launching, waiting until a service answers, stopping a process group."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from lifecycle.devenv.env import HOST, DevenvError, logfile, pidfile, tail
from lifecycle.devenv.services import Service


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
    path = pidfile(var, name)
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


def group_members(pgid: int) -> list[int]:
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


def launch(svc: Service, repo: Path, var: Path, child_env: dict[str, str]) -> subprocess.Popen:
    """Start ``svc`` detached (its own session and process group), logging to its log file,
    and write its pidfile; refuse a port that something else holds."""
    if svc.port and _port_in_use(svc.port):
        raise DevenvError(
            f"{svc.name}: port {HOST}:{svc.port} is already in use by another process "
            f"(not one this devenv started); stop it or set {svc.port_var} to a free port"
        )
    with open(logfile(var, svc.name), "ab") as fh:
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
    pidfile(var, svc.name).write_text(f"{proc.pid}\n")
    return proc


def await_ready(svc: Service, proc: subprocess.Popen, var: Path, say) -> str | None:
    """Wait until ``svc`` answers; what went wrong if it exited or did not answer in time."""
    deadline = time.monotonic() + svc.start_timeout
    while True:
        if proc.poll() is not None:
            pidfile(var, svc.name).unlink(missing_ok=True)
            return f"{svc.name}: exited with code {proc.returncode}; {last_lines(var, svc.name)}"
        if svc.ready():
            where = f" on {HOST}:{svc.port}" if svc.port else ""
            say(f"{svc.name}: started (pid {proc.pid}){where}, log {logfile(var, svc.name)}")
            return None
        if time.monotonic() > deadline:
            return f"{svc.name}: not answering after {svc.start_timeout:.0f}s; {last_lines(var, svc.name)}"
        time.sleep(0.25)


def last_lines(var: Path, name: str) -> str:
    return f"last lines of {logfile(var, name)}:\n{tail(logfile(var, name))}"


def with_pidfiles(var: Path, known: Mapping[str, Service]) -> list[str]:
    """The services with a pidfile, in reverse start order (Airflow first, then the mail
    sink and S3), then any unknown ones by name."""
    run_dir = var / "run"
    present = {p.stem for p in run_dir.glob("*.pid")} if run_dir.is_dir() else set()
    return [n for n in reversed(list(known)) if n in present] + sorted(present - set(known))


def await_exit(name: str, pid: int, deadline: float, say) -> None:
    """Wait until the process group of ``pid`` is gone; SIGKILL it at ``deadline``."""
    while True:
        _reap(pid)
        left = group_members(pid) if not _is_alive(pid) else [pid]
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
