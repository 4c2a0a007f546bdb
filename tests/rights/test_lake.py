"""A person's requests reaching lake tables (Delta on a local path, linked directly and through
SQL orders): an erase is *purging* until the purge ran and a pyarrow oracle, reading every
Parquet file, finds none of the person's rows; access packages carry the person's lake rows."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import boto3
import pyarrow.fs as pafs
import pytest
import sqlalchemy as sa
from deltalake import write_deltalake

from lifecycle.config import load_config
from lifecycle.reports import ReportSink
from lifecycle.rights import SubjectRights
from lifecycle.state import StateStore
from lifecycle.view.overview import build_overview
from tests.config import sample
from tests.stores import lake_world as world

RUN, LATER = "manual__2026-06-01T12:00:00+00:00", "scheduled__2026-06-09T12:00:00+00:00"
PERSON = 1
ORDERS = [n for n in range(1, world.ORDERS + 1) if world.owner_of_order(n) == PERSON]


@pytest.fixture
def lake_rights(tmp_path, connect, s3_endpoint, monkeypatch):
    """(rights, the world's state, the Delta root) with Delta ``purge_after: 7d``."""
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", "lake-rights-test-hmac-key-0123456789")
    bucket = world.connect_world(connect, tmp_path, s3_endpoint)
    connect("lifecycle_signing", json.dumps({"conn_type": "generic", "password": "lake-rights-test-signing-key"}))
    root = tmp_path / "delta"
    for part in range(4):  # four commits, four files: the person's events in each
        write_deltalake(str(root / "events"), world.events().slice(part * 50, 50), mode="append")
    write_deltalake(str(root / "order_events"), world.order_events())
    catalog = world.catalog_data(
        {"type": "delta", "location": str(root), "purge_after": "7d"}, "events", "order_events"
    )
    catalog["systems"]["exports"] = {"type": "s3", "conn_id": "lake_s3", "bucket": bucket}
    catalog["systems"]["state"] = {"type": "sql", "conn_id": "lifecycle_state"}
    catalog["reports"] = {"path": str(tmp_path / "reports")}
    requests = {
        "respond_within": "30d",
        "access": {"delivery": {"system": "exports", "prefix": "access/{request_id}/"}},
        "notify": dict.fromkeys(("erased", "access_ready", "consent_withdrawn", "deletion_request")),
    }
    config = load_config(sample.write(tmp_path / "config", {"catalog.yaml": catalog, "requests.yaml": requests}))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    state = StateStore(engine, dataset_names=set(config.catalog.datasets))
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    yield SubjectRights(config, state), state, root, (s3, bucket)
    engine.dispose()


def _stored(root) -> dict[str, int]:
    """The person's rows in every Parquet file under each table, read by pyarrow alone."""
    fs = pafs.LocalFileSystem()
    return {
        "events": world.oracle(fs, str(root / "events"), "user_id", [PERSON])[0],
        "order_events": world.oracle(fs, str(root / "order_events"), "order_id", ORDERS)[0],
    }


def _take_in(rights, **form) -> str:
    conf = {"subject": str(PERSON), "request_id": "L-1", **form}
    (request_id,) = rights.take_in(rights.parse(conf, RUN), RUN, world.NOW)
    return request_id


def test_an_erase_is_purging_until_the_purge_ran_and_storage_holds_none_of_the_person(lake_rights):
    rights, state, root, _ = lake_rights
    assert _stored(root) == {"events": 20, "order_events": 6}
    request_id = _take_in(rights, kind="erase", categories=["usage"])

    answered = rights.answer(request_id, RUN, world.NOW)
    assert answered["state"] == "purging" and answered["result"]["certificate"] is None
    due = (world.NOW + timedelta(days=7)).date().isoformat()
    assert answered["result"]["purging_until"] == due
    assert state.requests.get(request_id).reason == f"pending purge until {due}"
    assert answered["result"]["datasets"]["events"] == {"action": "delete", "changed": 20}
    assert _stored(root) == {"events": 20, "order_events": 6}, "the rows are still in older files"
    overview = build_overview(rights.config, state, ReportSink(rights.catalog), now=world.NOW + timedelta(days=1))
    assert overview.requests.by_state == {"purging": 1} and overview.requests.open == 1
    assert rights.overdue(world.NOW + timedelta(days=31))[0]["state"] == "purging"

    assert rights.purge(LATER, world.NOW + timedelta(days=6)) == {"requests": 1, "done": 0, "purging": 1}
    again = rights.answer(request_id, LATER, world.NOW + timedelta(days=6))  # a rerun settles, never erases again
    assert again["state"] == "purging" and again["plan"] == answered["plan"]

    # the run's dates are months behind the wall clock the files were removed by
    assert rights.purge(LATER, world.NOW + timedelta(days=8)) == {"requests": 1, "done": 1, "purging": 0}
    assert _stored(root) == {"events": 0, "order_events": 0}
    done = state.requests.get(request_id)
    assert done.state == "done" and done.result["datasets"] == answered["result"]["datasets"]
    certificate = json.loads(open(done.result["certificate"]["location"].removeprefix("file://")).read())
    purges = {d["dataset"]: d["purge"] for d in certificate["datasets"] if "purge" in d}
    assert set(purges) == {"events", "order_events"} and {p["state"] for p in purges.values()} == {"purged"}
    assert purges["events"]["files_removed"] == 4 and purges["events"]["files_read"] >= 1
    assert certificate["completed_at"] == max(p["purged_at"] for p in purges.values())
    assert rights.purge(LATER, world.NOW + timedelta(days=9)) == {"requests": 0, "done": 0, "purging": 0}


def test_access_packages_the_person_lake_rows(lake_rights):
    rights, _, _, (s3, bucket) = lake_rights
    request_id = _take_in(rights, kind="access")
    answered = rights.answer(request_id, RUN, world.NOW)
    assert answered["state"] == "done"
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if o["Key"].endswith(".zip")]
    package = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    rows = {
        name.removeprefix("data/").removesuffix(".jsonl"): [
            json.loads(line) for line in package.read(name).splitlines()
        ]
        for name in package.namelist()
        if name.startswith("data/")
    }
    assert sorted(r["id"] for r in rows["events"]) == [n for n in range(world.EVENTS) if n % world.PEOPLE + 1 == PERSON]
    assert {r["email"] for r in rows["events"]} == {f"user{PERSON}@example.com"}
    assert sorted(r["id"] for r in rows["order_events"]) == sorted(
        f"oe-{n:03d}" for n in range(60) if n % world.ORDERS + 1 in ORDERS
    )
