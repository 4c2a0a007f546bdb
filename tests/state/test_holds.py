"""Legal holds: add, scope, expiry, removal, and their ledger trail."""

from datetime import date

import pytest

from lifecycle.errors import LifecycleError
from lifecycle.state import StateStore

TODAY = date(2026, 6, 1)


@pytest.fixture
def state(engine):
    return StateStore(engine, dataset_names={"users", "orders", "access_logs"})


def test_holds_scope_and_expiry(state):
    state.holds.add("7", reason="litigation 2026-041", today=TODAY)
    state.holds.add("8", reason="tax audit", datasets=["orders"], until=date(2026, 6, 30), today=TODAY)
    assert state.holds.held_subjects("orders", TODAY) == {"7", "8"}
    assert state.holds.held_subjects("access_logs", TODAY) == {"7"}
    assert state.holds.held_subjects("orders", date(2026, 7, 1)) == {"7"}, "a hold ends after its until date"


def test_remove_ends_holds_and_is_recorded(state):
    state.holds.add("7", reason="litigation", today=TODAY)
    state.holds.add("7", reason="second matter", datasets=["orders"], today=TODAY)
    assert state.holds.remove("7") == 2
    assert state.holds.remove("7") == 0
    assert state.holds.active(TODAY) == []
    kinds = [e.kind for e in state.ledger.entries()]
    assert kinds == ["hold.added", "hold.added", "hold.removed"]
    assert state.ledger.verify().ok


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"subject_id": " ", "reason": "x"}, "--subject is empty"),
        ({"subject_id": "1", "reason": ""}, "--reason is required"),
        ({"subject_id": "1", "reason": "x", "datasets": ["ordres"]}, "unknown dataset(s) ['ordres']"),
        ({"subject_id": "1", "reason": "x", "until": date(2026, 5, 1)}, "--until 2026-05-01 is in the past"),
    ],
)
def test_bad_holds_are_refused_and_change_nothing(state, kwargs, words):
    with pytest.raises(LifecycleError, match=None) as caught:
        state.holds.add(**kwargs, today=TODAY)
    assert words in str(caught.value)
    assert state.holds.active(TODAY) == []
    assert list(state.ledger.entries()) == []
