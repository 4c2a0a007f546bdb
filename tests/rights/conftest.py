"""A world for a person's requests: the demo app's schema and catalog, seeded, with its
buckets on moto's S3 server, a mail sink, and every store reached through an Airflow
connection (as a task reaches it)."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from lifecycle.config import Config, load_config
from lifecycle.demo import generate
from lifecycle.demo.media import ensure_versioned_bucket
from lifecycle.mailsink import MailSink
from lifecycle.state import StateStore
from tests.support.s3 import aws_connection, moto_client

AS_OF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
USERS = 40
REPO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "lifecycle"


@dataclass
class RightsWorld:
    config: Config
    app: sa.Engine
    state: StateStore
    s3: object  # a boto3 client on moto's server
    buckets: dict[str, str]  # system -> bucket
    sink: MailSink
    config_dir: Path
    as_of: datetime = AS_OF

    def reload(self) -> Config:
        """The configuration again, after a test edited a file in ``config_dir``."""
        self.config = load_config(self.config_dir)
        return self.config

    def edit(self, file: str, change) -> Config:
        """Apply ``change(data)`` to one YAML file of the world's configuration and reload."""
        path = self.config_dir / file
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return self.reload()


def _without_lake(folder) -> None:
    """The demo configuration without its analytics lake (its systems, their datasets and the
    rules naming only them): these tests seed the application's database and buckets."""
    catalog = yaml.safe_load((folder / "catalog.yaml").read_text())
    lake = {name for name, system in catalog["systems"].items() if system["type"] in ("iceberg", "delta")}
    gone = {name for name, dataset in catalog["datasets"].items() if dataset.get("system") in lake}
    catalog["systems"] = {n: s for n, s in catalog["systems"].items() if n not in lake}
    catalog["datasets"] = {n: d for n, d in catalog["datasets"].items() if n not in gone}
    (folder / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False, allow_unicode=True))
    retention = yaml.safe_load((folder / "retention.yaml").read_text())
    named = [set(rule["applies_to"].get("datasets") or ()) for rule in retention["rules"]]
    retention["rules"] = [rule for rule, names in zip(retention["rules"], named) if not names or not names <= gone]
    (folder / "retention.yaml").write_text(yaml.safe_dump(retention, sort_keys=False, allow_unicode=True))


@pytest.fixture
def rights_world(engine, tmp_path, monkeypatch, s3_endpoint, connect):
    folder = tmp_path / "config"
    shutil.copytree(REPO_CONFIG, folder)
    catalog = yaml.safe_load((folder / "catalog.yaml").read_text())
    suffix = uuid.uuid4().hex[:8]
    buckets = {}
    for name, system in catalog["systems"].items():
        if system["type"] == "s3":
            system["bucket"] = buckets[name] = f"{system['bucket'][:40]}-{suffix}"
    catalog["reports"] = {"path": str(tmp_path / "reports")}
    (folder / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False, allow_unicode=True))
    _without_lake(folder)  # the rights of SQL and S3 data; tests/rights/test_lake.py has the lake's
    config = load_config(folder)

    s3 = moto_client(s3_endpoint)
    generate.seed(engine, s3, buckets["media"], users=USERS, as_of=AS_OF, seed=3)
    for bucket in buckets.values():
        ensure_versioned_bucket(s3, bucket)
    for conn_id in {s.conn_id for s in config.catalog.systems.values() if s.type == "s3"}:
        connect(conn_id, aws_connection(s3_endpoint))
    connect("app_db", engine.url)
    state_url = sa.URL.create("sqlite", database=str(tmp_path / "state.db"))
    connect("lifecycle_state", state_url)
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", "rights-test-hmac-key-0123456789abcdef")
    monkeypatch.setenv(
        "AIRFLOW_CONN_LIFECYCLE_SIGNING", json.dumps({"conn_type": "generic", "password": "rights-test-signing-key"})
    )
    state_engine = sa.create_engine(state_url)
    state = StateStore(state_engine, dataset_names=set(config.catalog.datasets))
    with MailSink() as sink:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT",
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": sink.port,
                    "extra": {"disable_ssl": True, "disable_tls": True},
                }
            ),
        )
        yield RightsWorld(config, engine, state, s3, buckets, sink, folder)
    state_engine.dispose()
