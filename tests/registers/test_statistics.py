"""A period's statistics, over a small world written into the registers on each backend: requests
answered on time, late (and why), rejected, still open; erasures done, late and pending; deletion
requests to recipients; the sharing register.  Each request and erasure is made for the outcome
the test expects of it, so the expected counts are the test's own."""

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from lifecycle import cli, reports
from lifecycle.clock import iso_utc
from lifecycle.config import load_config
from lifecycle.registers.requests import OUTCOMES, render, request_statistics
from lifecycle.state import StateStore
from lifecycle.state.deletions import DeletionRow
from lifecycle.state.erasures import Intake
from lifecycle.state.requests import SubjectRequest

DEMO = Path(__file__).resolve().parents[2] / "config" / "lifecycle"
START, END = date(2026, 11, 1), date(2026, 12, 1)
T0, T1 = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
H = timedelta(hours=1)

# (outcome, kind, state, reason): what each request of the period comes to by its end
REQUESTS = [
    ("done_on_time", "access", "done", None),
    ("done_on_time", "erase", "done", None),
    ("done_on_time", "access", "done", None),
    ("done_late", "erase", "done", None),
    ("open_overdue", "access", "failed", "system 'app_db' refused the connection"),
    ("open_overdue", "withdraw_consent", "received", None),
    ("rejected", "access", "rejected", "no such person"),
    ("rejected", "erase", "rejected", "erase needs known categories; got ['x']"),
    ("rejected", "access", "rejected", "no such person"),
    ("open", "withdraw_consent", "received", None),
    ("open", "access", "done", None),  # answered, but only after the period's end
]


def _request(n: int, received: datetime, due: datetime, kind: str, state: str, reason, completed) -> SubjectRequest:
    return SubjectRequest(
        request_id=f"form:{n:03d}",
        kind=kind,
        subject_id=str(n),
        source="form",
        categories=(),
        purpose=None,
        state=state,
        reason=reason,
        received_at=iso_utc(received),
        due_at=iso_utc(due),
        run_id="seed",
        plan=None,
        result=None,
        completed_at=iso_utc(completed) if completed else None,
        updated_at=iso_utc(received),
    )


def _seed_requests(state: StateStore) -> None:
    rows = []
    for n, (outcome, kind, st, reason) in enumerate(REQUESTS):
        received = T0 + (6 * n + 1) * H
        due, completed = received + timedelta(days=30), None
        if outcome == "done_on_time":
            completed = received + 2 * H
        elif outcome == "done_late":
            due, completed = received + 24 * H, received + 72 * H
        elif outcome == "open_overdue":
            due = received + 24 * H
        elif st == "done":  # open at the period's end
            completed = T1 + 24 * H
        rows.append(_request(n, received, due, kind, st, reason, completed))
    # outside the period: received before it (answered in it) and at its end
    rows.append(_request(90, T0 - H, T0 + H, "access", "done", None, T0 + 48 * H))
    rows.append(_request(91, T1, T1 + 30 * 24 * H, "access", "rejected", "no such person", None))
    for row in rows:
        state.requests.receive(row)


# (subject, requested, state, completed): cancellations; complete_within is 30 days in the demo
ERASURES = [
    ("e1", T0 + H, "done", T0 + 5 * 24 * H),  # requested and erased in the period, on time
    ("e2", T0 - 40 * 24 * H, "done", T0 + 2 * 24 * H),  # erased in the period, late (42 days)
    ("e3", T0 + 2 * H, "pending", None),  # pending at the end, not overdue
    ("e4", T0 - 35 * 24 * H, "held", None),  # pending and overdue
    ("e5", T0 + 3 * H, "done", T1 + 2 * H),  # erased after the end: pending at the end
    ("e6", T0 - 90 * 24 * H, "done", T0 - 50 * 24 * H),  # done before the period: not in it
    ("e7", T0 + 4 * H, "withdrawn", None),  # requested in the period, then withdrawn
    ("e8", T1 + H, "pending", None),  # requested after the end
]


def _seed_erasures(state: StateStore) -> None:
    state.erasures.record_intake(
        [
            Intake(s, (f"r-{s}",), iso_utc(asked), iso_utc(asked + 15 * 24 * H), st, None)
            for s, asked, st, _ in ERASURES
        ],
        at=iso_utc(T0),
    )
    state.erasures.mark_done([(s, iso_utc(done), f"certificates/{s}") for s, _, st, done in ERASURES if st == "done"])


DELETIONS = [  # (scope, recipient, reason, subjects, status, recorded)
    ("request:form:009", "expo_marketing", "withdraw_consent", 1, "sent", T0 + 30 * H),
    ("erasure:run#0", "expo_marketing", "cancellation", 12, "sent", T0 + 50 * H),
    ("erasure:run#0", "push_provider", "cancellation", 12, "undeliverable", T0 + 50 * H),
    ("erasure:old#0", "push_provider", "cancellation", 3, "sent", T0 - 50 * H),  # before the period
]
SHARING = [  # (recipient, interval end, outcome, records)
    ("payment_institution", T0 + 24 * H, "delivered", 120),
    ("payment_institution", T0 + 48 * H, "delivered", 80),
    ("dd_acquirer", T0 + 24 * H, "refused", 0),
    ("payment_institution", T0, "delivered", 7),  # the interval ended exactly at the start: in
    ("payment_institution", T1, "delivered", 9),  # ended at the end: out
]


