"""The withdraw_consent kind: the consent in force marked withdrawn at the run's time, the next
delivery without the person, and one deletion request to each recipient that received the
person's data under the consent, naming them by the pseudonym that recipient holds."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.demo import schema
from lifecycle.mail import Mailer
from lifecycle.rights import SubjectRights
from lifecycle.sharing import deletions
from lifecycle.sharing.interval import Interval
from lifecycle.sharing.service import Sharing
from lifecycle.state.schema import deliveries, recipient_deletions

RUN = "manual__2026-06-01T12:00:00+00:00"
HMAC_KEY = "rights-test-hmac-key-0123456789abcdef"  # tests/rights/conftest.py
PURPOSE, RECIPIENT, CONTACT = "expo_2026", "expo_marketing", "dataprotection@events.example"


def _pseudonym(recipient: str, subject) -> str:
    """The recipient's `_subject`, computed here from the key alone."""
    key = hmac.new(HMAC_KEY.encode(), f"sharing:{recipient}".encode(), hashlib.sha256).digest()
    return hmac.new(key, str(subject).encode(), hashlib.sha256).hexdigest()


def _consents(engine) -> dict[int, tuple]:
    """The oracle: every consent row as (user, purpose, granted, withdrawn), by id."""
    c = schema.consents
    with engine.connect() as conn:
        rows = conn.execute(sa.select(c.c.id, c.c.user_id, c.c.purpose, c.c.granted_at, c.c.withdrawn_at))
        return {r.id: (r.user_id, r.purpose, r.granted_at, r.withdrawn_at) for r in rows}


def _consenting(world, before) -> list[int]:
    """People with an address and the expo consent in force since two days before the run,
    without a cancellation (sharing leaves those out)."""
    floor = (world.as_of - timedelta(days=2)).replace(tzinfo=None)
    with world.app.connect() as conn:
        cancelling = set(conn.execute(sa.select(schema.account_cancellations.c.user_id)).scalars())
        mailable = set(conn.execute(sa.select(schema.users.c.id).where(schema.users.c.email.is_not(None))).scalars())
    found = {
        uid
        for uid, purpose, granted, withdrawn in before.values()
        if purpose == PURPOSE and withdrawn is None and granted <= floor and uid not in cancelling and uid in mailable
    }
    return sorted(found)


def _deliver(world, interval: Interval) -> list[str]:
    """One real delivery to the expo organiser; the `_subject`s of its users file."""
    sharing = Sharing(world.config, world.state, RECIPIENT)
    sharing.gate(interval, dag_id=f"sharing_{RECIPIENT}", run_id=f"scheduled__{interval.key}")
    files = [sharing.extract(d, interval) for d in sharing.recipient.share]
    manifest = sharing.manifest(interval, files, run_id=f"scheduled__{interval.key}")
    sharing.record_delivery(interval, manifest, run_id=f"scheduled__{interval.key}")
    key = f"{interval.prefix(sharing.recipient.delivery.prefix)}users.jsonl"
    body = world.s3.get_object(Bucket=world.buckets["partner_drop"], Key=key)["Body"].read().decode()
    return [json.loads(line)["_subject"] for line in body.splitlines()]


def _request(world, rights, uid, request_id="W-1") -> str:
    conf = {"kind": "withdraw_consent", "subject": str(uid), "purpose": PURPOSE, "request_id": request_id}
    assert rights.take_in(rights.parse(conf, RUN), RUN, world.as_of) == [request_id]
    return request_id


def _register(world) -> list[dict]:
    with world.state.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(recipient_deletions))]


def _to(world, address: str) -> list:
    return [m for m in world.sink.messages if m["To"] == address]


def _email(world, uid) -> str:
    with world.app.connect() as conn:
        return conn.execute(sa.select(schema.users.c.email).where(schema.users.c.id == uid)).scalar_one()


def _delivered_before(world) -> tuple[int, int, list[str]]:
    """A consenting person, another one, and the first delivery's `_subject`s (both in it)."""
    before = _consents(world.app)
    people = _consenting(world, before)
    assert len(people) >= 2, "the demo has people consenting to the expo"
    uid, other = people[0], people[1]
    week = Interval(world.as_of - timedelta(days=8), world.as_of - timedelta(days=1))
    shared = _deliver(world, week)
    assert _pseudonym(RECIPIENT, uid) in shared and _pseudonym(RECIPIENT, other) in shared
    return uid, other, shared


