"""Erasure states: intake writes, batches of a run (a rerun finds the same ones), open subjects."""

from collections import Counter

import pytest

from lifecycle.state import StateStore
from lifecycle.state.erasures import OPEN, Intake

RUN = "scheduled__2026-06-01T00:00:00+00:00"
SEEN, LATER = "2026-06-01T00:00:00+00:00", "2026-06-02T00:00:00+00:00"


@pytest.fixture
def state(engine):
    return StateStore(engine)


def _intake(subject: str, state: str, reason: str | None = None) -> Intake:
    return Intake(subject, (f"r{subject}",), "2026-05-01T00:00:00+00:00", "2026-05-16T00:00:00+00:00", state, reason)


def _batches(state) -> dict[str, str]:
    return {r.subject_id: r.batch for r in state.erasures.in_states("erasing")}


def test_intake_inserts_new_subjects_and_updates_known_ones_keeping_first_seen_and_batch(state):
    state.erasures.record_intake([_intake("1", "pending"), _intake("2", "due")], at=SEEN)
    state.erasures.batch_due(RUN, 10)
    state.erasures.record_intake(
        [_intake("1", "due"), _intake("2", "held", "the subject is under legal hold")], at=LATER
    )
    records = {r.subject_id: r for r in state.erasures.all()}
    assert (records["1"].state, records["1"].first_seen, records["1"].updated_at) == ("due", SEEN, LATER)
    assert (records["2"].state, records["2"].reason, records["2"].batch) == (
        "held",
        "the subject is under legal hold",
        f"{RUN}#0",
    )
    assert records["1"].request_ids == ("r1",)


def test_due_subjects_are_batched_once_and_a_rerun_finds_the_same_batches(state):
    due = [str(n) for n in range(1, 6)]
    state.erasures.record_intake([_intake(s, "due") for s in due] + [_intake("9", "pending")], at=SEEN)
    first = state.erasures.batch_due(RUN, 2)
    assert first == [f"{RUN}#0", f"{RUN}#1", f"{RUN}#2"]
    batched = _batches(state)
    assert set(batched) == set(due) and sorted(Counter(batched.values()).values()) == [1, 2, 2]

    assert state.erasures.batch_due(RUN, 2) == first, "a rerun finds the same batches"
    assert _batches(state) == batched

    finished = [s for s, batch in batched.items() if batch == f"{RUN}#0"]
    state.erasures.mark_done([(s, SEEN, f"certificates/{s}.json") for s in finished])
    state.erasures.record_intake([_intake("9", "due")], at=LATER)
    assert state.erasures.batch_due(RUN, 2) == [f"{RUN}#1", f"{RUN}#2", f"{RUN}#3"], (
        "a finished batch is not returned; a subject due since is numbered after the run's batches"
    )
    assert _batches(state)["9"] == f"{RUN}#3"
    assert sorted(r.subject_id for r in state.erasures.done_in_run(RUN)) == sorted(finished)


def test_another_run_takes_over_failed_and_abandoned_subjects(state):
    state.erasures.record_intake([_intake(s, "due") for s in "123"], at=SEEN)
    state.erasures.batch_due(RUN, 10)
    state.erasures.set_state(["1"], "failed", "users: 1 row(s) still reach the subject")
    state.erasures.set_state(["2"], "held", "put under legal hold before erasure", unbatch=True)
    records = {r.subject_id: r for r in state.erasures.all()}
    assert (records["1"].state, records["1"].batch) == ("failed", f"{RUN}#0")
    assert (records["2"].state, records["2"].batch) == ("held", None)

    later = "scheduled__2026-06-02T00:00:00+00:00"
    assert state.erasures.batch_due(later, 10) == [f"{later}#0"]
    assert _batches(state) == {"1": f"{later}#0", "3": f"{later}#0"}


def test_a_run_id_with_like_wildcards_sees_only_its_own_batches(state):
    state.erasures.record_intake([_intake("1", "due")], at=SEEN)
    assert state.erasures.batch_due("manualxx1", 10) == ["manualxx1#0"]
    state.erasures.record_intake([_intake("2", "due")], at=SEEN)
    assert state.erasures.batch_due("manual__1", 10) == ["manual__1#0"], "'_' is not a wildcard here"


def test_open_subjects_are_those_pending_due_erasing_purging_failed_or_held(state):
    states = ["pending", "due", "erasing", "purging", "failed", "held", "withdrawn", "rejected", "done"]
    state.erasures.record_intake([_intake(s, s) for s in states], at=SEEN)
    open_states = {"pending", "due", "erasing", "purging", "failed", "held"}
    assert state.erasures.open_subjects() == set(OPEN) == open_states
    assert state.erasures.counts() == dict.fromkeys(states, 1)