def _seed_recipients(state: StateStore) -> None:
    for scope, recipient, reason, subjects, status, at in DELETIONS:
        state.deletions.record(
            DeletionRow(scope, recipient, reason, None, subjects, status, None, "seed", iso_utc(at), None)
        )
    for recipient, ends, outcome, records in SHARING:
        state.sharing.save(
            {
                "entry_key": f"{recipient}:{iso_utc(ends)}",
                "recipient_id": recipient,
                "recipient_name": recipient.replace("_", " "),
                "contact": "privacy@recipient.example",
                "role": "processor",
                "legal_basis": "entrusted_processing",
                "purpose": "settle payments",
                "processing": "csv extract",
                "categories": ["transaction_records"],
                "fields": {"orders": ["amount_cents"]},
                "outcome": outcome,
                "rule": "agreement_expired" if outcome == "refused" else None,
                "records": records,
                "interval_start": iso_utc(ends - 24 * H),
                "interval_end": iso_utc(ends),
                "recorded_at": iso_utc(ends + H),
            }
        )


@pytest.fixture
def world(engine):
    state = StateStore(engine)
    _seed_requests(state)
    _seed_erasures(state)
    _seed_recipients(state)
    return load_config(DEMO), state


def test_requests_are_counted_by_what_they_came_to_by_the_periods_end(world):
    config, state = world
    stats = request_statistics(config, state, START, END)
    requests = stats["requests"]
    expected = Counter(outcome for outcome, *_ in REQUESTS)
    assert requests["totals"] == {"received": len(REQUESTS)} | {o: expected[o] for o in OUTCOMES if o != "received"}
    by_kind = Counter((kind, outcome) for outcome, kind, *_ in REQUESTS)
    for kind, counts in requests["by_kind"].items():
        assert counts["received"] == sum(n for (k, _), n in by_kind.items() if k == kind)
        assert {o: n for o, n in counts.items() if o != "received" and n} == {
            o: n for (k, o), n in by_kind.items() if k == kind
        }
    late = {r["request_id"]: r for r in requests["late"]}
    assert set(late) == {f"form:{n:03d}" for n, r in enumerate(REQUESTS) if r[0] in ("done_late", "open_overdue")}
    assert late["form:004"]["reason"] == "failed: system 'app_db' refused the connection"
    assert late["form:004"]["completed_at"] is None
    assert late["form:003"]["reason"] == "answered after its due date"
    assert late["form:003"]["late_days"] == 2.0
    assert late["form:005"]["reason"] == "not answered by the period's end (state received)"
    assert requests["rejected_reasons"] == {
        "access": {"no such person": 2},
        "erase": {"erase needs known categories; got ['x']": 1},
    }
    assert stats["respond_within"] == str(config.requests.respond_within)


def test_erasures_deletion_requests_and_deliveries_of_the_period(world):
    config, state = world
    stats = request_statistics(config, state, START, END)
    assert stats["erasures"] == {
        "complete_within": "30d",
        "requested": 4,  # e1, e3, e5, e7
        "done": 2,  # e1, e2
        "done_late": 1,  # e2
        "pending": 3,  # e3, e4, e5
        "pending_by_state": {"done_after_the_period": 1, "held": 1, "pending": 1},
        "pending_overdue": 1,  # e4
    }
    deletions = stats["deletion_requests"]
    assert (deletions["requests"], deletions["subjects"]) == (3, 25)
    assert deletions["by_recipient"]["push_provider"] == {
        "requests": 1,
        "subjects": 12,
        "by_reason": {"cancellation": 1},
        "by_status": {"undeliverable": 1},
    }
    assert deletions["by_recipient"]["expo_marketing"]["by_reason"] == {"cancellation": 1, "withdraw_consent": 1}
    sharing = stats["sharing"]
    assert (sharing["delivered"], sharing["refused"], sharing["records_delivered"]) == (3, 1, 207)
    assert [e["interval_end"] for e in sharing["entries"]] == sorted(e["interval_end"] for e in sharing["entries"])


def test_the_same_state_gives_the_same_document_and_it_renders(world):
    config, state = world
    first = request_statistics(config, state, START, END)
    assert request_statistics(config, state, T0, T1) == first
    html = render(first)
    assert "form:004" in html and "failed: system &#39;app_db&#39; refused the connection" in html
    with pytest.raises(Exception, match="is not after its start"):
        request_statistics(config, state, END, START)


def test_the_command_prints_or_writes_the_period_given_by_its_last_day(world, engine, connect, tmp_path, capsys):
    config, state = world
    connect("lifecycle_state", engine.url)
    period = ["--config", str(DEMO), "records", "requests", "--from", "2026-11-01", "--to", "2026-11-30"]
    assert cli.main([*period, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(
        reports.canonical(request_statistics(config, state, START, END))
    )
    assert cli.main([*period, "--out", str(tmp_path)]) == 0
    written = tmp_path / "request_statistics_2026-11-01_2026-11-30"
    assert capsys.readouterr().out.split() == ["wrote", f"{written}.json", "wrote", f"{written}.html"]
    assert json.loads(written.with_suffix(".json").read_text())["requests"]["totals"]["received"] == len(REQUESTS)