def test_withdrawing_marks_the_consent_asks_the_recipient_once_and_the_next_delivery_leaves_the_person_out(
    rights_world,
):
    world = rights_world
    uid, other, _ = _delivered_before(world)
    before = _consents(world.app)
    mine = {i for i, (u, purpose, granted, withdrawn) in before.items() if u == uid and purpose == PURPOSE}
    in_force = {i for i in mine if before[i][3] is None}
    assert in_force
    rights = SubjectRights(world.config, world.state)
    request_id = _request(world, rights, uid)

    dry = rights.answer(request_id, RUN, world.as_of, dry_run=True)
    assert dry["state"] == "planned"
    assert dry["plan"] == {
        "purpose": PURPOSE,
        "consents": {"consents": len(in_force)},
        "in_force": len(in_force),
        "recipients": 1,
    }
    assert _consents(world.app) == before, "a dry run changes nothing"
    assert world.sink.messages == [] and _register(world) == [], "and sends nothing"

    done = rights.answer(request_id, RUN, world.as_of)
    assert done["state"] == "done"
    result = done["result"]
    assert (result["withdrawn"], result["recipients"]) == (len(in_force), [RECIPIENT])
    assert "nothing_to_withdraw" not in result
    after = _consents(world.app)
    at = world.as_of.replace(tzinfo=None)
    for i in in_force:
        assert after[i] == (*before[i][:3], at), "the consent in force is withdrawn at the run's time"
    assert {i: r for i, r in after.items() if i not in in_force} == {
        i: r for i, r in before.items() if i not in in_force
    }, "other people's rows, other purposes and earlier withdrawals are untouched"

    (request_mail,) = _to(world, CONTACT)
    text = request_mail.text
    assert _pseudonym(RECIPIENT, uid) in text, "the recipient's own pseudonym of the person"
    assert _pseudonym(RECIPIENT, other) not in text, "nobody else"
    assert "EXPO-2026-NDA-003" in request_mail["Subject"]
    (notice,) = _to(world, _email(world, uid))
    assert "MIC Sourcing Expo 2026 organiser" in notice.text
    (row,) = _register(world)
    assert (row["scope"], row["recipient_id"], row["reason"], row["purpose"]) == (
        f"request:{request_id}",
        RECIPIENT,
        "withdraw_consent",
        PURPOSE,
    )
    assert (row["subjects"], row["status"], row["message_id"]) == (1, "sent", request_mail["Message-ID"])
    entry = world.state.ledger.find(f"deletion:request:{request_id}:{RECIPIENT}")
    assert (
        entry is not None
        and entry.entry_hash == row["ledger_hash"]
        and _pseudonym(RECIPIENT, uid) not in json.dumps(entry.payload)
    )
    assert world.state.ledger.find(f"request:{request_id}:consent_withdrawn").payload["withdrawn"] == len(in_force)
    assert _email(world, uid) not in json.dumps(done) and _pseudonym(RECIPIENT, uid) not in json.dumps(done)

    after_week = Interval(world.as_of, world.as_of + timedelta(days=7))
    shared = _deliver(world, after_week)
    assert _pseudonym(RECIPIENT, uid) not in shared, "the next delivery leaves the person out"
    assert _pseudonym(RECIPIENT, other) in shared, "and keeps the others who consent"

    again = SubjectRights(world.config, world.state).answer(request_id, RUN, world.as_of)
    assert again["state"] == "done" and len(world.sink.messages) == 2 and len(_register(world)) == 1


def test_no_consent_in_force_is_done_with_nothing_to_withdraw_and_nobody_asked(rights_world):
    world = rights_world
    before = _consents(world.app)
    with_expo = {u for u, purpose, _, _ in before.values() if purpose == PURPOSE}
    with world.app.connect() as conn:
        users = conn.execute(sa.select(schema.users.c.id).order_by(schema.users.c.id)).scalars().all()
    uid = next(u for u in users if u not in with_expo)
    rights = SubjectRights(world.config, world.state)
    done = rights.answer(_request(world, rights, uid), RUN, world.as_of)
    assert done["state"] == "done"
    assert done["result"]["withdrawn"] == 0 and done["result"]["nothing_to_withdraw"]
    assert done["result"]["recipients"] == [] and _register(world) == []
    assert _consents(world.app) == before
    assert _to(world, CONTACT) == []


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("where", ["on_the_wire", "before_the_evidence"])
def test_a_run_killed_while_asking_is_rerun_without_a_second_request_or_mail(rights_world, monkeypatch, where):
    """Killed with the recipient's mail on the wire (its claim stays `sending`: the rerun records
    it uncertain) or after it went out and before its ledger entry (the rerun backs it)."""
    world = rights_world
    uid, _, _ = _delivered_before(world)
    rights = SubjectRights(world.config, world.state)
    request_id = _request(world, rights, uid)

    class Killed(BaseException):
        pass

    transmit, summarize = Mailer.transmit, deletions.DeletionBook.summarize
    if where == "on_the_wire":

        def killed_after_sending(self, composed):
            transmit(self, composed)
            if composed.to == CONTACT:
                raise Killed()

        monkeypatch.setattr(Mailer, "transmit", killed_after_sending)
    else:

        def killed(self, recipients, run_id):
            raise Killed()

        monkeypatch.setattr(deletions.DeletionBook, "summarize", killed)
    with pytest.raises(Killed):
        rights.answer(request_id, RUN, world.as_of)
    monkeypatch.setattr(Mailer, "transmit", transmit)  # the fixture's monkeypatch holds its variables too
    monkeypatch.setattr(deletions.DeletionBook, "summarize", summarize)
    assert len(_to(world, CONTACT)) == 1 and _to(world, _email(world, uid)) == []
    with world.state.engine.connect() as conn:
        claimed = conn.execute(sa.select(deliveries.c.status).where(deliveries.c.subject_id == RECIPIENT)).all()
    assert claimed == [("sending",) if where == "on_the_wire" else ("sent",)]

    done = SubjectRights(world.config, world.state).answer(request_id, RUN, world.as_of)
    assert done["state"] == "done"
    assert len(_to(world, CONTACT)) == 1, "no second deletion request"
    assert len(_to(world, _email(world, uid))) == 1, "the person is told once"
    (row,) = _register(world)
    assert row["status"] == ("uncertain" if where == "on_the_wire" else "sent")
    assert row["ledger_hash"] == world.state.ledger.find(f"deletion:request:{request_id}:{RECIPIENT}").entry_hash
    assert done["result"]["withdrawn"] >= 1
    SubjectRights(world.config, world.state).answer(request_id, RUN, world.as_of)
    assert len(world.sink.messages) == 2 and len(_register(world)) == 1
