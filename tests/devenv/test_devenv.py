"""The embedded defaults: environment values and the background services."""

from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from lifecycle import devenv
from lifecycle.devenv import processes
from lifecycle.mailsink import read_eml

REPO = Path(__file__).resolve().parents[2]


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def sandbox(tmp_path):
    """A private var dir and non-default ports, as the CLI's environment."""
    s3, smtp, api = _free_ports(3)
    env = {
        **os.environ,
        "LIFECYCLE_VAR_DIR": str(tmp_path / "var"),
        "LIFECYCLE_S3_PORT": str(s3),
        "LIFECYCLE_SMTP_PORT": str(smtp),
        "LIFECYCLE_API_PORT": str(api),
    }
    yield env
    # whatever a failing test left behind: stop it (only our own pidfiles)
    devenv.stop(env=env, say=lambda _m: None)


#: the one entry's subcommand, and the alias the Makefile and docs use
ENTRIES = {"dev": ["-m", "lifecycle", "dev"], "alias": ["-m", "lifecycle.devenv"]}


def _cli(env, *args, check=True, entry="alias") -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, *ENTRIES[entry], *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"devenv {args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_environment_values(tmp_path):
    env = {"LIFECYCLE_VAR_DIR": str(tmp_path / "v"), "LIFECYCLE_S3_PORT": "6000", "LIFECYCLE_SMTP_PORT": "6001"}
    values = devenv.environment("/some/repo", env)
    var = (tmp_path / "v").resolve()
    assert values["AIRFLOW_HOME"] == f"{var}/airflow"
    assert values["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert values["AIRFLOW__CORE__DAGS_FOLDER"] == "/some/repo/dags"
    assert "AIRFLOW__CORE__PLUGINS_FOLDER" not in values  # the plugin comes through the package's entry point
    assert values["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{var}/airflow/airflow.db"
    assert values["LIFECYCLE_CONFIG_DIR"] == "/some/repo/config/lifecycle"
    assert json.loads(values["AIRFLOW_CONN_APP_DB"]) == {"conn_type": "sqlite", "host": f"{var}/app.db"}
    assert json.loads(values["AIRFLOW_CONN_LIFECYCLE_STATE"])["host"] == f"{var}/state.db"
    for name in ("MEDIA_S3", "PARTNER_S3", "PUBLIC_S3"):
        conn = json.loads(values[f"AIRFLOW_CONN_{name}"])
        assert conn["conn_type"] == "aws"
        assert conn["login"] == conn["password"] == "testing"
        assert conn["extra"] == {"endpoint_url": "http://127.0.0.1:6000", "region_name": "us-east-1"}
    smtp = json.loads(values["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert (smtp["conn_type"], smtp["host"], smtp["port"]) == ("smtp", "127.0.0.1", 6001)
    assert smtp["extra"]["disable_ssl"] is True and smtp["extra"]["disable_tls"] is True
    assert "demo" in values["AIRFLOW_VAR_LIFECYCLE_HMAC_KEY"]
    assert "demo" in json.loads(values["AIRFLOW_CONN_LIFECYCLE_SIGNING"])["password"]
    assert "AIRFLOW_VAR_LIFECYCLE_SIGNING_KEY" not in values
    # defaults
    d = devenv.environment("/r", {})
    assert json.loads(d["AIRFLOW_CONN_MEDIA_S3"])["extra"]["endpoint_url"] == "http://127.0.0.1:5055"
    assert json.loads(d["AIRFLOW_CONN_SMTP_DEFAULT"])["port"] == 1025
    assert d["AIRFLOW_HOME"] == "/r/var/airflow"
    assert d["LIFECYCLE_CONFIG_DIR"] == "/r/config/lifecycle"
    assert devenv.environment("/r", {"LIFECYCLE_CONFIG_DIR": "/etc/mine"})["LIFECYCLE_CONFIG_DIR"] == "/etc/mine"
    # the cluster profile: PostgreSQL, Celery on Redis, FAB; a bad setting is named
    c = devenv.environment("/r", {"LIFECYCLE_PROFILE": "cluster", "LIFECYCLE_DB_PREFIX": "x1"})
    assert c["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor" and "FabAuthManager" in c["AIRFLOW__CORE__AUTH_MANAGER"]
    assert c["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("/x1_airflow")
    assert json.loads(c["AIRFLOW_CONN_APP_DB"])["schema"] == "x1_app"
    assert devenv.airflow_services({"LIFECYCLE_PROFILE": "cluster", "LIFECYCLE_WORKERS": "3"})[-1] == "worker-3"
    with pytest.raises(devenv.DevenvError, match="LIFECYCLE_PROFILE"):
        devenv.environment("/r", {"LIFECYCLE_PROFILE": "k8s"})
    with pytest.raises(devenv.DevenvError, match="LIFECYCLE_DB_PREFIX"):
        devenv.environment("/r", {"LIFECYCLE_PROFILE": "cluster", "LIFECYCLE_DB_PREFIX": "a;drop"})
    with pytest.raises(devenv.DevenvError, match="LIFECYCLE_S3_PORT"):
        devenv.environment("/r", {"LIFECYCLE_S3_PORT": "s3"})


@pytest.mark.parametrize("entry", ENTRIES)
def test_env_command_is_shell_evaluable(sandbox, entry):
    expected = devenv.environment(REPO, sandbox)
    out = _cli(sandbox, "env", entry=entry).stdout
    assert "demo" in out.lower()
    script = 'eval "$(cat)"; for k in "$@"; do printf "%s\\0" "${!k}"; done'
    keys = list(expected)
    got = subprocess.run(
        ["bash", "-c", script, "bash", *keys],
        input=out,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        check=True,
    ).stdout.split("\0")[:-1]
    assert dict(zip(keys, got)) == expected


def test_airflow_smtp_connection_reaches_a_sink(monkeypatch):
    """The SMTP_DEFAULT connection's extras really turn off SSL and STARTTLS."""
    from lifecycle.mailsink import MailSink

    with MailSink() as sink:
        values = devenv.environment(REPO, {"LIFECYCLE_SMTP_PORT": str(sink.port)})
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", values["AIRFLOW_CONN_SMTP_DEFAULT"])
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(smtp_conn_id="smtp_default") as hook:
            hook.send_email_smtp(to="bob@example.com", subject="事件通知", html_content="<p>你好</p>")
        [got] = sink.wait_for(1, timeout=10)
    assert got["Subject"] == "事件通知"
    assert got.envelope_to == ["bob@example.com"]
    assert got.envelope_from == "privacy@mic.example"


def test_start_status_stop(sandbox):
    import boto3
    import psutil

    values = devenv.environment(REPO, sandbox)
    var = Path(sandbox["LIFECYCLE_VAR_DIR"])
    s3_port, smtp_port = int(sandbox["LIFECYCLE_S3_PORT"]), int(sandbox["LIFECYCLE_SMTP_PORT"])

    out = _cli(sandbox, "start").stdout
    assert "s3: started" in out and f"127.0.0.1:{s3_port}" in out
    assert "mail: started" in out and f"127.0.0.1:{smtp_port}" in out
    pids = {name: int((var / "run" / f"{name}.pid").read_text()) for name in ("s3", "mail")}
    assert all(psutil.pid_exists(p) for p in pids.values())
    assert (var / "log" / "s3.log").exists() and (var / "log" / "mail.log").exists()

    # idempotent
    again = _cli(sandbox, "start").stdout
    assert "s3: already running" in again and "mail: already running" in again
    status = _cli(sandbox, "status", entry="dev").stdout
    assert f"running (pid {pids['s3']})" in status and f"running (pid {pids['mail']})" in status

    # S3 answers through the MEDIA_S3 connection's settings
    conn = json.loads(values["AIRFLOW_CONN_MEDIA_S3"])
    s3 = boto3.client(
        "s3",
        endpoint_url=conn["extra"]["endpoint_url"],
        region_name=conn["extra"]["region_name"],
        aws_access_key_id=conn["login"],
        aws_secret_access_key=conn["password"],
    )
    s3.create_bucket(Bucket="devenv-test-bucket")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["devenv-test-bucket"]

    # the sink receives and writes a mail
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@mic.example", "b@example.com", "devenv 测试"
    msg.set_content("第一封\n")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
        smtp.send_message(msg)
    deadline = time.monotonic() + 10
    while not list((var / "mail").glob("*.eml")) and time.monotonic() < deadline:
        time.sleep(0.05)
    [eml] = (var / "mail").glob("*.eml")
    assert read_eml(eml)["Subject"] == "devenv 测试"

    # a port taken by someone else is refused with the variable to change
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        other = {
            **sandbox,
            "LIFECYCLE_VAR_DIR": str(var.parent / "other"),
            "LIFECYCLE_S3_PORT": str(blocker.getsockname()[1]),
        }
        refused = _cli(other, "start", check=False)
    finally:
        blocker.close()
    assert refused.returncode == 1
    assert "already in use" in refused.stderr and "LIFECYCLE_S3_PORT" in refused.stderr
    devenv.stop(env=other, say=lambda _m: None)

    # stop: no process, no pidfile, idempotent
    out = _cli(sandbox, "stop").stdout
    assert "s3: stopped" in out and "mail: stopped" in out
    for pid in pids.values():
        alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        assert not alive
        assert processes.group_members(pid) == []
    assert list((var / "run").glob("*.pid")) == []
    assert "nothing running" in _cli(sandbox, "stop", entry="dev").stdout
    assert _cli(sandbox, "status", check=False).returncode == 3
    assert _cli(sandbox, "status", check=False, entry="dev").returncode == 3
    for port in (s3_port, smtp_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_pidfile_of_a_process_we_did_not_start_is_never_signalled(sandbox):
    """A pidfile naming a live process that devenv did not start (a recycled
    pid, or a hand-edited file) is dropped, and that process is left alone."""
    import psutil

    var = Path(sandbox["LIFECYCLE_VAR_DIR"])
    (var / "run").mkdir(parents=True)
    # a session leader like our services, but its pidfile is dated an hour later
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    # not a session leader at all
    child = subprocess.Popen(["sleep", "60"])
    try:
        stale = var / "run" / "s3.pid"
        stale.write_text(f"{other.pid}\n")
        later = time.time() + 3600
        os.utime(stale, (later, later))
        foreign = var / "run" / "mail.pid"
        foreign.write_text(f"{child.pid}\n")
        ours = var / "run" / "scheduler.pid"
        ours.write_text(f"{os.getpid()}\n")

        assert devenv.running_pid(var, "s3") is None
        assert not stale.exists()
        assert devenv.running_pid(var, "mail") is None
        stale.write_text(f"{other.pid}\n")
        os.utime(stale, (later, later))
        foreign.write_text(f"{child.pid}\n")
        assert devenv.stop(env=sandbox, say=lambda _m: None) == []
        assert list((var / "run").glob("*.pid")) == []
        for proc in (other, child):
            assert proc.poll() is None
            assert psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE
    finally:
        for proc in (other, child):
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("entry", ENTRIES)
def test_run_passes_the_embedded_defaults_and_names_a_missing_command_in_one_line(sandbox, entry):
    shown = _cli(sandbox, "run", "--", "sh", "-c", 'echo "$LIFECYCLE_VAR_DIR $AIRFLOW_HOME"', entry=entry).stdout
    var = Path(sandbox["LIFECYCLE_VAR_DIR"]).resolve()
    assert shown.split() == [str(var), str(var / "airflow")]
    missing = _cli(sandbox, "run", "--", "no-such-command-here", check=False, entry=entry)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: dev run: no command 'no-such-command-here' on PATH (the venv's bin comes first)"
    ), missing.stderr


def test_the_package_keeps_its_parts_small():
    """Four jobs in four modules (and the services' definitions): no class over ~250 lines,
    no function over ~60."""
    import ast

    for path in sorted(Path(devenv.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                size = node.end_lineno - node.lineno + 1
                limit = 250 if isinstance(node, ast.ClassDef) else 60
                assert size <= limit, f"{path.name}: {node.name} has {size} lines"
