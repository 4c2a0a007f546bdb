"""Every lifecycle DAG, run by ``airflow dags test`` on a generated world over PostgreSQL and moto.

Nothing is handed in: the DAG files read the world's configuration
(``LIFECYCLE_CONFIG_DIR``) and every task opens its stores from the
connections in the environment (``AIRFLOW_CONN_*``), as a deployment's do.
The end state is checked against the same independent oracle as the rest of
the conformance suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conformance import oracle
from tests.conformance.backends import Instance, _admin, create_bucket, delete_bucket, read_back, s3_client, upload
from tests.conformance.lakes import Lake, lake_as_of, left_in_storage
from tests.conformance.timeutil import naive
from tests.conformance.world import World

REPO = Path(__file__).resolve().parents[2]
SEED = 28  # objects under retention (versions, markers, locks), a second schema, consent-based sharing

pytestmark = pytest.mark.airflow


class Airflow:
    """``airflow`` commands in a home of their own (SQLite metadata, migrated once)."""

    def __init__(self, home: Path):
        self.home = home
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIFECYCLE_"))}
        self.env = {
            **base,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PYTHONPATH": str(REPO / "include"),
            "LIFECYCLE_VAR_DIR": str(home / "var"),
        }

    def __call__(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env={**self.env, **(env or {})},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )

    def lifecycle(self, *args: str, env: dict) -> str:
        """``python -m lifecycle ...`` in the same environment; its standard output."""
        result = subprocess.run(
            [sys.executable, "-m", "lifecycle", *args],
            env={**self.env, **env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, f"lifecycle {' '.join(args)}:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
        return result.stdout

    def dags_test(self, dag_id: str, when: datetime, env: dict, conf: dict | None = None) -> str:
        args = ["dags", "test", dag_id, when.isoformat()] + (["--conf", json.dumps(conf)] if conf else [])
        result = self(*args, env=env)
        out = result.stdout + result.stderr
        assert result.returncode == 0, f"{dag_id}: the run did not succeed (airflow dags test)\n{out[-4000:]}"
        return out


@pytest.fixture(scope="module")
def world_env(tmp_path_factory, s3_endpoint):
    """Two copies of the world on PostgreSQL (retention on one; incident, sharing, erasure on the other),
    each with a PostgreSQL state store of its own, and the Airflow home."""
    client = s3_client(s3_endpoint)
    base = World(SEED)
    folder = tmp_path_factory.mktemp(f"dags_w{SEED}")
    r_bucket = Instance.bucket_for("postgresql", SEED, "xr")
    create_bucket(client, r_bucket, base.lock_bucket)
    records: list[dict] = []
    for phase in (0, 1, 2):  # S3 dates objects itself: phases ~1 s apart around the cutoff
        if phase:
            time.sleep(1.1)
        upload(client, r_bucket, base.retention_objects, phase, records)
    versions = read_back(client, r_bucket, records)
    anchor = max(v["last_modified"] for v in versions if v["key"] == base.anchor_key)
    cutoff = datetime.fromtimestamp(anchor.timestamp(), UTC) + timedelta(seconds=base.anchor_delta)
    r_world = World(SEED).materialize(base.object_keep().after(cutoff))
    e_world = World(SEED).materialize(World(SEED).fixed_as_of())
    e_world.time_kind = "aware"  # the erasure world's time columns are timestamptz (the retention one's as drawn)
    instances = {
        "r": Instance(r_world, "postgresql", "xr", folder / "r", s3_endpoint),
        "e": Instance(e_world, "postgresql", "xe", folder / "e", s3_endpoint),
    }
    instances["r"].bucket = r_bucket
    envs, state_databases = {}, []
    for kind, inst in instances.items():
        inst.folder.mkdir(parents=True)
        inst.create()
        inst.write_config()
        with _admin("postgresql").connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{inst.tag}_state"'))
        state_databases.append(f"{inst.tag}_state")
        env = inst.environment()
        env[f"AIRFLOW_CONN_{inst.conn['state'].upper()}"] = json.dumps(
            {
                "conn_type": "generic",
                "extra": {
                    "sqlalchemy_url": inst.url.set(database=f"{inst.tag}_state").render_as_string(hide_password=False)
                },
            }
        )
        env["LIFECYCLE_CONFIG_DIR"] = str(inst.config_dir)
        envs[kind] = env
    client.create_bucket(Bucket=instances["e"].drop_bucket)
    e_versions: list[dict] = []
    if e_world.objects:
        create_bucket(client, instances["e"].bucket, e_world.lock_bucket)
        e_records: list[dict] = []
        upload(client, instances["e"].bucket, e_world.erasure_objects, None, e_records)
        e_versions = read_back(client, instances["e"].bucket, e_records)
    airflow = Airflow(folder / "airflow")
    migrated = airflow("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    for kind, inst in instances.items():
        _add_holds(inst, envs[kind])
    pools = subprocess.run(
        [sys.executable, "-m", "lifecycle", "pools"],
        env={**airflow.env, **envs["e"]},
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    (folder / "pools.json").write_text(pools)
    assert airflow("pools", "import", str(folder / "pools.json")).returncode == 0
    yield {
        "airflow": airflow,
        "instances": instances,
        "envs": envs,
        "client": client,
        "r_versions": versions,
        "e_versions": e_versions,
    }
    for inst in instances.values():
        inst.drop()
        for bucket in (inst.bucket, inst.drop_bucket):
            delete_bucket(client, bucket)
    with _admin("postgresql").connect() as conn:
        for name in state_databases:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _add_holds(inst: Instance, env: dict) -> None:
    """The world's legal holds, through the lifecycle's own state store (as `holds add` puts them)."""
    code = (
        "import sys; from datetime import date; from lifecycle.config import load_config; "
        "from lifecycle.state import StateStore; import json\n"
        "config = load_config(); state = StateStore.for_catalog(config.catalog)\n"
        "for subject, datasets in json.loads(sys.argv[1]):\n"
        "    state.holds.add(subject, reason='conformance hold', datasets=datasets, today=date.fromisoformat(sys.argv[2]))\n"
    )
    holds = json.dumps([[h.subject, h.datasets] for h in inst.world.holds])
    subprocess.run(
        [sys.executable, "-c", code, holds, inst.world.as_of.date().isoformat()],
        env={**os.environ, **env, "PYTHONPATH": str(REPO / "include")},
        check=True,
        cwd=REPO,
    )


def _state_engine(world_env, kind: str) -> sa.Engine:
    inst = world_env["instances"][kind]
    return sa.create_engine(inst.url.set(database=f"{inst.tag}_state"))


def test_retention_expiry_and_lifecycle_checks(world_env):
    airflow, inst, env = world_env["airflow"], world_env["instances"]["r"], world_env["envs"]["r"]
    world = inst.world
    airflow.dags_test("lifecycle_checks", world.as_of, env)
    airflow.dags_test("retention_expiry", world.as_of, env)
    problems = oracle.compare_rows(
        oracle.expected_retention_rows(world), oracle.actual_rows(inst.engine, inst.tables, world), world
    )
    want = oracle.expected_retention_objects(world, world_env["r_versions"], datetime.now(UTC))
    problems += oracle.compare_objects(
        want,
        oracle.actual_objects(world_env["client"], inst.bucket),
        inst.bucket,
        world_env["r_versions"],
        "retention through airflow dags test",
    )
    assert not problems, "\n".join(problems)
    state = _state_engine(world_env, "r")
    with state.connect() as conn:
        plan = json.loads(
            conn.execute(sa.text("SELECT payload FROM lifecycle_ledger WHERE kind = 'retention.plan'")).scalar()
        )
        verified = json.loads(
            conn.execute(sa.text("SELECT payload FROM lifecycle_ledger WHERE kind = 'retention.verify'")).scalar()
        )
    state.dispose()
    assert plan["as_of"] == world.as_of.isoformat(), "the run decided as of its logical date"
    assert verified["ok"] is True


def test_incident_sharing_and_cancellation_erasure(world_env):
    airflow, inst, env = world_env["airflow"], world_env["instances"]["e"], world_env["envs"]["e"]
    world = inst.world
    form = {
        "incident_id": f"INC-{world.seed:04d}",
        "title": "Conformance incident",
        "discovered_at": (max(naive(world.as_of), world.incident["to"]) + timedelta(hours=1)).isoformat() + "Z",
        "occurred_from": world.incident["from"].isoformat() + "Z",
        "occurred_to": world.incident["to"].isoformat() + "Z",
        "cause": "A generated world had an incident.",
        "affected_datasets": world.incident["datasets"],
        "affected_categories": [],
        "impact": "Generated impact.",
        "measures_taken": "Generated measures.",
        "precautions": "Generated precautions.",
        "remedies": "Generated remedies.",
        "channels": ["email"],
        "phase": "initial",
        "dry_run": True,
    }
    airflow.dags_test("incident_notification", world.as_of, env, conf=form)
    state = _state_engine(world_env, "e")
    with state.connect() as conn:
        found = set(conn.execute(sa.text("SELECT subject_id FROM lifecycle_incident_subjects")).scalars())
    assert found == oracle.expected_incident(world)

    airflow.dags_test("sharing_partner", world.as_of, env)
    client, dataset = world_env["client"], world.share[0]
    [key] = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=inst.drop_bucket).get("Contents", [])
        if o["Key"].endswith(f"/{dataset}.jsonl")
    ]
    body = client.get_object(Bucket=inst.drop_bucket, Key=key)["Body"].read().decode("utf-8")
    records = Counter(
        json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False) for line in body.splitlines() if line
    )
    assert records == oracle.expected_sharing(world, "postgresql")

    airflow.dags_test("cancellation_erasure", world.as_of, env)
    with state.connect() as conn:
        states = dict(conn.execute(sa.text("SELECT subject_id, state FROM lifecycle_erasures")).all())
    state.dispose()
    assert {s for s, st in states.items() if st == "done"} == {str(s) for s in oracle.due_subjects(world)}
    problems = oracle.compare_rows(
        oracle.expected_erasure_rows(world), oracle.actual_rows(inst.engine, inst.tables, world), world
    )
    if world.objects:
        want = oracle.expected_erasure_objects(world, world_env["e_versions"], datetime.now(UTC))
        problems += oracle.compare_objects(
            want,
            oracle.actual_objects(client, inst.bucket),
            inst.bucket,
            world_env["e_versions"],
            "erasure through airflow dags test",
        )
    assert not problems, "\n".join(problems)


LAKE_SEED = 0  # an Iceberg table four hops from the subject, a Delta table three hops, erased people in both


@pytest.fixture
def lake_world(world_env, tmp_path, s3_endpoint):
    """A world with lake tables on SQLite and moto S3, as of a moment after their writes (lakes.py)."""
    world = World(LAKE_SEED, lakes=True).materialize(lake_as_of())
    inst = Instance(world, "sqlite", "e", tmp_path / "lake", s3_endpoint)
    for name in ("bucket", "drop_bucket", "lake_bucket"):
        setattr(inst, name, f"{getattr(inst, name)}-dag")
    inst.folder.mkdir(parents=True)
    client = world_env["client"]
    inst.create()
    inst.write_config()
    client.create_bucket(Bucket=inst.drop_bucket)
    if world.objects:
        create_bucket(client, inst.bucket, world.lock_bucket)
        upload(client, inst.bucket, world.erasure_objects, None, [])
    lake = Lake(world, s3_endpoint, inst.lake())
    lake.create(client)
    env = {**inst.environment(), "LIFECYCLE_CONFIG_DIR": str(inst.config_dir)}
    _add_holds(inst, env)
    yield inst, lake, env
    inst.drop()
    for bucket in (inst.bucket, inst.drop_bucket, inst.lake_bucket):
        delete_bucket(client, bucket)


def test_cancellation_erasure_on_lake_tables_certifies_after_the_storage_read(world_env, lake_world):
    """cancellation_erasure through ``airflow dags test`` on a world with an Iceberg and a Delta
    table: the people erased there, the purge in the same run (``purge_after: 0``), storage read
    by pyarrow holding none of them, and each certificate naming the purge and what it read."""
    inst, lake, env = lake_world
    world = inst.world
    world_env["airflow"].dags_test("cancellation_erasure", world.as_of, env)
    state = sa.create_engine(f"sqlite:///{inst.state_path}")
    with state.connect() as conn:
        rows = conn.execute(sa.text("SELECT subject_id, state, certificate FROM lifecycle_erasures")).all()
        purged = [
            json.loads(p)
            for p in conn.execute(sa.text("SELECT payload FROM lifecycle_ledger WHERE kind = 'erasure.purged'"))
            .scalars()
            .all()
        ]
    state.dispose()
    due = {str(s) for s in oracle.due_subjects(world)}
    assert {r.subject_id for r in rows if r.state == "done"} == due and due
    actual = oracle.actual_rows(inst.engine, inst.tables, world)
    actual.update(lake.actual_rows())
    problems = oracle.compare_rows(oracle.expected_erasure_rows(world), actual, world)
    problems += left_in_storage(lake, world, oracle.due_subjects(world), oracle.Owners(world))
    assert not problems, "\n".join(problems)
    assert {p["dataset"] for p in purged} == {t.dataset for t in world.lakes}
    assert all(p["files_read"] > 0 and p["bytes_read"] > 0 for p in purged)

    done = next(r for r in rows if r.state == "done")
    root, _, subject = done.certificate.partition("#")
    batch = json.loads(Path(root).read_text())["batch"]
    shown = world_env["airflow"].lifecycle("certificate", "show", "--batch", batch, "--subject", subject, env=env)
    leaf = json.loads(shown)["leaf"]
    purges = {d["dataset"]: d["purge"] for d in leaf["datasets"] if "purge" in d}
    assert set(purges) == {t.dataset for t in world.lakes}
    assert {p["state"] for p in purges.values()} == {"purged"}
    assert all(p["files_read"] > 0 for p in purges.values())
