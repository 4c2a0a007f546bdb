"""Claim tables (erasure notices, incident deliveries): a claim once, outcomes with the next
claim, release, and rows a killed run left ``sending`` turned ``uncertain``."""

import pytest
import sqlalchemy as sa

from lifecycle.state import StateStore
from lifecycle.state.claims import Outcome
from lifecycle.state.schema import deliveries

TEMPLATE = "cancellation_completed"


@pytest.fixture
def state(engine):
    return StateStore(engine)


def _notices(state) -> dict[tuple[str, str], tuple]:
    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries).where(deliveries.c.notice.startswith("notice:")))
        return {(r.notice.removeprefix("notice:"), r.subject_id): (r.status, r.reason, r.message_id) for r in rows}


def test_a_person_is_claimed_once_and_outcomes_go_with_the_next_claim(state):
    claims = state.notices.claims(TEMPLATE, "run#0")
    with claims:
        assert claims.claim("1", "<m1@x>", "en")
        assert claims.claim("2", None)  # no address: final at once
        assert claims.claim("3", "<m3@x>", "de", outcomes=[Outcome("1", "sent", 1)])
        assert not claims.claim("1", "<again@x>", "en", outcomes=[Outcome("3", "undeliverable", 1, 550)]), (
            "claimed before: the claim fails, the outcomes are recorded all the same"
        )
    rows = _notices(state)
    assert rows[(TEMPLATE, "1")] == ("sent", None, "<m1@x>")
    assert rows[(TEMPLATE, "2")] == ("skipped", "no e-mail address", None)
    assert rows[(TEMPLATE, "3")] == ("undeliverable", "SMTP 550", "<m3@x>")
    assert state.notices.rows(TEMPLATE, ["1", "3", "4"])["3"].locale == "de"
    assert state.notices.counts() == {TEMPLATE: {"sent": 1, "skipped": 1, "undeliverable": 1}}


def test_an_outcome_changes_only_a_row_still_sending_and_release_removes_only_such_a_row(state):
    claims = state.notices.claims(TEMPLATE, "run#0")
    claims.claim("1", "<m1@x>")
    claims.claim("2", "<m2@x>")
    claims.record([Outcome("1", "sent", 1)])
    claims.record([Outcome("1", "deferred", 3, 451)])
    claims.release(["1", "2"])
    assert _notices(state) == {(TEMPLATE, "1"): ("sent", None, "<m1@x>")}


def test_a_mail_put_off_gives_its_claim_up_until_its_retry_claims_the_person_again(state):
    claims = state.notices.claims(TEMPLATE, "run#0")
    with claims:  # the sending loop's connection stays open: put_off and resume use their own
        claims.claim("1", "<m1@x>", "en")
        claims.claim("2", "<m2@x>", "en")
        claims.put_off("1")
        claims.put_off("2")
        assert _notices(state) == {}, "put off: no claim, so the person is owed, not in doubt"
        assert claims.resume("1", "<m1@x>", "en")
        other = state.notices.claims(TEMPLATE, "run#1")
        assert other.claim("2", "<other@x>", "en"), "another run claims the person meanwhile"
        assert not claims.resume("2", "<m2@x>", "en"), "the retry finds the person taken"
        claims.record([Outcome("1", "sent", 2)])
    assert _notices(state) == {
        (TEMPLATE, "1"): ("sent", None, "<m1@x>"),
        (TEMPLATE, "2"): ("sending", None, "<other@x>"),
    }


def test_a_group_is_claimed_in_one_commit_and_one_person_claimed_before_leaves_the_others_claimed(state):
    claims, other = state.notices.claims(TEMPLATE, "run#0"), state.notices.claims(TEMPLATE, "run#1")
    assert other.claim("3", "<o3@x>")
    with claims:
        assert claims.claim_group([("1", "<m1@x>", "en"), ("2", None, None)]) == set()
        taken = claims.claim_group([("3", "<m3@x>", "en"), ("4", "<m4@x>", "de")], outcomes=[Outcome("1", "sent", 1)])
    assert taken == {"3"}, "claimed by the other run"
    rows = _notices(state)
    assert rows[(TEMPLATE, "1")] == ("sent", None, "<m1@x>"), "the outcomes went in although the group was refused"
    assert rows[(TEMPLATE, "2")] == ("skipped", "no e-mail address", None)
    assert rows[(TEMPLATE, "3")] == ("sending", None, "<o3@x>"), "the other run's claim is untouched"
    assert rows[(TEMPLATE, "4")] == ("sending", None, "<m4@x>"), "the rest of the group is claimed"


def test_rows_left_sending_become_uncertain_and_nothing_else_changes(state):
    mine, other = state.notices.claims(TEMPLATE, "run#0"), state.notices.claims("cancellation_scheduled", "scheduled")
    for subject in "123":
        mine.claim(subject, f"<m{subject}@x>")
    other.claim("1", "<s1@x>")
    mine.record([Outcome("2", "sent", 1)])
    mine.mark_uncertain(["1", "2"])
    rows = _notices(state)
    assert rows[(TEMPLATE, "1")][0] == "uncertain", "the claim of a killed run"
    assert rows[(TEMPLATE, "2")][0] == "sent", "an outcome recorded stays"
    assert rows[(TEMPLATE, "3")][0] == "sending", "not named"
    assert rows[("cancellation_scheduled", "1")][0] == "sending", "another template's row"
    assert not mine.claim("1", "<m1-again@x>"), "an uncertain row is never claimed again"


def test_incident_deliveries_are_claimed_per_incident_and_marked_uncertain_the_same_way(state):
    claims = state.incidents.claims("INC-1", "manual__1", 0)
    with claims:
        claims.claim("1", "<m1@x>")
        claims.claim("2", None)
        claims.claim("3", "<m3@x>", outcomes=[Outcome("1", "sent", 3)])
    assert not state.incidents.claims("INC-1", "manual__2", 0).claim("1", "<again@x>"), (
        "one row per incident and person"
    )
    assert state.incidents.claims("INC-2", "manual__3", 0).claim("1", "<other@x>"), "another incident is another row"
    claims.mark_uncertain(["3"])
    with state.engine.connect() as conn:
        rows = {
            (r.notice.removeprefix("incident:"), r.subject_id): (r.status, r.attempts, r.scope)
            for r in conn.execute(sa.select(deliveries).where(deliveries.c.notice.startswith("incident:")))
        }
    assert rows == {
        ("INC-1", "1"): ("sent", 3, "manual__1"),
        ("INC-1", "2"): ("undeliverable", 0, "manual__1"),
        ("INC-1", "3"): ("uncertain", 0, "manual__1"),
        ("INC-2", "1"): ("sending", 0, "manual__3"),
    }
    assert state.incidents.delivery_counts("manual__1") == {"sent": 1, "undeliverable": 1, "uncertain": 1}
    assert state.incidents.delivery_counts_among("INC-1", ["1", "3"]) == {"sent": 1, "uncertain": 1}
