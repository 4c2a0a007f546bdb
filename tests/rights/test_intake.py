"""Requests into the register: the form checked, the person found or the request rejected,
the app's requests table read once per row, due dates from respond_within."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.demo import schema
from lifecycle.errors import LifecycleError
from lifecycle.forms import FormError
from lifecycle.rights import SubjectRights
from lifecycle.state.schema import subject_requests

RUN = "manual__2026-06-01T12:00:00+00:00"


def _rights(world):
    return SubjectRights(world.config, world.state)


def _person(world, uid=7):
    with world.app.connect() as conn:
        return conn.execute(sa.select(schema.users.c.id, schema.users.c.email).where(schema.users.c.id == uid)).one()


def test_a_form_request_by_email_is_recorded_with_its_due_date(rights_world):
    rights = _rights(rights_world)
    person = _person(rights_world)
    form = rights.parse({"kind": "access", "email": person.email.upper(), "request_id": "T-1"}, RUN)
    assert rights.take_in(form, RUN, rights_world.as_of) == ["T-1"]
    request = rights.request("T-1")
    assert (request.subject_id, request.state, request.source) == (str(person.id), "received", "form")
    assert request.due_at == (rights_world.as_of + timedelta(days=7)).isoformat()
    entry = rights_world.state.ledger.find("request:T-1:received")
    assert entry.kind == "request.received" and person.email not in json.dumps(entry.payload)


def test_nobody_on_file_is_recorded_rejected_and_nothing_else_happens(rights_world):
    rights = _rights(rights_world)
    form = rights.parse({"kind": "erase", "email": "nobody@example.invalid", "categories": ["preferences"]}, RUN)
    assert rights.take_in(form, RUN, rights_world.as_of) == []
    (request,) = rights_world.state.requests.in_states("rejected")
    assert (request.subject_id, request.reason) == (None, "no such person")
    assert request.request_id.startswith("form-"), "an id is made from the run when none is given"
    assert rights.take_in(form, RUN, rights_world.as_of) == [], "a rerun records nothing new"
    assert len(rights_world.state.requests.in_states("rejected")) == 1


def test_a_request_id_reused_for_another_request_is_refused(rights_world):
    rights = _rights(rights_world)
    rights.take_in(rights.parse({"kind": "access", "subject": "7", "request_id": "T-2"}, RUN), RUN, rights_world.as_of)
    other = rights.parse({"kind": "access", "subject": "8", "request_id": "T-2"}, RUN)
    with pytest.raises(LifecycleError, match=r"T-2.*another kind, person"):
        rights.take_in(other, RUN, rights_world.as_of)


@pytest.mark.parametrize(
    "conf, problem",
    [
        ({"kind": "erase", "subject": "7"}, "categories: an erase request names the categories"),
        ({"kind": "access", "subject": "7", "email": "a@b.example"}, "subject or email: name the person one way"),
        ({"kind": "withdraw_consent", "subject": "7"}, "purpose: a withdraw_consent request names"),
        ({"kind": "access", "subject": "7", "purpose": "x"}, "purpose: only a withdraw_consent request"),
        ({"kind": "erase", "subject": "7", "categories": ["no_such"]}, "categories: 'no_such' is not one of"),
        ({"subject": "7"}, "kind: required when subject is given"),
        ({"kind": "delete_all", "subject": "7"}, "kind: 'delete_all' is not one of"),
        ({"kind": "access", "subject": "7", "colour": "red"}, "unknown field(s) ['colour']"),
    ],
)
def test_bad_forms_are_refused_naming_the_field(rights_world, conf, problem):
    with pytest.raises(FormError) as refused:
        _rights(rights_world).parse(conf, RUN)
    assert problem in str(refused.value)
    assert not rights_world.state.requests.in_states("received", "rejected")


def test_the_apps_requests_table_is_taken_in_once_per_row(rights_world):
    world = rights_world
    asked = world.as_of - timedelta(days=2)
    with world.app.begin() as conn:
        conn.execute(schema.privacy_requests.delete())  # the demo's own requests: this test's rows only
        conn.execute(
            schema.privacy_requests.insert(),
            [
                {"categories": None, "purpose": None, **row}
                for row in [
                    {"id": 1, "user_id": 7, "kind": "access", "requested_at": asked.replace(tzinfo=None)},
                    {
                        "id": 2,
                        "user_id": 8,
                        "kind": "erase",
                        "categories": "preferences, device_info",
                        "requested_at": asked.replace(tzinfo=None),
                    },
                    {
                        "id": 3,
                        "user_id": 9,
                        "kind": "erase",
                        "categories": "",
                        "requested_at": asked.replace(tzinfo=None),
                    },
                    {
                        "id": 4,
                        "user_id": 9,
                        "kind": "access",
                        "requested_at": (world.as_of + timedelta(hours=1)).replace(tzinfo=None),
                    },
                ]
            ],
        )
    rights = _rights(world)
    taken = rights.take_in(None, RUN, world.as_of)
    assert taken == ["privacy_requests:1", "privacy_requests:2"], rights.request("privacy_requests:2").reason
    erase = rights.request("privacy_requests:2")
    assert erase.categories == ("preferences", "device_info")
    assert erase.due_at == (asked + timedelta(days=7)).isoformat(), "due from when the person asked"
    assert rights.request("privacy_requests:3").state == "rejected"
    assert world.state.requests.get("privacy_requests:4") is None, "asked after the run's time: the next run"
    later = world.as_of + timedelta(hours=2)
    assert rights.take_in(None, "scheduled__2", later) == [
        "privacy_requests:1",
        "privacy_requests:2",
        "privacy_requests:4",
    ]
    with world.state.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(subject_requests)).scalar() == 4
