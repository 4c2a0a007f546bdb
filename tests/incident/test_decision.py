"""A decision not to notify: refused without its reason, approved like a sending run, recorded in the
register and the ledger, no notice or announcement sent (a regulator whose conditions hold still gets
its report), not owed to anyone; a responder who changes their mind notifies everyone later."""

from __future__ import annotations

import html
import json
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from lifecycle import deadlines, reports
from lifecycle.config import load_config
from lifecycle.errors import LifecycleError
from lifecycle.incident import FormError, parse
from lifecycle.reports import ReportSink
from lifecycle.state.schema import deliveries
from lifecycle.view import approval
from lifecycle.view.incidents import incident_summaries, run_view
from tests.config import sample
from tests.incident.test_incident import AS_OF, EMAILED, FORM, PEOPLE, REGULATORS, _notifier, _recipients, _run
from tests.incident.test_incident import world as world  # the fixture: app database, bucket, mail sink

REASON = "The exported logs were encrypted with a key that never left the vault; no one could read them."
WITHHELD = {**FORM, "decision": "not_notify", "decision_reason": REASON}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"decision": "not_notify"}, "decision_reason: say why the people affected are not notified"),
        ({"decision": "not_notify", "decision_reason": "  "}, "decision_reason: say why"),
        ({"decision_reason": REASON}, "decision_reason: given with decision 'notify'"),
        ({**WITHHELD, "channels": ["email", "announcement"]}, "channels: 'announcement' publishes the public notice"),
        (
            {**WITHHELD, "phase": "update", "resend_uncertain": True, "resend_reason": "log"},
            "resend_uncertain: decision",
        ),
        ({"decision": "silence"}, "decision: 'silence' is not one of ['notify', 'not_notify']"),
    ],
)
def test_a_decision_not_to_notify_without_its_reason_is_refused(tmp_path, change, message):
    config = load_config(sample.write(tmp_path / "config"))
    with pytest.raises(FormError) as refused:
        parse({**FORM, **change}, config.catalog)
    assert message in str(refused.value), str(refused.value)
    assert "nothing was done" in str(refused.value)


def test_a_form_without_a_decision_notifies_and_a_reason_is_stripped(tmp_path):
    config = load_config(sample.write(tmp_path / "config"))
    assert parse(FORM, config.catalog).notifies
    withheld = parse({**WITHHELD, "decision_reason": f"  {REASON}\n"}, config.catalog)
    assert (withheld.notifies, withheld.decision_reason) == (False, REASON)


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_decision_not_to_notify_is_recorded_and_sends_no_notice_only_the_regulators_report(world, tmp_path):
    config, engine, state, store, sink = world
    notifier = _notifier(config, engine, state, store)
    summary, _ = _run(notifier, config, **{k: WITHHELD[k] for k in ("decision", "decision_reason")})

    assert _recipients(sink) == [], "nobody affected was mailed"
    assert [m.envelope_to for m in sink.messages] == [["breach@lead-sa.regulator.example"]], (
        "people in DE and FR: the lead authority's conditions hold, its report is due whatever the decision"
    )
    assert summary["outcome"] == "approved" and summary["decision"] == "not_notify"
    assert summary["decision_reason"] == REASON and summary["emails_sent"] == summary["owed"] == 0
    assert summary["announcement"] is None and summary["reports_delivered"]["eu_lead_sa"]["late"] is False
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 1  # the regulator's
    folder = tmp_path / "reports" / "incidents" / FORM["incident_id"] / "manual__1"
    assert not (folder / "letters.csv").exists() and not (folder / "telephone.csv").exists()
    report = json.loads((folder / "report.eu_lead_sa.json").read_text())
    assert report["people_notice"] == {"decision": "not_notify", "reason": REASON}
    assert "decided not to notify" in (folder / "report.eu_lead_sa.html").read_text()
    assert not store.keys("notices/"), "no announcement published"

    entries = {e.kind: e.payload for e in state.ledger.entries()}
    assert entries["incident.registered"]["decision"] == "not_notify"
    assert entries["incident.registered"]["decision_reason"] == REASON
    assert entries["incident.approval"]["decision"] == "approved"
    assert "decision not_notify: no public announcement" in entries["incident.announcement"]["reasons"][-1]
    assert "incident.batch" not in entries
    assert entries["incident.figures"]["decision"] == "not_notify"

    view = run_view(state, ReportSink(config.catalog), FORM["incident_id"], "manual__1", ["en"], AS_OF)
    assert [(line.notice, line.notice_reason) for line in view.runs] == [("not_notify", REASON)]
    who = SimpleNamespace(name="responder", may=SimpleNamespace(everything=False, incidents=True, contact_lists=False))
    page = reports.render("view/incident.html.j2", base="", who=who, q=quote, v=view, docs=[], previews={})
    assert "Decision: <b>not to notify</b> the people affected: " + html.escape(REASON) in page
    body = approval.render_body(state, ReportSink(config.catalog), "manual__1", ["en"])
    assert body.startswith(
        f"**Approve the decision not to notify the people affected by incident {FORM['incident_id']}**"
    )
    assert REASON in body
    [summary_line] = incident_summaries(state, AS_OF)
    assert summary_line.notice == "not_notify" and summary_line.owed == 0

    later = deadlines.check(config, state, AS_OF + timedelta(days=1))
    assert later.found("owed_notices", deadlines.PAST) == later.found("owed_notices", deadlines.NEAR) == []
    with pytest.raises(LifecycleError, match="recorded the decision not to notify"):
        notifier.send_batch("manual__1", 0)


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_responder_who_changes_their_mind_notifies_everyone_and_the_change_is_recorded(world):
    config, engine, state, store, sink = world
    notifier = _notifier(config, engine, state, store)
    _run(notifier, config, "manual__1", decision="not_notify", decision_reason=REASON)
    summary, _ = _run(notifier, config, "manual__2", as_of=AS_OF + timedelta(hours=3))

    assert summary["decision"] == "notify" and summary["newly_notified"] == len(PEOPLE) - 2
    mailed = {PEOPLE[s][0] for s in EMAILED - {6}}  # 6 bounces
    assert set(_recipients(sink)) == mailed and len(_recipients(sink)) == len(mailed), "each once"
    registered = [e.payload for e in state.ledger.entries() if e.kind == "incident.registered"]
    assert [p["decision"] for p in registered] == ["not_notify", "notify"]
    assert registered[1]["changes_decision_of"] == ["manual__1"]
    regulator_mails = [m for m in sink.messages if m.envelope_to[0].endswith(REGULATORS)]
    assert len(regulator_mails) == 2, "one report per approved run"

    with pytest.raises(LifecycleError, match=r"already notified .* can no longer be recorded"):
        _run(notifier, config, "manual__3", phase="update", decision="not_notify", decision_reason=REASON)
