"""The erase kind: the chosen categories deleted or anonymized across every dataset reachable
from the person, the account kept, floors and holds respected and named, a certificate."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.demo import schema
from lifecycle.demo.plan import plan
from lifecycle.durations import Duration
from lifecycle.erasure.records import StepRecords
from lifecycle.rights import SubjectRights
from tests.rights.conftest import USERS

RUN = "manual__2026-06-01T12:00:00+00:00"
CATEGORIES = ["preferences", "access_records", "basic_info"]


def _person() -> int:
    return next(uid for uid, kind in plan(USERS, 3).requests.items() if kind == "erase")


def _rows(engine, uid: int) -> dict[str, list]:
    """The oracle: the person's rows, by hand-written joins on the demo schema."""
    s = schema
    queries = {
        "users": sa.select(s.users).where(s.users.c.id == uid),
        "favorites": sa.select(s.favorites).where(s.favorites.c.user_id == uid),
        "purchase_demands": sa.select(s.purchase_demands).where(s.purchase_demands.c.user_id == uid),
        "access_logs": sa.select(s.access_logs).where(s.access_logs.c.user_id == uid),
        "conversations": sa.select(s.conversations).where(s.conversations.c.user_id == uid),
        "chat_messages": sa.select(s.chat_messages)
        .join(s.conversations, s.chat_messages.c.conversation_id == s.conversations.c.id)
        .where(s.conversations.c.user_id == uid),
        "orders": sa.select(s.orders).where(s.orders.c.user_id == uid),
        "devices": sa.select(s.devices).where(s.devices.c.user_id == uid),
    }
    with engine.connect() as conn:
        return {name: [dict(r._mapping) for r in conn.execute(q)] for name, q in queries.items()}


