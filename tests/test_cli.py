"""The command line: validate, scan, holds, ledger verify; the one entry's subcommands
(access, dev, demo) and their aliases; a part that is not running named in one line."""

import subprocess
import sys

import pytest
import sqlalchemy as sa

from lifecycle import connections
from lifecycle.cli import main
from tests.config import sample
from tests.stores.test_sql import meta


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """The sample config, an app DB with the sample tables and a state DB, all SQLite."""
    config = sample.write(tmp_path / "config")
    app = tmp_path / "app.db"
    engine = sa.create_engine(f"sqlite:///{app}")
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, created_at DATETIME, address TEXT, amount INTEGER)"
            )
        )
    engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_APP_DB", f"sqlite:///{app}")
    monkeypatch.setenv("AIRFLOW_CONN_LIFECYCLE_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    connections.forget()
    yield ["--config", str(config)], tmp_path
    connections.forget()


def test_validate_prints_a_summary(setup, capsys):
    args, _ = setup
    assert main(args + ["validate"]) == 0
    assert "valid" in capsys.readouterr().out


def test_validate_names_the_connections_this_environment_lacks(setup, capsys):
    args, _ = setup
    assert main(args + ["validate"]) == 0, "without --require-connections a missing connection is reported only"
    out = capsys.readouterr().out
    assert "connections not defined here: " in out and "smtp_default (AIRFLOW_CONN_SMTP_DEFAULT)" in out
    assert "app_db" not in out.split("connections not defined here: ")[1], "app_db is defined by the fixture"
    assert main(args + ["validate", "--require-connections"]) == 1


def test_validate_lists_problems_and_fails(setup, capsys):
    args, tmp = setup
    retention = tmp / "config" / "retention.yaml"
    retention.write_text(retention.read_text().replace("keep: 3y", "keep: 30d"))
    assert main(args + ["validate"]) == 1
    out = capsys.readouterr().out
    assert (
        "retention.yaml: rules[1].keep: 30d is shorter than the statutory minimum 3y (orders: PRC E-Commerce Law art. 31)"
        in out
    )


def test_scan_clean_and_dirty(setup, capsys):
    args, tmp = setup
    assert main(args + ["scan"]) == 0
    assert "every table and column is classified" in capsys.readouterr().out
    engine = sa.create_engine(f"sqlite:///{tmp / 'app.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE orders ADD COLUMN coupon TEXT"))
    engine.dispose()
    assert main(args + ["scan"]) == 1
    assert "app_db: orders.coupon: not classified" in capsys.readouterr().out


def test_scan_lists_a_personal_false_table_s_columns_for_information_only(setup, capsys):
    import yaml

    args, tmp = setup
    catalog = tmp / "config" / "catalog.yaml"
    model = yaml.safe_load(catalog.read_text())
    model["datasets"]["audit_events"] = {"system": "app_db", "table": "audit_events", "personal": False}
    catalog.write_text(yaml.safe_dump(model, sort_keys=False))
    engine = sa.create_engine(f"sqlite:///{tmp / 'app.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE audit_events (kind TEXT, note TEXT, at DATETIME)"))
    engine.dispose()
    assert main(args + ["scan"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "informational (not findings):",
        "  app_db: audit_events: personal: false; columns not classified (informational): at, kind, note",
        "scan: every table and column is classified",
    ]


def test_holds_and_ledger(setup, capsys):
    args, tmp = setup
    assert main(args + ["holds", "add", "--subject", "42", "--reason", "litigation", "--datasets", "orders,users"]) == 0
    assert main(args + ["holds", "list"]) == 0
    out = capsys.readouterr().out
    assert "subject 42\torders,users" in out and "1 active hold(s)" in out
    assert main(args + ["holds", "add", "--subject", "43", "--reason", "x", "--datasets", "ordrs"]) == 1
    assert "unknown dataset(s) ['ordrs']" in capsys.readouterr().err
    assert main(args + ["holds", "remove", "--subject", "42"]) == 0
    assert main(args + ["ledger", "verify"]) == 0
    assert "ledger: 2 entries, chain intact" in capsys.readouterr().out
    engine = sa.create_engine(f"sqlite:///{tmp / 'state.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE lifecycle_ledger SET payload = '{}' WHERE seq = 1"))
    engine.dispose()
    assert main(args + ["ledger", "verify"]) == 1
    assert "entry 1: content does not match its hash (edited)" in capsys.readouterr().out


