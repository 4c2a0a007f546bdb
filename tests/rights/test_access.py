"""The access kind: a signed, zipped package of every row and current object reachable from the
person, compared row for row and object for object with hand-written queries and a boto3
listing; deterministic, resumable, mailed once, nobody else's data in it."""

from __future__ import annotations

import hashlib
import io
import json
import urllib.request
import zipfile
from datetime import date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from lifecycle import cli
from lifecycle.demo import schema
from lifecycle.demo.plan import plan
from lifecycle.rights import SubjectRights, access
from lifecycle.rights.package import verify_package
from lifecycle.stores.s3 import S3Store
from tests.rights.conftest import USERS

RUN = "manual__2026-06-01T12:00:00+00:00"
SIGNING_KEY = b"rights-test-signing-key"
PREFIXES = ("avatars/{uid}/", "inquiries/{uid}/", "chats/{uid}/")


def _person() -> int:
    return next(uid for uid, kind in plan(USERS, 3).requests.items() if kind == "access")


def _json_ready(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _oracle_rows(engine, uid: int) -> dict[str, list[dict]]:
    """The person's rows by hand-written joins on the demo schema, every column, in key order."""
    s = schema
    mine = {
        "users": sa.select(s.users).where(s.users.c.id == uid),
        "chat_messages": sa.select(s.chat_messages)
        .join(s.conversations, s.chat_messages.c.conversation_id == s.conversations.c.id)
        .where(s.conversations.c.user_id == uid),
    }
    for table in schema.TABLES:
        if "user_id" in table.c:
            mine[table.name] = sa.select(table).where(table.c.user_id == uid)
    found = {}
    with engine.connect() as conn:
        for name, query in mine.items():
            table = query.get_final_froms()[0] if name != "chat_messages" else s.chat_messages
            rows = conn.execute(query.order_by(table.c.id)).mappings()
            found[name] = [{k: _json_ready(v) for k, v in row.items()} for row in rows]
    return {name: rows for name, rows in found.items() if rows}


def _oracle_objects(world, uid: int) -> dict[str, bytes]:
    """The current version of every object under the person's prefixes, by a boto3 listing."""
    found = {}
    for template in PREFIXES:
        listed = world.s3.list_objects_v2(Bucket=world.buckets["media"], Prefix=template.format(uid=uid))
        for entry in listed.get("Contents", []):
            found[entry["Key"]] = world.s3.get_object(Bucket=world.buckets["media"], Key=entry["Key"])["Body"].read()
    return found


def _request(world, rights, uid, request_id="A-1"):
    conf = {"kind": "access", "subject": str(uid), "request_id": request_id}
    assert rights.take_in(rights.parse(conf, RUN), RUN, world.as_of) == [request_id]
    return request_id


def _exports(world) -> list[dict]:
    listed = world.s3.list_object_versions(Bucket=world.buckets["exports"])
    return listed.get("Versions", []) + listed.get("DeleteMarkers", [])


def _package(world, key: str, version_id: str | None = None) -> bytes:
    extra = {"VersionId": version_id} if version_id else {}
    return world.s3.get_object(Bucket=world.buckets["exports"], Key=key, **extra)["Body"].read()


def _contents(raw: bytes) -> tuple[dict[str, list[dict]], dict[str, bytes], zipfile.ZipFile]:
    package = zipfile.ZipFile(io.BytesIO(raw))
    rows, objects = {}, {}
    for name in package.namelist():
        if name.startswith("data/"):
            lines = package.read(name).decode().splitlines()
            rows[name.removeprefix("data/").removesuffix(".jsonl")] = [json.loads(line) for line in lines]
        elif name.startswith("objects/"):
            objects[name.removeprefix("objects/")] = package.read(name)
    return rows, objects, package


def _share_demo_register(world) -> None:
    """One delivery to a recipient covering devices, one refusal (not shown)."""
    base = {
        "contact": "privacy@acmepush.example",
        "role": "processor",
        "legal_basis": "entrusted_processing",
        "purpose": "Deliver push notifications",
        "processing": "jsonl",
        "agreement_id": "DPA-2024-017",
        "categories": ["device_info"],
        "fields": {"devices": ["device_id", "push_token", "os"]},
        "records": 10,
        "interval_start": "2026-05-01T00:00:00Z",
        "interval_end": "2026-05-08T00:00:00Z",
        "recorded_at": "2026-05-08T01:00:00Z",
    }
    world.state.sharing.save(
        {
            **base,
            "entry_key": "push|1",
            "recipient_id": "push_provider",
            "recipient_name": "Acme Push Ltd.",
            "outcome": "delivered",
        }
    )
    world.state.sharing.save(
        {
            **base,
            "entry_key": "ads|1",
            "recipient_id": "ads",
            "recipient_name": "Refused Ads Inc.",
            "outcome": "refused",
        }
    )


def test_the_package_holds_exactly_the_persons_rows_and_current_objects(rights_world):
    world, uid = rights_world, _person()
    rows, objects = _oracle_rows(world.app, uid), _oracle_objects(world, uid)
    assert rows.get("chat_messages") and objects, "a rich demo user"
    _share_demo_register(world)
    rights = SubjectRights(world.config, world.state)
    request_id = _request(world, rights, uid)

    done = rights.answer(request_id, RUN, world.as_of)
    assert done["state"] == "done"
    result = done["result"]
    assert result["rows_by_dataset"] == {name: len(rows.get(name, [])) for name in result["rows_by_dataset"]}
    assert result["objects"] == len(objects) and result["rows"] == sum(map(len, rows.values()))
    key = result["package_key"]
    assert key == f"access/{uid}/{request_id}/package.zip"
    raw = _package(world, key)
    assert hashlib.sha256(raw).hexdigest() == result["sha256"]
    head = world.s3.head_object(Bucket=world.buckets["exports"], Key=key)
    assert head["ServerSideEncryption"] == "AES256"

    got_rows, got_objects, package = _contents(raw)
    assert got_rows == rows, "row for row, every column"
    assert got_objects == objects, "object for object, byte for byte"
    names = package.namelist()
    assert names[-2:] == ["index.html", "manifest.json"]
    assert names[:-2] == sorted(n for n in names if n.startswith("data/")) + sorted(
        n for n in names if n.startswith("objects/")
    )
    assert {i.date_time for i in package.infolist()} == {world.as_of.timetuple()[:6]}
    index = package.read("index.html").decode()
    assert "Acme Push Ltd." in index and "Refused Ads" not in index
    assert "PRC E-Commerce Law art. 31" in index or "orders" not in got_rows

    manifest = json.loads(package.read("manifest.json"))
    assert hashlib.sha256(package.read("manifest.json")).hexdigest() == result["manifest_sha256"]
    assert {f["path"] for f in manifest["files"]} == set(names) - {"manifest.json"}
    assert verify_package(io.BytesIO(raw), SIGNING_KEY) == []
    assert _package(world, result["manifest_key"]) == package.read("manifest.json")

    (mail,) = world.sink.messages
    (email,) = [r["email"] for r in rows["users"]]
    assert mail["To"] == email
    link = next(line.strip() for line in mail.text.splitlines() if line.strip().startswith("http"))
    with urllib.request.urlopen(link) as response:  # the e-mailed link downloads the package
        assert hashlib.sha256(response.read()).hexdigest() == result["sha256"]
    assert "http" not in json.dumps(done), "the link is in the mail only"


def test_a_changed_file_fails_verification_and_the_cli_checks_packages(rights_world, tmp_path, capsys):
    world, uid = rights_world, _person()
    rights = SubjectRights(world.config, world.state)
    result = rights.answer(_request(world, rights, uid), RUN, world.as_of)["result"]
    raw = _package(world, result["package_key"])
    good = tmp_path / "package.zip"
    good.write_bytes(raw)
    bucket = world.buckets["exports"]
    args = ["--config", str(world.config_dir), "manifest", "verify"]
    assert cli.main([*args, str(good)]) == 0
    assert cli.main([*args, f"s3://{bucket}/{result['package_key']}"]) == 0
    assert cli.main([*args, f"s3://{bucket}/{result['manifest_key']}"]) == 0
    kept = tmp_path / "manifest.json"
    kept.write_bytes(zipfile.ZipFile(io.BytesIO(raw)).read("manifest.json"))
    assert cli.main([*args, str(kept)]) == 0, "a manifest kept apart: its package is read from S3"
    capsys.readouterr()

    source = zipfile.ZipFile(io.BytesIO(raw))
    target = next(n for n in source.namelist() if n.startswith("data/"))
    changed = tmp_path / "changed.zip"
    with zipfile.ZipFile(changed, "w") as out:
        for info in source.infolist():
            body = source.read(info)
            out.writestr(info, body.replace(b'"id":', b'"id" :', 1) if info.filename == target else body)
    problems = verify_package(str(changed), SIGNING_KEY)
    assert problems and all(target in p for p in problems)
    assert cli.main([*args, str(changed)]) == 1
    assert target in capsys.readouterr().out
    assert verify_package(str(good), b"another-key-0123456789")[0].startswith("manifest.json: the signature")


def test_a_dry_run_writes_nothing_and_sends_nothing(rights_world):
    world, uid = rights_world, _person()
    rights = SubjectRights(world.config, world.state)
    dry = rights.answer(_request(world, rights, uid), RUN, world.as_of, dry_run=True)
    rows, objects = _oracle_rows(world.app, uid), _oracle_objects(world, uid)
    assert dry["state"] == "planned"
    assert dry["plan"]["rows"] == {name: len(rows.get(name, [])) for name in dry["plan"]["rows"]}
    assert dry["plan"]["files"] == len(objects)
    assert dry["plan"]["bytes"] == sum(len(b) for b in objects.values())
    assert "access_packages" not in dry["plan"]["objects"], "earlier packages are not copied again"
    assert _exports(world) == [] and world.sink.messages == []


def test_a_killed_run_resumes_rebuilds_the_same_package_and_mails_once(rights_world, monkeypatch):
    world, uid = rights_world, _person()
    rights = SubjectRights(world.config, world.state)
    request_id = _request(world, rights, uid)
    original = S3Store.upload
    calls = {"n": 0}

    def upload_then_die(self, key, chunks, **kwargs):
        calls["n"] += 1
        if key.endswith("manifest.json") and calls["n"] == 2:
            raise RuntimeError("killed after the package, before its manifest")
        return original(self, key, chunks, **kwargs)

    monkeypatch.setattr(S3Store, "upload", upload_then_die)
    with pytest.raises(RuntimeError):
        rights.answer(request_id, RUN, world.as_of)
    assert world.sink.messages == []

    sent = {"n": 0}
    notify = SubjectRights.notify

    def notify_then_die(self, *args):
        counts = notify(self, *args)
        sent["n"] += 1
        if sent["n"] == 1:
            raise RuntimeError("killed after the mail")
        return counts

    monkeypatch.setattr(SubjectRights, "notify", notify_then_die)
    with pytest.raises(RuntimeError):
        SubjectRights(world.config, world.state).answer(request_id, RUN, world.as_of)
    uploads = calls["n"]
    done = SubjectRights(world.config, world.state).answer(request_id, RUN, world.as_of)
    assert done["state"] == "done"
    assert calls["n"] == uploads, "packaged before the kill: not rebuilt, not uploaded again"
    assert len(world.sink.messages) == 1, "one mail"

    key = done["result"]["package_key"]
    versions = [v for v in _exports(world) if v["Key"] == key]
    assert len(versions) == 2, "built once before the kill, once after"
    hashes = {hashlib.sha256(_package(world, key, v["VersionId"])).hexdigest() for v in versions}
    assert hashes == {done["result"]["sha256"]}, "rebuilt identically"
    entry = world.state.ledger.find(f"request:{request_id}:packaged")
    assert entry is not None and entry.payload["manifest"]["sha256"] == done["result"]["manifest_sha256"]


def test_another_persons_rows_never_enter_the_package_even_in_a_shared_conversation(rights_world):
    """A row belongs to the person its subject link chain reaches: a message in A's conversation is
    A's, even one B wrote; B's package holds none of A's rows."""
    world, b = rights_world, _person()
    c = schema
    with world.app.begin() as conn:
        a_conversations = conn.execute(
            sa.select(c.conversations.c.id, c.conversations.c.user_id).where(c.conversations.c.user_id != b)
        ).all()
        conversation, a = a_conversations[0]
        sent_at = datetime(2026, 5, 30, 9, 0)
        for n in range(3):  # B writes into A's conversation, interleaved with B's own ids
            conn.execute(
                c.chat_messages.insert().values(
                    conversation_id=conversation, sender="buyer", body=f"written by user {b} ({n})", sent_at=sent_at
                )
            )
    a_rows = _oracle_rows(world.app, a)
    a_ids = {name: {r["id"] for r in rows} for name, rows in a_rows.items() if name != "users"}
    rights = SubjectRights(world.config, world.state)
    raw = _package(world, rights.answer(_request(world, rights, b), RUN, world.as_of)["result"]["package_key"])
    rows, objects, _ = _contents(raw)
    for name, got in rows.items():
        assert not {r["id"] for r in got} & a_ids.get(name, set()), f"{name}: a row of user {a}"
    assert all(f"/{a}/" not in key for key in objects)
    assert rows == _oracle_rows(world.app, b)
    plan_a = access.plan(rights, rights.request(_request(world, rights, a, "A-2")), world.as_of)
    assert plan_a["rows"]["chat_messages"] == len(a_rows["chat_messages"]), "the messages count for A"


def test_the_index_is_in_the_persons_language(rights_world):
    world, uid = rights_world, _person()
    with world.app.begin() as conn:
        conn.execute(schema.users.update().where(schema.users.c.id == uid).values(locale="zh-CN"))
    rights = SubjectRights(world.config, world.state)
    result = rights.answer(_request(world, rights, uid), RUN, world.as_of)["result"]
    index = zipfile.ZipFile(io.BytesIO(_package(world, result["package_key"]))).read("index.html").decode()
    assert '<html lang="zh-CN">' in index and "我们持有的信息" in index
    assert all(f"<code>{name}</code>" in index for name, n in result["rows_by_dataset"].items() if n)
