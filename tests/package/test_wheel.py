"""The wheel in a clean venv beside a stock Airflow, as a user adds it to their own deployment.

The wheel is built from this checkout (``pip wheel --no-deps``) and installed into a fresh venv
together with ``apache-airflow`` of the newest supported release (and of the lowest, with
``LIFECYCLE_WHEEL_LOWEST=1``: the two together cost the suite minutes it does not have).  Then, in a project folder outside this repo (the README's one
dags file, a copy of the demo configuration) and a fresh AIRFLOW_HOME: ``airflow db migrate``,
the demo world seeded, the dags folder parsed as the dag-processor does (``airflow dags
reserialize``), ``airflow dags list`` names every DAG the configuration asks for,
``python -m lifecycle.demo run`` runs each once (``dag.test()``, as ``make demo`` does),
``airflow dags test`` runs one through the stock command, and the api-server's app, as
Airflow builds it, answers the Privacy view's routes (the plugin found through its entry
point; the plugins folder is empty).  Nothing of this checkout is on the venv's path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from lifecycle import devenv
from lifecycle.mailsink import MailSink
from tests.support.s3 import moto_server

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-26"
# The supported range's ends (pyproject.toml: apache-airflow>=3.3.0,<4).
NEWEST, LOWEST = "3.3.2", "3.3.0"
DEMO_DAGS = {
    "lifecycle_checks",
    "lifecycle_deadlines",
    "lifecycle_evidence",
    "retention_expiry",
    "cancellation_erasure",
    "subject_request",
    "incident_notification",
    "sharing_push_provider",
    "sharing_payment_institution",
    "sharing_expo_marketing",
    "sharing_dd_acquirer",
}
DAGS_FILE = (REPO / "dags" / "lifecycle.py").read_text()
ROUTES = ("/overview", "/documents?kind=retention", "/coverage", "/incidents", "/public-keys.json")

# In the clean venv: the api-server's app as Airflow builds it (plugins from entry points),
# every caller an admin (the stock SimpleAuthManager's all-admins mode).
PROBE = r"""
import json, sys
import lifecycle
from airflow import plugins_manager
from airflow.api_fastapi.app import create_app
from fastapi.testclient import TestClient
client = TestClient(create_app(), follow_redirects=False)
plugins, _ = plugins_manager._get_plugins()
plugin = next(p for p in plugins if p.name == "privacy_view")
print(json.dumps({
    "package": lifecycle.__file__,
    "source": str(plugin.source),
    "errors": {k: str(v) for k, v in plugins_manager.get_import_errors().items()},
    "routes": {route: client.get("/privacy" + route).status_code for route in sys.argv[1:]},
}))
"""

pytestmark = pytest.mark.airflow


def _run(args: list[str], env: dict, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _last_json(result: subprocess.CompletedProcess):
    """The JSON an Airflow command printed last (its log lines come first on stdout)."""
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)], dict(os.environ), out)
    (built,) = out.glob("privacy_lifecycle-*.whl")
    return built


def _clean_env() -> dict:
    """This process's environment without Airflow's, the lifecycle's or a venv's settings."""
    drop = ("AIRFLOW", "LIFECYCLE_", "PYTHONPATH", "VIRTUAL_ENV", "PYTEST")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _install(wheel: Path, airflow: str, folder: Path) -> tuple[Path, float]:
    """A fresh venv with the wheel and ``apache-airflow==airflow``, resolved from the index as a user's
    install is (uv: seconds from its cache, where pip takes minutes); its bin folder and the seconds it took."""
    started = time.monotonic()
    uv = [sys.executable, "-m", "uv", "--quiet"]
    _run([*uv, "venv", "--python", sys.executable, str(folder)], _clean_env(), folder.parent)
    install = [*uv, "pip", "install", "--python", str(folder / "bin" / "python")]
    _run([*install, str(wheel), f"apache-airflow=={airflow}"], _clean_env(), folder.parent, timeout=900)
    return folder / "bin", time.monotonic() - started


def _project(root: Path) -> Path:
    """A user's project: the README's one dags file and a copy of the demo configuration."""
    (root / "dags").mkdir(parents=True)
    (root / "dags" / "lifecycle.py").write_text(DAGS_FILE)
    shutil.copytree(REPO / "config" / "lifecycle", root / "config" / "lifecycle")
    (root / "plugins").mkdir()
    return root


AIRFLOWS = [
    pytest.param(NEWEST, id=f"airflow-{NEWEST}"),
    pytest.param(
        LOWEST,
        id=f"airflow-{LOWEST}",
        marks=pytest.mark.skipif(
            os.environ.get("LIFECYCLE_WHEEL_LOWEST") != "1",
            reason="the lowest Airflow: LIFECYCLE_WHEEL_LOWEST=1 (the suite's time budget)",
        ),
    ),
]


@pytest.mark.parametrize("airflow", AIRFLOWS)
def test_the_wheel_runs_the_demo_on_a_stock_airflow(wheel, airflow, tmp_path):
    bin_, install_seconds = _install(wheel, airflow, tmp_path / "venv")
    project = _project(tmp_path / "project")
    var = tmp_path / "var"
    with moto_server() as endpoint, MailSink(folder=var / "mail") as mail:
        overrides = {
            "LIFECYCLE_VAR_DIR": str(var),
            "LIFECYCLE_S3_PORT": str(urlparse(endpoint).port),
            "LIFECYCLE_SMTP_PORT": str(mail.port),
        }
        env = {
            **_clean_env(),
            **devenv.environment(project, overrides),
            "PATH": os.pathsep.join([str(bin_), os.environ.get("PATH", os.defpath)]),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        }
        python = str(bin_ / "python")

        def run(*args: str) -> subprocess.CompletedProcess:
            return _run(list(args), env, project)

        run("airflow", "db", "migrate")
        (var / "pools.json").write_text(run(python, "-m", "lifecycle", "pools").stdout)
        run("airflow", "pools", "import", str(var / "pools.json"))
        # no events in the demo's Iceberg table: this run is dated before its writes (tests/airflow/conftest.py)
        run(python, "-m", "lifecycle.demo", "seed", "--users", "120", "--as-of", AS_OF, "--lake-rows", "0")

        run("airflow", "dags", "reserialize")  # the dags folder parsed as the dag-processor does, into the database
        listed = _last_json(run("airflow", "dags", "list", "-o", "json"))
        assert {d["dag_id"] for d in listed} == DEMO_DAGS
        assert {d["fileloc"] for d in listed} == {str(project / "dags" / "lifecycle.py")}
        assert _last_json(run("airflow", "dags", "list-import-errors", "-o", "json")) == []

        started = time.monotonic()
        demo = run(python, "-m", "lifecycle.demo", "run", "--as-of", AS_OF)
        demo_seconds = time.monotonic() - started
        ran = {line.split(":")[0] for line in demo.stdout.splitlines() if " in " in line and "(run " in line}
        assert ran >= DEMO_DAGS, f"not run: {DEMO_DAGS - ran}\n{demo.stdout[-3000:]}"
        assert list((var / "mail").glob("*.eml")), "the demo's DAGs sent no mail"

        started = time.monotonic()
        run("airflow", "dags", "test", "lifecycle_checks", f"{AS_OF}T12:00:00+00:00")
        test_seconds = time.monotonic() - started

        probe = _last_json(run(python, "-c", PROBE, *ROUTES))
    assert probe["package"].startswith(str(tmp_path / "venv")), probe["package"]
    assert probe["source"].startswith("privacy-lifecycle=="), probe["source"]
    assert probe["errors"] == {}
    assert probe["routes"] == dict.fromkeys(ROUTES, 200)
    print(
        f"airflow {airflow}: install {install_seconds:.0f}s, demo run {demo_seconds:.0f}s, "
        f"dags test {test_seconds:.0f}s"
    )