def _others(engine, uid: int) -> str:
    """A checksum of every demo table's rows that belong to other people."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table in schema.TABLES:
            query = sa.select(table).order_by(*table.primary_key.columns)
            if "user_id" in table.c:
                query = query.where(table.c.user_id != uid)
            elif table is schema.users:
                query = query.where(table.c.id != uid)
            elif table is schema.chat_messages:
                mine = sa.select(schema.conversations.c.id).where(schema.conversations.c.user_id == uid)
                query = query.where(table.c.conversation_id.not_in(mine))
            digest.update(json.dumps([list(map(str, r)) for r in conn.execute(query)]).encode())
    return digest.hexdigest()


def _objects(world, prefix: str) -> list[tuple[str, str]]:
    listed = world.s3.list_object_versions(Bucket=world.buckets["media"], Prefix=prefix)
    return [(v["Key"], v["VersionId"]) for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])]


def _request(world, rights, uid, **form):
    conf = {"kind": "erase", "subject": str(uid), "categories": CATEGORIES, "request_id": "E-1", **form}
    ids = rights.take_in(rights.parse(conf, RUN), RUN, world.as_of)
    assert ids == ["E-1"]
    return ids[0]


def test_erase_removes_the_chosen_categories_keeps_the_account_and_names_what_stays(rights_world):
    world, uid = rights_world, _person()
    before, others = _rows(world.app, uid), _others(world.app, uid)
    floor = Duration.parse("6mo").before(world.as_of).replace(tzinfo=None)  # retention.yaml: network-logs
    young_logs = [r for r in before["access_logs"] if r["logged_at"] >= floor]
    assert before["chat_messages"] and before["access_logs"], "a rich demo user"
    assert _objects(world, f"avatars/{uid}/") and _objects(world, f"chats/{uid}/")

    rights = SubjectRights(world.config, world.state)
    request_id = _request(world, rights, uid)
    dry = rights.answer(request_id, RUN, world.as_of, dry_run=True)
    planned = dry["plan"]["datasets"]
    assert dry["state"] == "planned" and planned["chat_messages"]["selected"] == len(before["chat_messages"])
    assert _rows(world.app, uid) == before, "a dry run changes nothing"
    assert planned["access_logs"].get("kept", {}) == (
        {"network-logs: PRC Cybersecurity Law art. 21": len(young_logs)} if young_logs else {}
    )

    done = rights.answer(request_id, RUN, world.as_of)
    assert done["state"] == "done"
    after = _rows(world.app, uid)
    assert after["favorites"] == after["purchase_demands"] == after["chat_messages"] == after["conversations"] == []
    assert {r["id"] for r in after["access_logs"]} == {r["id"] for r in young_logs}, "the floor keeps young logs"
    assert after["orders"] == before["orders"] and after["devices"] == before["devices"], "categories not chosen"
    (account,) = after["users"]
    (original,) = before["users"]
    assert account["id"] == uid and account["email"] != original["email"] and account["name"] != original["name"]
    assert account["locale"] == original["locale"] and account["tier"] == original["tier"], "non-personal stays"
    assert _objects(world, f"avatars/{uid}/") == [] and _objects(world, f"chats/{uid}/") == []
    assert _objects(world, f"inquiries/{uid}/"), "user content is not a chosen category"
    assert _others(world.app, uid) == others, "nobody else's rows change"

    certificate = json.loads(open(done["result"]["certificate"]["location"].removeprefix("file://")).read())
    assert certificate["request"] == "E-1" and str(uid) not in json.dumps(certificate["subject"])
    rows = {d["dataset"]: d for d in certificate["datasets"]}
    assert rows["chat_messages"]["deleted"] == len(before["chat_messages"])
    assert rows["users"]["anonymized"] == 1
    (mail,) = [m for m in world.sink.messages if m["To"] == original["email"]]
    assert "deleted" in mail["Subject"].lower() or "删除" in mail["Subject"]


def test_a_killed_erase_resumes_without_repeating_a_step_and_mails_once(rights_world, monkeypatch):
    world, uid = rights_world, _person()
    rights = SubjectRights(world.config, world.state)
    request_id = _request(world, rights, uid)
    calls = {"n": 0}
    original = StepRecords.record_done

    def crash_after_two(self, done):
        original(self, done)
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")

    monkeypatch.setattr(StepRecords, "record_done", crash_after_two)
    with pytest.raises(RuntimeError):
        rights.answer(request_id, RUN, world.as_of)
    monkeypatch.setattr(StepRecords, "record_done", original)
    assert rights.request(request_id).state == "failed"
    done = SubjectRights(world.config, world.state).answer(request_id, RUN, world.as_of)
    assert done["state"] == "done"
    assert _rows(world.app, uid)["chat_messages"] == []
    (original_email,) = [r["email"] for r in _rows(world.app, uid)["users"]]
    assert len(world.sink.messages) == 1, "one mail, after the rerun"
    again = SubjectRights(world.config, world.state).answer(request_id, RUN, world.as_of)
    assert again["state"] == "done" and len(world.sink.messages) == 1
    assert original_email


def test_a_held_dataset_is_left_and_named(rights_world):
    world, uid = rights_world, _person()
    world.state.holds.add(str(uid), datasets=["chat_messages"], reason="litigation", today=world.as_of.date())
    before = _rows(world.app, uid)
    rights = SubjectRights(world.config, world.state)
    done = rights.answer(_request(world, rights, uid), RUN, world.as_of)
    after = _rows(world.app, uid)
    assert after["chat_messages"] == before["chat_messages"] and after["access_logs"] != before["access_logs"]
    assert done["plan"]["datasets"]["chat_messages"]["kept"] == {"legal hold": len(before["chat_messages"])}
    assert len(after["conversations"]) == len(before["conversations"]), "held messages keep their conversations"


def test_the_runs_report_names_each_request_with_counts_and_no_person(rights_world):
    world, uid = rights_world, _person()
    rights = SubjectRights(world.config, world.state)
    request_id = _request(world, rights, uid)
    rights.answer(request_id, RUN, world.as_of, dry_run=True)
    rights.take_in(rights.parse({"kind": "access", "email": "nobody@example.invalid"}, RUN), RUN, world.as_of)
    written = rights.report(RUN, world.as_of + timedelta(days=8))
    document = json.loads(open(written["json"]).read())
    assert written["overdue"] == 1 and document["overdue"][0]["request_id"] == "E-1", "planned, not done, past due"
    (mine,) = [r for r in document["this_run"] if r["request_id"] == "E-1"]
    assert mine["state"] == "planned" and any(line.startswith("chat_messages: delete") for line in mine["what"])
    assert document["states"] == {"planned": 1, "rejected": 1}
    page = open(written["html"]).read()
    (account,) = _rows(world.app, uid)["users"]
    assert "E-1" in page and account["email"] not in page and account["name"] not in page
