"""Object retention planned from S3 Inventory (moto's server, inventories written in AWS's
layout): candidates confirmed key by key before they go, about one request an object."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from lifecycle.config import load_config
from lifecycle.errors import ConfigError, LifecycleError
from lifecycle.retention import Retention, unit_group
from lifecycle.state import StateStore
from lifecycle.stores.s3 import S3Store
from tests.config import sample
from tests.support.s3 import aws_connection, write_inventory

PREFIX = "inventories/media/all-versions/"
SQLITE_STATE = pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)  # the state store; S3 is the subject


def _config(tmp_path, bucket: str, inventory_bucket: str, **inventory):
    files = copy.deepcopy(sample.FILES)
    catalog = files["catalog.yaml"]
    catalog["datasets"] = {k: v for k, v in catalog["datasets"].items() if k in ("users", "chat_photos")}
    catalog["datasets"]["chat_photos"]["inventory"] = {"system": "inventories", "prefix": PREFIX, **inventory}
    catalog["systems"]["media"]["bucket"] = bucket
    catalog["systems"]["inventories"] = {"type": "s3", "conn_id": "media_s3", "bucket": inventory_bucket}
    catalog["reports"] = {"path": str(tmp_path / "reports")}
    files["retention.yaml"] = {
        "rules": [{"name": "photos", "applies_to": {"datasets": ["chat_photos"]}, "keep": "400d"}],
        "max_fraction_per_run": 1.0,
    }
    for name in ("cancellation.yaml", "recipients.yaml"):
        files.pop(name)
    return load_config(sample.write(tmp_path / "config", files))


@pytest.fixture
def inventory_format() -> str:
    return "CSV"


@pytest.fixture
def world(s3_store, s3_endpoint, tmp_path, engine, connect, inventory_format):
    """Old photos, an inventory of them, then the bucket changes: one key gets a new version,
    one is deleted, one is new — the inventory does not know."""
    store: S3Store = s3_store
    put = store.client.put_object
    for user in range(1, 7):
        put(Bucket=store.bucket, Key=f"chats/{user}/a b+c.jpg", Body=b"v1")  # a key that needs URL-encoding
        put(Bucket=store.bucket, Key=f"chats/{user}/a b+c.jpg", Body=b"v2")
    store.client.delete_object(Bucket=store.bucket, Key="chats/2/a b+c.jpg")  # a delete marker
    inventory_bucket = f"{store.bucket}-inv"
    store.client.create_bucket(Bucket=inventory_bucket)
    time.sleep(1.5)
    middle = datetime.now(UTC)
    write_inventory(store.client, inventory_bucket, PREFIX, store.bucket, middle, file_format=inventory_format)
    time.sleep(1.5)
    put(Bucket=store.bucket, Key="chats/3/a b+c.jpg", Body=b"v3")  # touched after the inventory: now young
    for version in store.client.list_object_versions(Bucket=store.bucket, Prefix="chats/4/")["Versions"]:
        store.client.delete_object(Bucket=store.bucket, Key=version["Key"], VersionId=version["VersionId"])
    put(Bucket=store.bucket, Key="chats/9/new.jpg", Body=b"n")
    connect("media_s3", aws_connection(s3_endpoint))
    state = StateStore(engine, dataset_names={"users", "chat_photos"})
    return store, inventory_bucket, middle, state


def _run(config, state, as_of, run_id="scheduled__photos"):
    retention = Retention(config, state)
    plan = retention.plan(run_id, as_of)
    results = [retention.apply(unit, run_id, as_of) for unit in retention.gate(plan).get(unit_group("media", 0), [])]
    return retention, plan, results


def _left(store) -> set[str]:
    return {v.key for v in store.list_versions("chats/")}


@SQLITE_STATE
@pytest.mark.parametrize("inventory_format", ["CSV", "Parquet"])
def test_retention_plans_from_the_inventory_and_confirms_each_candidate(world, tmp_path, monkeypatch):
    store, inventory_bucket, middle, state = world
    requests = []
    monkeypatch.setattr(S3Store, "list_versions", _counting(S3Store.list_versions, requests))
    config = _config(tmp_path, store.bucket, inventory_bucket)
    retention, plan, results = _run(config, state, middle + timedelta(days=400))

    photos = plan.dataset("chat_photos")
    assert (photos.total, photos.candidates) == (6, 6), "planned from the inventory: six keys, all old there"
    assert not [r for r in requests if r == "chats/"], "no listing of the dataset's prefix while planning or deleting"
    assert sorted(r for r in requests if r != "chats/") == [f"chats/{u}/a b+c.jpg" for u in (2, 3, 4)], (
        "a key whose newest version is still the inventory's is confirmed by HeadObject alone; "
        "a delete marker, a newer version or nothing there, and that key is listed alone"
    )
    assert _left(store) == {"chats/3/a b+c.jpg", "chats/9/new.jpg"}, (
        "the key touched since the inventory stays; the one not in it is not touched"
    )
    assert [v.key for v in store.list_versions("chats/3/")].count("chats/3/a b+c.jpg") == 3, "every version stays"
    (result,) = results
    assert (result["rows"], result["objects"]) == (9, 4), "versions and markers of the four keys still there"
    assert retention.verify(plan)["chat_photos"]["remaining"] == 0, "verified against the bucket, not the inventory"


@SQLITE_STATE
def test_an_inventory_older_than_max_age_is_not_used(world, tmp_path, monkeypatch):
    store, inventory_bucket, middle, state = world
    requests = []
    monkeypatch.setattr(S3Store, "list_versions", _counting(S3Store.list_versions, requests))
    config = _config(tmp_path, store.bucket, inventory_bucket, max_age="1s")
    time.sleep(1)
    _, plan, _ = _run(config, state, middle + timedelta(days=400))
    assert "chats/" in requests, "listed instead"
    assert plan.dataset("chat_photos").total == 6
    assert _left(store) == {"chats/3/a b+c.jpg", "chats/9/new.jpg"}


@SQLITE_STATE
def test_an_inventory_whose_checksum_does_not_match_fails_the_datasets_unit_naming_it(world, tmp_path):
    store, inventory_bucket, middle, state = world
    folder = f"{PREFIX}{middle:%Y-%m-%dT%H-%MZ}/"
    store.client.put_object(Bucket=inventory_bucket, Key=f"{folder}manifest.checksum", Body=b"0" * 32)
    config = _config(tmp_path, store.bucket, inventory_bucket)
    with pytest.raises(LifecycleError, match=r"chat_photos.*manifest\.checksum"):
        _run(config, state, middle + timedelta(days=400))
    assert len(_left(store)) == 6, "nothing deleted"


@SQLITE_STATE
def test_an_inventory_in_a_format_not_read_fails_the_unit_naming_it_before_anything_is_deleted(world, tmp_path):
    store, inventory_bucket, middle, state = world
    folder = f"{PREFIX}{middle:%Y-%m-%dT%H-%MZ}/"
    key = f"{folder}manifest.json"
    manifest = json.loads(store.client.get_object(Bucket=inventory_bucket, Key=key)["Body"].read())
    body = json.dumps({**manifest, "fileFormat": "ORC"}).encode()
    store.client.put_object(Bucket=inventory_bucket, Key=key, Body=body)
    checksum = hashlib.md5(body).hexdigest().encode()
    store.client.put_object(Bucket=inventory_bucket, Key=f"{folder}manifest.checksum", Body=checksum)
    config = _config(tmp_path, store.bucket, inventory_bucket)
    with pytest.raises(LifecycleError, match=r"chat_photos.*inventory format 'ORC'; CSV and Parquet are read"):
        _run(config, state, middle + timedelta(days=400))
    assert len(_left(store)) == 6, "nothing deleted"


def test_an_inventory_on_a_table_or_in_an_unknown_system_is_refused(tmp_path):
    files = copy.deepcopy(sample.FILES)
    files["catalog.yaml"]["datasets"]["users"]["inventory"] = {"system": "nowhere", "prefix": "x"}
    with pytest.raises(ConfigError) as refused:
        load_config(sample.write(tmp_path / "config", files))
    text = str(refused.value)
    assert "datasets.users.inventory: only an object dataset" in text
    assert "datasets.users.inventory.system: unknown system 'nowhere'" in text
    assert "datasets.users.inventory.prefix: 'x' must end with '/'" in text


def _counting(list_versions, seen: list):
    def counted(self, prefix, **kwargs):
        seen.append(prefix)
        return list_versions(self, prefix, **kwargs)

    return counted
