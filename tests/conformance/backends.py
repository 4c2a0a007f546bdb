"""Where a world lives: a fresh database (and second schema) per instance, buckets, uploads.

Plain SQLAlchemy and boto3; nothing here imports the engine.  An *instance* is
one copy of a world in its own database, bucket and state file: retention
runs on one (``r``), incident, sharing and erasure on another (``e``).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from tests.conformance import traps

SERVER_URLS = {
    "postgresql": os.environ.get(
        "LIFECYCLE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get("LIFECYCLE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
_ADMIN: dict[str, sa.Engine] = {}


def _admin(backend: str) -> sa.Engine:
    if backend not in _ADMIN:
        _ADMIN[backend] = sa.create_engine(sa.make_url(SERVER_URLS[backend]), isolation_level="AUTOCOMMIT")
    return _ADMIN[backend]


def bucket_name(backend: str, seed: int, kind: str) -> str:
    return f"cw-{backend[:2]}-{seed}-{kind}"


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def aws_connection(endpoint: str) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )


# ------------------------------------------------------------------ objects


def create_bucket(client, bucket: str, locked: bool) -> None:
    if locked:
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def upload(client, bucket: str, keys, phase: int | None, records: list[dict]) -> None:
    """Upload every event of ``keys`` in ``phase`` (None: all), in order; append what was written."""
    for k in keys:
        for n, (kind, at, lock) in enumerate(k.events):
            if phase is not None and at != phase:
                continue
            if kind == "marker":
                response = client.delete_object(Bucket=bucket, Key=k.key)
                records.append({"key": k.key, "version_id": response["VersionId"], "marker": True, "lock": None})
                continue
            extra = {}
            if lock == "legal":
                extra["ObjectLockLegalHoldStatus"] = "ON"
            elif lock:
                extra.update(ObjectLockMode=lock[0], ObjectLockRetainUntilDate=lock[1])
            response = client.put_object(Bucket=bucket, Key=k.key, Body=f"{k.key}#{n}".encode(), **extra)
            records.append({"key": k.key, "version_id": response["VersionId"], "marker": False, "lock": lock})


def read_back(client, bucket: str, records: list[dict]) -> list[dict]:
    """Attach each written version's LastModified as S3 lists it."""
    listed = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            listed[(entry["Key"], entry["VersionId"])] = entry["LastModified"]
    return [{**r, "last_modified": listed[(r["key"], r["version_id"])]} for r in records]


def delete_bucket(client, bucket: str) -> None:
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                client.delete_object(
                    Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"], BypassGovernanceRetention=True
                )
        client.delete_bucket(Bucket=bucket)
    except Exception:
        pass  # locked versions keep a bucket; the moto server goes with the session


# ------------------------------------------------------------------ an instance


