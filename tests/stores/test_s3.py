"""The S3 store against a real S3 API: moto in server mode over HTTP."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from lifecycle.errors import TerminalStoreError
from lifecycle.stores.contract import Anonymizing, anonymizing
from lifecycle.stores.s3 import (
    MAX_KEYS_PER_DELETE,
    ObjectLock,
    ObjectVersion,
    S3Store,
)
from tests.support.s3 import moto_client


def _put(store: S3Store, key: str, body: bytes = b"x", **kwargs) -> str:
    return store.client.put_object(Bucket=store.bucket, Key=key, Body=body, **kwargs)["VersionId"]


def _delete_marker(store: S3Store, key: str) -> str:
    """Delete without a version id: in a versioned bucket this only adds a marker."""
    response = store.client.delete_object(Bucket=store.bucket, Key=key)
    assert response["DeleteMarker"]
    return response["VersionId"]


def _ids(versions) -> set[tuple[str, str]]:
    return {(v.key, v.version_id) for v in versions}


def test_list_versions_returns_every_version_and_marker_under_prefix(s3_store):
    a1 = _put(s3_store, "p/a", b"one")
    a2 = _put(s3_store, "p/a", b"three")
    b1 = _put(s3_store, "p/b")
    b_marker = _delete_marker(s3_store, "p/b")
    c1 = _put(s3_store, "p/c/d")
    _put(s3_store, "q/a")
    _put(s3_store, "pp/a")  # shares the string prefix "p" but not "p/"

    listed = {(v.key, v.version_id): v for v in s3_store.list_versions("p/")}

    assert set(listed) == {
        ("p/a", a1),
        ("p/a", a2),
        ("p/b", b1),
        ("p/b", b_marker),
        ("p/c/d", c1),
    }
    assert listed[("p/a", a1)].size == 3 and not listed[("p/a", a1)].is_latest
    assert listed[("p/a", a2)].size == 5 and listed[("p/a", a2)].is_latest
    marker = listed[("p/b", b_marker)]
    assert marker.is_delete_marker and marker.is_latest and marker.size == 0
    assert not listed[("p/b", b1)].is_delete_marker and not listed[("p/b", b1)].is_latest
    assert all(v.last_modified.utcoffset() == timedelta(0) for v in listed.values())


def test_listed_timestamps_are_those_botocores_own_parser_gives(s3_store):
    _put(s3_store, "t/a")
    _put(s3_store, "t/a")
    plain = moto_client(s3_store.client.meta.endpoint_url)  # botocore's own timestamp parser
    response = plain.list_object_versions(Bucket=s3_store.bucket, Prefix="t/")
    expected = {v["VersionId"]: v["LastModified"] for v in response["Versions"]}
    listed = {v.version_id: v.last_modified for v in s3_store.list_versions("t/")}
    assert listed == expected and len(listed) == 2


def test_list_versions_older_than_filters_on_last_modified(s3_store):
    _put(s3_store, "o/1")
    _put(s3_store, "o/2")
    time.sleep(1.1)  # S3 timestamps have second resolution
    _put(s3_store, "o/3")
    _delete_marker(s3_store, "o/1")
    everything = list(s3_store.list_versions("o/"))
    newer = [v for v in everything if v.key == "o/3" or v.is_delete_marker]
    cutoff = min(v.last_modified for v in newer)

    older = list(s3_store.list_versions("o/", older_than=cutoff))

    assert _ids(older) == _ids(everything) - _ids(newer)
    assert {v.key for v in older} == {"o/1", "o/2"}
    assert not any(v.is_delete_marker for v in older)
    far_future = cutoff + timedelta(days=1)
    assert _ids(s3_store.list_versions("o/", older_than=far_future)) == _ids(everything)
    assert list(s3_store.list_versions("o/", older_than=cutoff - timedelta(days=1))) == []


def test_list_versions_refuses_naive_cutoff(s3_store):
    with pytest.raises(ValueError, match="timezone-aware"):
        list(s3_store.list_versions("o/", older_than=datetime(2024, 1, 1)))


def test_delete_versions_removes_every_version_and_marker(s3_store):
    for key in ("d/a", "d/a", "d/b", "d/c"):
        _put(s3_store, key)
    _delete_marker(s3_store, "d/b")
    _delete_marker(s3_store, "d/b")  # a marker on a marker
    _put(s3_store, "keep/a")
    versions = list(s3_store.list_versions("d/"))
    assert len(versions) == 6

    outcome = s3_store.delete_versions(versions)

    assert outcome.errors == []
    assert outcome.requests == 1
    assert _ids(outcome.deleted) == _ids(versions)
    assert list(s3_store.list_versions("d/")) == []
    assert [v.key for v in s3_store.list_versions("keep/")] == ["keep/a"]


def test_delete_versions_chunks_at_most_1000_keys_per_request(s3_store):
    # 250 objects and nine delete markers on each (a delete on a deleted key adds
    # another, as S3 does): 2,500 entries for a tenth of the PUTs.
    keys = [f"bulk/{i:05d}" for i in range(250)]
    for key in keys:
        _put(s3_store, key, b"")
    for _ in range(9):
        s3_store.client.delete_objects(
            Bucket=s3_store.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
    versions = list(s3_store.list_versions("bulk/"))
    assert len(versions) == 2500
    assert sum(v.is_delete_marker for v in versions) == 2250

    keys_per_request: list[int] = []

    def count_keys(params, **_):
        root = ET.fromstring(params["body"])
        keys_per_request.append(sum(1 for el in root if el.tag.endswith("Object")))

    s3_store.client.meta.events.register("before-call.s3.DeleteObjects", count_keys)
    outcome = s3_store.delete_versions(versions)

    assert outcome.requests == 3
    assert keys_per_request == [MAX_KEYS_PER_DELETE, MAX_KEYS_PER_DELETE, 500]
    assert outcome.errors == []
    assert _ids(outcome.deleted) == _ids(versions)
    assert list(s3_store.list_versions("bulk/")) == []


def test_delete_versions_reports_locked_versions_and_deletes_the_rest(locked_s3_store):
    # moto refuses a versioned delete of a version under COMPLIANCE retention or
    # legal hold with a per-key AccessDenied, as S3 does; its error entries carry
    # the key but no VersionId, so the store matches them by key.
    store = locked_s3_store
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    free = [_put(store, "a/free"), _put(store, "a/free")]
    comp = _put(store, "a/comp", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
    hold = _put(store, "a/hold", ObjectLockLegalHoldStatus="ON")
    mixed_free = _put(store, "a/mixed")
    mixed_held = _put(store, "a/mixed", ObjectLockLegalHoldStatus="ON")
    gone = _put(store, "a/gone")
    gone_marker = _delete_marker(store, "a/gone")
    versions = list(store.list_versions("a/"))
    assert len(versions) == 8

    outcome = store.delete_versions(versions)

    assert outcome.requests == 1
    locked = {("a/comp", comp), ("a/hold", hold), ("a/mixed", mixed_held)}
    assert {(e.key, e.version_id) for e in outcome.errors} == locked
    assert all(e.code == "AccessDenied" and e.message for e in outcome.errors)
    assert _ids(outcome.deleted) == {
        ("a/free", free[0]),
        ("a/free", free[1]),
        ("a/mixed", mixed_free),
        ("a/gone", gone),
        ("a/gone", gone_marker),
    }
    assert _ids(store.list_versions("a/")) == locked


def test_lock_reports_mode_retain_until_and_legal_hold(locked_s3_store):
    store = locked_s3_store
    now = datetime.now(UTC)
    until = now.replace(microsecond=0) + timedelta(days=1)
    _put(store, "l/comp", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
    _put(store, "l/gov", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)
    _put(store, "l/hold", ObjectLockLegalHoldStatus="ON")
    _put(store, "l/free")
    _put(store, "l/gone")
    _delete_marker(store, "l/gone")
    locks = {(v.key, v.is_delete_marker): store.lock(v) for v in store.list_versions("l/")}

    assert locks[("l/comp", False)] == ObjectLock("COMPLIANCE", until, legal_hold=False)
    assert locks[("l/gov", False)] == ObjectLock("GOVERNANCE", until, legal_hold=False)
    assert locks[("l/hold", False)] == ObjectLock(None, None, legal_hold=True)
    assert locks[("l/free", False)] == ObjectLock(None, None, legal_hold=False)
    assert locks[("l/gone", False)] == ObjectLock(None, None, legal_hold=False)
    assert locks[("l/gone", True)] == ObjectLock(None, None, legal_hold=False)
    assert locks[("l/comp", False)].retain_until.utcoffset() == timedelta(0)

    comp = locks[("l/comp", False)]
    assert comp.active_at(now)
    assert not comp.active_at(until) and not comp.active_at(until + timedelta(days=1))
    assert locks[("l/hold", False)].active_at(now + timedelta(days=3650))
    assert not locks[("l/free", False)].active_at(now)


def test_put_bytes_get_bytes_roundtrip(s3_store):
    first = s3_store.put_bytes("reports/r.json", b'{"n": 1}', content_type="application/json")
    second = s3_store.put_bytes("reports/r.json", b'{"n": 2}', content_type="application/json")

    assert first != second and "null" not in (first, second)
    assert s3_store.get_bytes("reports/r.json") == b'{"n": 2}'
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key="reports/r.json")
    assert head["ContentType"] == "application/json"
    assert head["VersionId"] == second


def test_unversioned_bucket_uses_null_version_ids(s3_conn_id):
    store = S3Store.from_connection(s3_conn_id, "t-plain-" + s3_conn_id[-8:])
    store.client.create_bucket(Bucket=store.bucket)

    assert store.put_bytes("u/a", b"abc", content_type="text/plain") == "null"
    versions = list(store.list_versions("u/"))
    assert [(v.key, v.version_id, v.size, v.is_latest) for v in versions] == [("u/a", "null", 3, True)]
    outcome = store.delete_versions(versions)
    assert outcome.errors == [] and outcome.deleted == versions
    assert list(store.list_versions("u/")) == []


def test_missing_bucket_is_a_terminal_error_naming_system_bucket_and_prefix(s3_conn_id):
    store = S3Store.from_connection(s3_conn_id, "t-no-such-bucket", system="media")

    expected = r"system 'media': list object versions under 'chats/42/' in s3://t-no-such-bucket: NoSuchBucket"
    with pytest.raises(TerminalStoreError, match=expected):
        list(store.list_versions("chats/42/"))


def test_failed_delete_request_is_a_terminal_error_and_the_rest_is_not_tried(s3_conn_id):
    store = S3Store.from_connection(s3_conn_id, "t-no-such-bucket", system="media")
    when = datetime(2024, 1, 1, tzinfo=UTC)
    versions = [ObjectVersion(f"k/{i}", f"v{i}", when, False, True, 1) for i in range(1001)]

    with pytest.raises(
        TerminalStoreError, match=r"delete 1000 object version\(s\) in s3://t-no-such-bucket: NoSuchBucket"
    ):
        store.delete_versions(versions)


def test_current_objects_are_the_latest_versions_of_the_selected_keys_and_stream_in_chunks(s3_store):
    from lifecycle.catalog import Catalog
    from lifecycle.catalog.models import CatalogFile
    from lifecycle.stores.contract import Selection
    from tests.config import sample

    store = S3Store(s3_store.client, s3_store.bucket, Catalog(CatalogFile.model_validate(sample.CATALOG)), "media")
    _put(store, "chats/7/a.jpg", b"old")
    newest = _put(store, "chats/7/a.jpg", b"new" * 1000)
    _put(store, "chats/7/gone.jpg")
    _delete_marker(store, "chats/7/gone.jpg")
    _put(store, "chats/70/b.jpg")  # another person whose id starts alike
    _put(store, "chats/8/c.jpg")

    (current,) = store.current_objects("chat_photos", Selection(subjects=("7",)))
    assert (current.key, current.version_id, current.size) == ("chats/7/a.jpg", newest, 3000)
    assert [o.key for o in store.current_objects("chat_photos")] == ["chats/7/a.jpg", "chats/70/b.jpg", "chats/8/c.jpg"]
    chunks = list(store.chunks("chats/7/a.jpg", version_id=newest, chunk_size=1024))
    assert [len(c) for c in chunks] == [1024, 1024, 952] and b"".join(chunks) == b"new" * 1000
    assert b"".join(store.chunks("chats/7/a.jpg")) == b"new" * 1000


def test_a_presigned_link_downloads_the_object_without_credentials(s3_store):
    import urllib.request

    _put(s3_store, "access/1/package.zip", b"zip bytes")
    link = s3_store.presigned_get("access/1/package.zip", 3600)
    assert "X-Amz-Expires=3600" in link or "Expires=" in link
    with urllib.request.urlopen(link) as response:
        assert response.read() == b"zip bytes"


def test_an_object_store_does_not_anonymize_and_asking_it_to_is_refused_naming_system_and_dataset(s3_conn_id):
    store = S3Store.from_connection(s3_conn_id, "t-no-such-bucket", system="media")
    assert not isinstance(store, Anonymizing)
    with pytest.raises(TerminalStoreError, match=r"system 'media'.*avatars.*cannot anonymize.*use action: delete"):
        anonymizing(store, "avatars")
