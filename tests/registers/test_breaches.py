"""The breach register on SQLite, PostgreSQL and MariaDB: a notified incident beside one the responders
decided not to notify, with its reason; the counts checked against the mail sink and the state store."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle import reports
from lifecycle.cli import main
from lifecycle.registers.breaches import all_breaches, breach_register, render
from lifecycle.state.schema import deliveries, incident_subjects
from tests.incident.test_incident import AS_OF, FORM, _notifier, _recipients, _run
from tests.incident.test_incident import world as world  # the fixture: app database, bucket, mail sink

REASON = "Only chat metadata of one account was copied, to our own backup; the copy was deleted within the hour."
QUIET = "INC-2026-043"  # a leak of chat messages: one person, in the US, whom no regulator's condition covers


def _incidents(config, engine, state, store, sink):
    """INC-2026-042 notified (people in DE and FR: the lead authority is told); INC-2026-043 not."""
    notifier = _notifier(config, engine, state, store)
    _run(notifier, config, "manual__1")
    mails = len(sink.messages)
    _run(
        notifier,
        config,
        "manual__2",
        as_of=AS_OF + timedelta(hours=1),
        incident_id=QUIET,
        affected_categories=[],
        affected_datasets=["chat_messages"],
        decision="not_notify",
        decision_reason=REASON,
    )
    assert len(sink.messages) == mails, "the decision not to notify sent nothing at all"


def _affected(engine, run_id: str) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count(sa.distinct(incident_subjects.c.subject_id))).where(
            incident_subjects.c.run_id == run_id
        )
        return conn.execute(query).scalar_one()


def _statuses(engine, incident_id: str) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.status, sa.func.count())
            .where(deliveries.c.notice == f"incident:{incident_id}")
            .group_by(deliveries.c.status)
        )
        return dict(rows.all())


def test_a_not_notified_incident_is_listed_with_its_reason_beside_a_notified_one(world):
    config, engine, state, store, sink = world
    _incidents(config, engine, state, store, sink)
    register = breach_register(config, state, AS_OF - timedelta(days=30), AS_OF + timedelta(days=1))

    notified, quiet = register["incidents"]
    assert (notified["incident_id"], quiet["incident_id"]) == (FORM["incident_id"], QUIET), "by discovery, then id"
    assert notified["decision"]["decision"] == "notify" and notified["decision"]["status"] == "approved"
    assert quiet["decision"] == {
        "decision": "not_notify",
        "reason": REASON,
        "run_id": "manual__2",
        "status": "approved",
        "history": [
            {
                "run_id": "manual__2",
                "as_of": (AS_OF + timedelta(hours=1)).isoformat(),
                "phase": "initial",
                "decision": "not_notify",
                "reason": REASON,
                "approval": "approved",
                "approved_by": "responder",
            }
        ],
    }
    statuses = _statuses(engine, FORM["incident_id"])
    assert notified["people"]["affected"] == _affected(engine, "manual__1") == 9
    assert notified["people"]["notified"] == len(_recipients(sink)) == statuses["sent"]
    assert notified["people"]["undeliverable"] == statuses["undeliverable"] == 1
    assert notified["people"]["owed"] == notified["people"]["uncertain"] == 0
    assert notified["people"]["notices"] == "done"
    assert quiet["people"]["affected"] == _affected(engine, "manual__2") == 1
    assert quiet["people"]["notified"] == quiet["people"]["owed"] == 0 and _statuses(engine, QUIET) == {}
    assert quiet["people"]["notices"] == "not_notified"

    [lead] = notified["regulators"]
    told = [m for m in sink.messages if m.envelope_to == ["breach@lead-sa.regulator.example"]]
    assert len(told) == 1 and lead["delivered"] and lead["channels"] == ["email"]
    assert (lead["id"], lead["deadline_status"]) == ("eu_lead_sa", "met")
    assert quiet["regulators"] == [], "no regulator's condition holds for one person in the US"
    assert quiet["facts"]["categories"] and quiet["facts"]["datasets"] == ["chat_messages"]
    assert quiet["effects"] == FORM["impact"] and quiet["remedies"]["remedies"] == FORM["remedies"]
    assert register["totals"]["decisions"] == {"not_notify": 1, "notify": 1}
    assert register["totals"]["people"]["affected"] == 10

    page = render(register)
    assert REASON in page and "Not to notify the people affected" in page and FORM["cause"] in page
    again = breach_register(config, state, AS_OF - timedelta(days=30), AS_OF + timedelta(days=1))
    assert reports.canonical(again) == reports.canonical(register), "the same state and period: the same bytes"


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_the_period_picks_incidents_by_discovery_or_first_record_and_judges_open_deadlines(world):
    config, engine, state, store, sink = world
    _incidents(config, engine, state, store, sink)
    discovered = AS_OF - timedelta(hours=2)  # FORM's discovered_at
    assert breach_register(config, state, AS_OF + timedelta(days=1), AS_OF + timedelta(days=2))["incidents"] == []
    only_discovered = breach_register(config, state, discovered, discovered + timedelta(minutes=1))
    assert len(only_discovered["incidents"]) == 2
    recorded_later = breach_register(config, state, AS_OF + timedelta(minutes=30), AS_OF + timedelta(hours=2))
    assert [e["incident_id"] for e in recorded_later["incidents"]] == [QUIET], "first recorded at AS_OF + 1 h"
    assert [e["incident_id"] for e in all_breaches(config, state)["incidents"]] == [FORM["incident_id"], QUIET]

    with engine.begin() as conn:  # as if the regulator's report had never gone out
        conn.execute(sa.text("DELETE FROM lifecycle_regulator_deliveries"))
    ahead = all_breaches(config, state, as_of=AS_OF + timedelta(days=1))
    assert ahead["incidents"][0]["regulators"][0]["deadline_status"] == "open"
    past = all_breaches(config, state, as_of=AS_OF + timedelta(days=4))
    assert past["incidents"][0]["regulators"][0]["deadline_status"] == "missed"
    assert past["totals"]["regulator_deadlines"] == {"missed": 1}


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_the_command_writes_the_register_and_prints_it_as_json(world, tmp_path, capsys, monkeypatch):
    config, engine, state, store, sink = world
    _incidents(config, engine, state, store, sink)
    monkeypatch.setattr("lifecycle.cli._config", lambda args: config)
    monkeypatch.setattr("lifecycle.cli._state", lambda args: state)
    out = tmp_path / "records"
    assert main(["records", "breaches", "--from", "2026-11-01", "--to", "2026-11-30", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 incident(s): 1 not notify, 1 notify" in printed
    assert REASON in (out / "breach-register_2026-11-01_2026-12-01.html").read_text()
    assert main(["records", "breaches", "--from", "2026-11-01", "--to", "2026-11-30", "--json", "--out", str(out)]) == 0
    assert f'"reason": "{REASON}"' in capsys.readouterr().out
    assert main(["records", "breaches", "--from", "2026-12-01", "--to", "2026-11-01"]) == 2
