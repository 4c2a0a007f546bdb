"""docker-compose.yaml: valid for the compose client, the same Airflow as
requirements.txt, every connection the config names, and no secret that
works without a .env of one's own."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lifecycle.config import load_config

REPO = Path(__file__).resolve().parents[2]


def _compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


CLIENT = _compose_client()
pytestmark = pytest.mark.skipif(CLIENT is None, reason="no docker compose client (Debian package docker-compose)")


def _config(env_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLIENT, "--env-file", str(env_file), "-f", str(REPO / "docker-compose.yaml"), "config"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """The compose file rendered with a .env of freshly generated secrets."""
    env = tmp_path_factory.mktemp("compose") / ".env"
    lines = []
    for line in (REPO / ".env.example").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            lines.append(f"{key}={value or secrets.token_urlsafe(16)}")
    env.write_text("\n".join(lines) + "\n")
    result = _config(env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_services_in_the_pattern_of_airflows_own(rendered):
    services = set(rendered["services"])
    assert {
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-init",
        "postgres",
        "app-postgres",
        "redis",
        "minio",
        "mailpit",
    } <= services
    worker = rendered["services"]["airflow-worker"]
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker["environment"]["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    mounts = {str(v["target"] if isinstance(v, dict) else v.split(":")[1]) for v in worker["volumes"]}
    assert {"/opt/airflow/dags", "/opt/airflow/config"} <= mounts


def test_the_image_is_the_airflow_of_requirements(rendered):
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    for name, service in rendered["services"].items():
        if name.startswith("airflow-"):
            assert service["build"]["args"]["AIRFLOW_VERSION"] == pinned, name
            assert service["image"].endswith(f":{pinned}"), name
    assert "FROM apache/airflow:${AIRFLOW_VERSION}" in (REPO / "deploy" / "Dockerfile").read_text()


def test_every_connection_the_config_names_is_defined(rendered):
    config = load_config()
    wanted = {s.conn_id for s in config.catalog.systems.values()} | {config.notifications.email.conn_id}
    wanted.add(config.recipients.signing.conn_id)
    env = rendered["services"]["airflow-worker"]["environment"]
    defined = {k.removeprefix("AIRFLOW_CONN_").lower() for k in env if k.startswith("AIRFLOW_CONN_")}
    assert wanted <= defined, (
        f"connections named in config/lifecycle but not in docker-compose.yaml: {wanted - defined}"
    )
    variable = config.catalog.model.anonymization.hmac_key_variable
    assert f"AIRFLOW_VAR_{variable.upper()}" in env


def test_no_secret_works_without_your_own_env():
    text = (REPO / "docker-compose.yaml").read_text()
    defaults = re.findall(r"\$\{(\w*(?:PASSWORD|SECRET|KEY|USER)\w*):?-", text)
    assert not defaults, f"secrets with a default value: {defaults}"
    result = _config(REPO / ".env.example")  # the template: every secret empty
    assert result.returncode != 0
    assert re.search(r"set [A-Z_]+ in \.env", result.stderr), result.stderr
