"""Owed notices: a run killed mid-send leaves people untold; every reader says so, and the responder's
next step (an update run) tells them once each; notices in doubt only after a release with a reason."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from lifecycle import deadlines
from lifecycle.errors import LifecycleError
from lifecycle.incident import FormError, parse
from lifecycle.mail import Mailer
from lifecycle.view.incidents import incident_summaries, run_view
from tests.incident.test_incident import AS_OF, EMAILED, FORM, PEOPLE, _notifier, _run
from tests.incident.test_incident import world as world  # the fixture: app database, bucket, mail sink

INCIDENT = FORM["incident_id"]


class Killed(BaseException):
    """The process dies right after the SMTP server took a mail (no handler of ours runs)."""


def _mails_to(sink) -> Counter:
    """The oracle: how many mails each person's address received, counted in the sink."""
    people = {PEOPLE[s][0] for s in EMAILED}
    return Counter(r for m in sink.messages for r in m.envelope_to if r in people)


def _killed_run(config, engine, state, store):
    """An approved initial run whose sending process dies after its second mail went out."""

    class Dying(Mailer):
        mailed = 0

        def deliver(self, *args, **kwargs):
            outcome = super().deliver(*args, **kwargs)
            Dying.mailed += 1
            if Dying.mailed == 2:
                raise Killed()
            return outcome

    email = config.notifications.email
    notifier = _notifier(
        config, engine, state, store, mailer=lambda: Dying(email.conn_id, email.from_, email.max_per_second)
    )
    with pytest.raises(Killed):
        _run(notifier, config)


def _update(notifier, config, run_id, *, days, **form):
    """The responder's next step: the same form with phase 'update', through every step the DAG runs."""
    parsed = parse({**FORM, "phase": "update", **form}, config.catalog)
    notifier.register(parsed, run_id, AS_OF + timedelta(days=days))
    scope = notifier.resolve(run_id)
    notifier.obligations(run_id)
    notifier.preview(run_id)
    for batch in notifier.plan_sends(run_id, {"auto": True}):
        notifier.send_batch(run_id, batch)
    notifier.contact_lists(run_id)
    notifier.announce(run_id)
    notifier.regulator_reports(run_id)
    notifier.deliver_reports(run_id)
    return scope, notifier.finish(run_id)