def test_module_entry_point_exits_non_zero_on_bad_config(tmp_path):
    config = sample.write(tmp_path)
    (config / "incidents.yaml").write_text("email: {from: x}\nlocales: []\napproval: maybe\n")
    result = subprocess.run(
        [sys.executable, "-m", "lifecycle", "--config", str(config), "validate"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "incidents.yaml: approval: 'maybe': Input should be 'required' or 'none'" in result.stdout
    assert "incidents.yaml: contact: required key is missing" in result.stdout


def test_a_missing_connection_is_named_not_a_traceback(setup, capsys, monkeypatch):
    args, _ = setup
    monkeypatch.delenv("AIRFLOW_CONN_LIFECYCLE_STATE")
    assert main(args + ["holds", "list"]) == 1
    err = capsys.readouterr().err
    assert "connection 'lifecycle_state' is not defined" in err and "AIRFLOW_CONN_LIFECYCLE_STATE" in err
    assert "Traceback" not in err


def test_plan_decides_as_of_the_instant_given(setup, capsys, monkeypatch, s3_endpoint, request):
    from tests.support.s3 import aws_connection, moto_client

    args, _ = setup
    monkeypatch.setenv("AIRFLOW_CONN_MEDIA_S3", aws_connection(s3_endpoint))
    connections.s3_client.cache_clear()
    request.addfinalizer(connections.s3_client.cache_clear)  # no client to this endpoint outlives the test
    s3 = moto_client(s3_endpoint)
    if "mic-buyer-media" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket="mic-buyer-media")
    assert main(args + ["plan", "--as-of", "2026-06-01T12:00:00Z"]) == 0
    assert "retention plan as of 2026-06-01T12:00:00+00:00" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(args + ["plan", "--as-of", "tomorrow"])
    assert "not an ISO date" in capsys.readouterr().err


# ---------------------------------------------------------------- failures: one line, not a traceback


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_plan_on_a_database_that_does_not_exist_says_so_in_one_line(setup, capsys, monkeypatch, s3_endpoint, request):
    from tests.conftest import SERVER_URLS
    from tests.support.s3 import aws_connection

    args, _ = setup
    missing = sa.make_url(SERVER_URLS["postgresql"]).set(database="lifecycle_no_such_database")
    monkeypatch.setenv("AIRFLOW_CONN_APP_DB", missing.render_as_string(hide_password=False))
    monkeypatch.setenv("AIRFLOW_CONN_MEDIA_S3", aws_connection(s3_endpoint))
    connections.s3_client.cache_clear()
    request.addfinalizer(connections.s3_client.cache_clear)
    assert main(args + ["plan"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: plan: ") and "system 'app_db'" in line, line
    assert 'database "lifecycle_no_such_database" does not exist' in line and "[SQL:" not in line


def test_plan_on_tables_that_are_missing_says_so_in_one_line(setup, capsys, monkeypatch, s3_endpoint, request):
    from tests.support.s3 import aws_connection

    args, tmp = setup
    monkeypatch.setenv("AIRFLOW_CONN_APP_DB", f"sqlite:///{tmp / 'empty.db'}")
    monkeypatch.setenv("AIRFLOW_CONN_MEDIA_S3", aws_connection(s3_endpoint))
    connections.s3_client.cache_clear()
    request.addfinalizer(connections.s3_client.cache_clear)
    assert main(args + ["plan"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: plan: ") and "'access_logs'" in line and "does not exist" in line, line


def test_a_sql_error_names_the_command_and_system_not_the_rows(setup, capsys):
    args, tmp = setup
    engine = sa.create_engine(f"sqlite:///{tmp / 'state.db'}")
    assert main(args + ["holds", "add", "--subject", "42", "--reason", "litigation"]) == 0
    with engine.begin() as conn:  # a state table someone altered by hand
        conn.execute(sa.text("ALTER TABLE lifecycle_legal_holds RENAME COLUMN reason TO why"))
    engine.dispose()
    capsys.readouterr()
    assert main(args + ["holds", "list"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: holds list: system 'state' (connection 'lifecycle_state'): "), line
    assert "reason" in line and "litigation" not in line and "[SQL:" not in line


def test_holds_list_with_an_unreachable_state_store(setup, capsys, monkeypatch):
    args, _ = setup
    monkeypatch.setenv("AIRFLOW_CONN_LIFECYCLE_STATE", "postgresql://postgres@127.0.0.1:1/state")
    assert main(args + ["holds", "list"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: holds list: system 'state' (connection 'lifecycle_state'): "), line
    assert "the database at postgresql://postgres@127.0.0.1:1/state is not answering: start it" in line, line


def test_debug_shows_the_traceback(setup, capsys, monkeypatch):
    args, _ = setup
    monkeypatch.setenv("AIRFLOW_CONN_LIFECYCLE_STATE", "postgresql://postgres@127.0.0.1:1/state")
    assert main(["--debug"] + args + ["holds", "list"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "OperationalError" in err


def test_module_entry_point_prints_one_line_on_a_database_error(tmp_path):
    import os

    config = sample.write(tmp_path / "config")
    env = dict(os.environ, AIRFLOW_CONN_LIFECYCLE_STATE="postgresql://postgres@127.0.0.1:1/state")
    command = [sys.executable, "-m", "lifecycle", "--config", str(config), "ledger", "verify"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1
    assert _one_line(result.stderr).startswith("error: ledger verify: system 'state'")
    debug = subprocess.run(
        command[:3] + ["--debug"] + command[3:], capture_output=True, text=True, timeout=120, env=env
    )
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


# ---------------------------------------------------------------- a part that is not running


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sandbox(tmp_path, **ports) -> dict:
    """The environment of a user's shell after ``make down``: own state folder and ports, nothing running."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIFECYCLE_"))}
    env.update(
        LIFECYCLE_VAR_DIR=str(tmp_path / "var"),
        LIFECYCLE_S3_PORT=str(ports.get("s3") or _free_port()),
        LIFECYCLE_SMTP_PORT=str(ports.get("smtp") or _free_port()),
        LIFECYCLE_API_PORT=str(_free_port()),
    )
    return env


def test_seeding_the_demo_after_make_down_names_the_s3_endpoint_and_how_to_start_it(tmp_path):
    env = _sandbox(tmp_path)
    command = ["-m", "lifecycle.demo", "seed", "--users", "10", "--reset"]
    for entry in (
        ["-m", "lifecycle.devenv", "run", "--", sys.executable],
        ["-m", "lifecycle", "dev", "run", "--", sys.executable],
    ):
        result = subprocess.run(
            [sys.executable, *entry, *command], capture_output=True, text=True, timeout=120, env=env
        )
        assert result.returncode == 1, result.stdout + result.stderr
        line = _one_line(result.stderr)
        assert line == (
            f"error: demo seed: the embedded S3 endpoint (moto) at http://127.0.0.1:{env['LIFECYCLE_S3_PORT']} "
            "is not running: start it with `make up` (or `make demo`)"
        ), line
    assert not (tmp_path / "var" / "app.db").exists(), "asked before anything was reset or written"


def test_running_the_demo_dags_without_the_mail_sink_names_it_before_any_dag_runs(
    tmp_path, s3_endpoint, monkeypatch, capsys
):
    from urllib.parse import urlparse

    from lifecycle import devenv

    env = _sandbox(tmp_path, s3=urlparse(s3_endpoint).port)
    for key, value in {**env, **devenv.environment(env=env)}.items():
        if key.startswith(("AIRFLOW", "LIFECYCLE_")):
            monkeypatch.setenv(key, value)
    connections.forget()
    assert main(["demo", "run", "--dags", "retention_expiry", "--log", str(tmp_path / "run.log")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == (
        f"error: demo run: the embedded mail sink at 127.0.0.1:{env['LIFECYCLE_SMTP_PORT']} is not running: "
        "start it with `make up` (or `make demo`)"
    ), line
    assert not (tmp_path / "run.log").exists(), "no DAG ran"


def test_an_s3_endpoint_that_stops_answering_mid_command_is_named_in_one_line(setup, capsys, monkeypatch, request):
    import json

    args, _ = setup
    port = _free_port()
    conn = {"conn_type": "aws", "login": "testing", "password": "testing"}
    conn["extra"] = {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"}
    monkeypatch.setenv("AIRFLOW_CONN_MEDIA_S3", json.dumps(conn))
    connections.s3_client.cache_clear()
    request.addfinalizer(connections.s3_client.cache_clear)
    assert main(args + ["manifest", "verify", "s3://mic-buyer-media/push/manifest.json"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == (
        f"error: manifest verify: the S3 endpoint at http://127.0.0.1:{port} is not answering: "
        "start it, or point its connection at one that runs"
    ), line


def test_a_mail_server_that_refuses_the_connection_is_named():
    import json
    import os

    from lifecycle import reach
    from lifecycle.errors import LifecycleError
    from lifecycle.mail import Mailer

    port = _free_port()
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": {"disable_ssl": True, "disable_tls": True}}
    os.environ["AIRFLOW_CONN_REACH_TEST_SMTP"] = json.dumps(conn)
    try:
        with pytest.raises(LifecycleError) as refused, Mailer("reach_test_smtp", "privacy@mic.example"):
            pass
    finally:
        del os.environ["AIRFLOW_CONN_REACH_TEST_SMTP"]
    assert reach.explain(refused.value) == (
        f"the mail server at 127.0.0.1:{port} is not answering: start it, or point its connection at one that runs"
    )
    assert reach.explain(ValueError("no part")) is None


# ---------------------------------------------------------------- one entry, and its aliases


def test_the_aliases_run_the_one_entry_s_subcommands(tmp_path):
    env = _sandbox(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "lifecycle", "access", "apply", "--roles", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2 and "missing.json: cannot read the roles file" in result.stderr, result.stderr
    printed = [
        subprocess.run([sys.executable, *argv, "env"], capture_output=True, text=True, timeout=60, env=env).stdout
        for argv in (["-m", "lifecycle", "dev"], ["-m", "lifecycle.devenv"])
    ]
    assert printed[0] == printed[1] and f"LIFECYCLE_VAR_DIR={tmp_path / 'var'}" in printed[0]
    helps = [
        subprocess.run([sys.executable, *argv, "--help"], capture_output=True, text=True, timeout=60, env=env).stdout
        for argv in (["-m", "lifecycle", "demo"], ["-m", "lifecycle.demo"])
    ]
    assert helps[0] == helps[1] and "seed" in helps[0] and "run" in helps[0]