@dataclass
class Instance:
    world: object
    backend: str
    kind: str  # "r" (retention) | "e" (incident, sharing, erasure)
    folder: Path
    endpoint: str
    url: sa.URL | None = None
    schema: str | None = None
    engine: sa.Engine | None = None
    tables: dict = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return f"cw_{self.backend[:2]}_{self.world.seed}_{self.kind}_{self.token}"

    @staticmethod
    def bucket_for(backend: str, seed: int, kind: str) -> str:
        return bucket_name(backend, seed, kind)

    def __post_init__(self):
        self.token = uuid.uuid4().hex[:6]
        self.conn = {
            "app": f"{self.tag}_app",
            "state": f"{self.tag}_state",
            "s3": f"{self.tag}_s3",
            "signing": f"{self.tag}_sign",
        }
        self.bucket = bucket_name(self.backend, self.world.seed, self.kind)
        self.drop_bucket = bucket_name(self.backend, self.world.seed, self.kind + "d")
        self.lake_bucket = bucket_name(self.backend, self.world.seed, self.kind + "l")
        self.state_path = self.folder / "state.db"
        self.config_dir = self.folder / "config"

    # ---- databases
    def create(self) -> None:
        world, backend = self.world, self.backend
        name = self.tag.lower()
        if backend == "sqlite":
            self.url = sa.URL.create("sqlite", database=str(self.folder / "app.db"))
            self.schema = None
            self.engine = sa.create_engine(self.url)
        else:
            admin = _admin(backend)
            try:
                with admin.connect() as conn:
                    if backend == "postgresql":
                        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                    else:
                        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            except sa.exc.OperationalError as exc:
                reason = f"{backend} not reachable: {str(exc.orig).splitlines()[0]}"
                if os.environ.get("LIFECYCLE_REQUIRE_SERVERS") == "1":
                    pytest.fail(reason)
                pytest.skip(reason)
            self.databases.append(name)
            self.url = admin.url.set(database=name)
            self.engine = sa.create_engine(self.url)
            if world.second_schema:
                if backend == "postgresql":
                    self.schema = world.schema_name
                    with self.engine.begin() as conn:
                        conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
                else:
                    self.schema = f"{name}_s"
                    with admin.connect() as conn:
                        conn.execute(sa.text(f"CREATE DATABASE `{self.schema}` CHARACTER SET utf8mb4"))
                    self.databases.append(self.schema)
        default = self.databases[0] if backend == "mariadb" and self.schema else None
        # retention worlds partition every table that can be, by month, so the drops are checked too
        self.partitioned = world.partitionable(backend) if self.kind == "r" else set()
        meta, self.tables = world.metadata(backend, self.schema, default, self.partitioned)
        # erasure worlds may hold a table outside the lifecycle with a key onto one of ours (traps.py)
        self.outside = world.outside if self.kind == "e" else None
        if self.outside:
            self.outside_table = traps.outside_table(self.outside, meta, self.tables, world, default)
        meta.create_all(self.engine)
        self._partition(backend)
        with self.engine.begin() as conn:
            for t in world.insert_order():
                if t.rows and not t.lake:
                    times = set(traps.time_columns(t))
                    rows = [
                        {c: traps.stored(world.time_kind, v) if c in times else v for c, v in r.items()} for r in t.rows
                    ]
                    conn.execute(self.tables[t.dataset].insert(), rows)
            if self.outside:
                conn.execute(self.outside_table.insert(), [dict(r) for r in self.outside.rows])

    def _partition(self, backend: str) -> None:
        """One range partition per month of each partitioned table's rows, and one open-ended above."""
        quote = self.engine.dialect.identifier_preparer.quote
        with self.engine.begin() as conn:
            for name in sorted(self.partitioned):
                t, table = self.world.tables[name], self.tables[name]
                months = self.world.partition_months(t)
                qualified = self.engine.dialect.identifier_preparer.format_table(table)
                if backend == "postgresql":
                    bounds = [("MINVALUE", f"'{months[0]:%Y-%m-%d}'")] if months else []
                    bounds += [(f"'{a:%Y-%m-%d}'", f"'{b:%Y-%m-%d}'") for a, b in itertools.pairwise(months)]
                    bounds.append((f"'{months[-1]:%Y-%m-%d}'" if months else "MINVALUE", "MAXVALUE"))
                    schema = f"{quote(table.schema)}." if table.schema else ""
                    for i, (low, high) in enumerate(bounds):
                        part = quote(f"{t.table[:40]}_p{i:03d}")
                        conn.execute(
                            sa.text(
                                f"CREATE TABLE {schema}{part} PARTITION OF {qualified} FOR VALUES FROM ({low}) TO ({high})"
                            )
                        )
                else:
                    parts = [f"PARTITION p{i:03d} VALUES LESS THAN ('{m:%Y-%m-%d}')" for i, m in enumerate(months)]
                    parts.append("PARTITION pmax VALUES LESS THAN (MAXVALUE)")
                    conn.execute(
                        sa.text(
                            f"ALTER TABLE {qualified} PARTITION BY RANGE COLUMNS({quote(t.created)}) ({', '.join(parts)})"
                        )
                    )

    def drop(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        if self.backend == "sqlite":
            return
        with _admin(self.backend).connect() as conn:
            if self.backend == "mariadb":
                conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
            for name in reversed(self.databases):
                if self.backend == "postgresql":
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                else:
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))

    # ---- configuration and connections
    def write_config(self, *, refused: bool = False) -> None:
        """``refused``: with the erasure choices validation refuses, where the world drew them."""
        files = self.world.files(
            schema=self.schema,
            conn=self.conn,
            bucket=self.bucket if self.world.objects else None,
            drop_bucket=self.drop_bucket,
            reports=str(self.folder / "reports"),
            refused=refused,
            lake=self.lake() if self.world.lakes else None,
        )
        if getattr(self, "outside", None) and self.outside.cataloged:
            files["catalog.yaml"]["datasets"][self.outside.table] = self.outside.dataset()
        self.config_dir.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (self.config_dir / name).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    def lake(self) -> dict:
        """Where the world's lake tables live: a bucket on moto S3 and the Iceberg SQLite catalog."""
        return {"bucket": self.lake_bucket, "catalog": str(self.folder / "iceberg.db")}

    def environment(self) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` the engine reads, as an Airflow task would."""
        app = self.url.render_as_string(hide_password=False)
        env = {
            self.conn["app"]: app,
            self.conn["state"]: f"sqlite:///{self.state_path}",
            self.conn["s3"]: aws_connection(self.endpoint),
            self.conn["signing"]: json.dumps(
                {"conn_type": "generic", "password": f"signing-key-{self.tag}-0123456789"}
            ),
        }
        out = {f"AIRFLOW_CONN_{k.upper()}": v for k, v in env.items()}
        # the Ed25519 key documents are signed with (catalog evidence.signing_conn_id's default)
        seed = hashlib.sha256(f"evidence-{self.tag}".encode()).digest()
        out["AIRFLOW_CONN_LIFECYCLE_EVIDENCE_SIGNING"] = json.dumps(
            {"conn_type": "generic", "password": base64.b64encode(seed).decode()}
        )
        variable = self.world.hmac_variable or "lifecycle_hmac_key"
        out[f"AIRFLOW_VAR_{variable.upper()}"] = self.world.hmac_key
        return out