@pytest.mark.parametrize("backend_url", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_people_a_killed_run_never_reached_are_owed_said_everywhere_and_told_once_by_the_update(world):
    config, engine, state, store, sink = world
    _killed_run(config, engine, state, store)
    mailed = _mails_to(sink)
    assert sum(mailed.values()) == 2 and set(mailed.values()) == {1}
    owed_people = {PEOPLE[s][0] for s in EMAILED} - set(mailed)
    in_doubt = PEOPLE[2][0]  # its mail went out; the kill came before its outcome was recorded
    assert in_doubt in mailed

    # said everywhere: the register's figures per run, the Privacy view, the deadlines check
    [summary] = incident_summaries(state, AS_OF)
    assert (summary.owed, summary.uncertain, summary.open) == (len(owed_people), 1, True)
    view = run_view(state, _NoDocuments(), INCIDENT, "manual__1", ["en"], AS_OF)
    assert view.delivery == {"sent": 1, "owed": 4, "uncertain": 1, "undeliverable": 0, "deferred": 0}
    report = deadlines.check(config, state, AS_OF + timedelta(hours=1))
    [finding] = report.found("owed_notices", deadlines.PAST)
    assert (finding.id, finding.count) == (INCIDENT, 4)
    with pytest.raises(LifecycleError, match=rf"owed_notices past: {INCIDENT}: 4 people"):
        deadlines.verdict(report)
    assert deadlines.Deadlines(config, state).notify(report, "scheduled__owed")["mailed"]
    [summary_mail] = [m for m in sink.messages if m.envelope_to == [config.notifications.contact.email]]
    assert f"{INCIDENT}  4 people" in summary_mail.text and "never sent their notice" in summary_mail.text

    # a re-trigger is refused with the count owed and the one command that finishes it
    notifier = _notifier(config, engine, state, store)
    with pytest.raises(LifecycleError) as refused:
        notifier.register(parse(FORM, config.catalog), "manual__again", AS_OF + timedelta(hours=2))
    assert "4 people are still owed its notice (1 uncertain" in str(refused.value)
    assert "airflow dags trigger incident_notification --conf" in str(refused.value)
    command = shlex.split(str(refused.value).split("once each: ")[1])
    assert command[:4] == ["airflow", "dags", "trigger", "incident_notification"]
    conf = parse(json.loads(command[command.index("--conf") + 1]), config.catalog)
    assert (conf.incident_id, conf.phase, conf.dry_run) == (INCIDENT, "update", False), "the command is the form"

    scope, figures = _update(notifier, config, "manual__2", days=1)
    assert (scope["new"], scope["owed"], scope["released"]) == (0, 7, 0), "4 to mail, 3 for the lists"
    after = _mails_to(sink)
    assert {a: n - mailed.get(a, 0) for a, n in after.items() if n != mailed.get(a, 0)} == {
        a: 1 for a in owed_people - {PEOPLE[6][0]}
    }, "each owed person mailed once (the 5xx address refused), nobody already mailed or in doubt again"
    assert (figures["emails_sent"], figures["undeliverable"], figures["owed"], figures["owed_in_incident"]) == (
        3,
        1,
        0,
        0,
    )
    folder = Path(config.catalog.model.reports.path) / "incidents" / INCIDENT / "manual__2"
    reports = [json.loads(p.read_text()) for p in folder.glob("report.*.json")]
    assert reports and all(
        (r["delivery"]["carried_owed"], r["delivery"]["owed"], r["delivery"]["owed_in_incident"]) == (7, 0, 0)
        and r["scope"]["people_owed_by_earlier_runs"] == 7
        for r in reports
    ), "the regulator report counts the people the follow-up told for the interrupted run, and the owed"
    assert (figures["letters"], figures["telephone"], figures["no_contact"]) == (1, 2, 1), (
        "the killed run never wrote its lists: the update's hold its people without an address"
    )
    assert run_view(state, _NoDocuments(), INCIDENT, "manual__1", ["en"], AS_OF).delivery["owed"] == 0
    assert deadlines.check(config, state, AS_OF + timedelta(days=1)).found("owed_notices", deadlines.PAST) == []
    [summary] = incident_summaries(state, AS_OF + timedelta(days=30))
    assert (summary.owed, summary.uncertain) == (0, 1)

    scope, again = _update(notifier, config, "manual__3", days=2)
    assert _mails_to(sink) == after and again["emails_sent"] == 0, "a second update has nobody left to tell"
    assert scope["owed"] == 0 and again["letters"] == again["telephone"] == 0
    assert state.ledger.verify().ok


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_notices_in_doubt_are_sent_again_only_when_an_update_releases_them_with_a_reason(world):
    config, engine, state, store, sink = world
    _killed_run(config, engine, state, store)
    in_doubt = PEOPLE[2][0]
    notifier = _notifier(config, engine, state, store)
    for change, message in (
        ({"resend_uncertain": True}, "resend_reason: say why"),
        ({"resend_uncertain": True, "resend_reason": "log checked", "phase": "initial"}, "only a run with phase"),
    ):
        with pytest.raises(FormError, match=message):
            parse({**FORM, "phase": "update", **change}, config.catalog)
    _update(notifier, config, "manual__2", days=1)
    assert _mails_to(sink)[in_doubt] == 1, "not released: never mailed twice"
    reason = "The mail server's log shows no 250 for those Message-IDs"
    scope, figures = _update(notifier, config, "manual__3", days=2, resend_uncertain=True, resend_reason=reason)
    assert (scope["owed"], scope["released"]) == (0, 1)
    assert _mails_to(sink)[in_doubt] == 2 and figures["emails_sent"] == 1, "released: mailed once more, once"
    [entry] = [e for e in state.ledger.entries() if e.kind == "incident.released"]
    assert entry.payload["reason"] == reason and entry.payload["released"] == 1
    again = notifier.plan_sends("manual__3", {"auto": True})  # a cleared plan_sends: released once only
    for batch in again:
        notifier.send_batch("manual__3", batch)
    assert _mails_to(sink)[in_doubt] == 2
    assert [e.kind for e in state.ledger.entries()].count("incident.released") == 1
    assert state.ledger.verify().ok


class _NoDocuments:
    """The view's document sink when no document matters to the test."""

    def keys(self, prefix: str) -> list[str]:
        return []
