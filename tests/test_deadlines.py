"""lifecycle_deadlines: erasure requests, regulator reports and agreements near or past their deadline, at the
run's logical date, on SQLite, PostgreSQL and MariaDB; one summary per run to the privacy contact."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from lifecycle import deadlines
from lifecycle.clock import iso_utc
from lifecycle.config import load_config
from lifecycle.errors import LifecycleError
from lifecycle.incident import parse
from lifecycle.incident.models import (
    Approval,
    FallbackDecision,
    Obligations,
    RegulatorDecision,
    facts_json,
    to_json,
)
from lifecycle.mail import Mailer
from lifecycle.mailsink import MailSink
from lifecycle.state import StateStore
from lifecycle.state.erasures import Intake
from lifecycle.state.incidents import RegulatorDelivery
from tests.config import sample
from tests.incident.test_incident import FORM

AS_OF = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # the run's logical date
CONTACT = "privacy@mic.example"


def _recipient(rid: str, expires: str | None) -> dict:
    recipient = copy.deepcopy(sample.RECIPIENTS["recipients"][0])
    recipient["id"] = rid
    recipient["agreement"] = {**recipient["agreement"], "id": f"NDA-{rid}", "signed": "2024-01-01"}
    if expires is None:
        recipient["agreement"].pop("expires")
    else:
        recipient["agreement"]["expires"] = expires
    return recipient


def _config(tmp_path, deadlines_yaml: dict | None = None):
    files = copy.deepcopy(sample.FILES)
    files["recipients.yaml"]["recipients"] = [
        _recipient("lapsed", "2026-11-25"),  # in force through 25 Nov: past
        _recipient("last_day", "2026-11-26"),  # in force through today: near
        _recipient("renewing", "2026-12-25"),  # ends less than 30 days from the run: near
        _recipient("later", "2026-12-26"),  # ends 30 days and 14 h from the run
        _recipient("open_ended", None),
    ]
    if deadlines_yaml is not None:
        files["deadlines.yaml"] = deadlines_yaml
    return load_config(sample.write(tmp_path / "config", files))


def _requested(subject: str, ago: timedelta, state: str, *requests: str) -> Intake:
    at = AS_OF - ago
    return Intake(subject, requests or (f"r{subject}",), iso_utc(at), iso_utc(at + timedelta(days=15)), state, None)


def _erasures(state):
    """complete_within is 30d: a request made 30 days before the run is due exactly at it."""
    state.erasures.record_intake(
        [
            _requested("1", timedelta(days=31), "due"),  # past by a day
            _requested("2", timedelta(days=29, hours=12), "erasing", "r2", "r2b"),  # 12 h left: near
            _requested("3", timedelta(days=29), "failed"),  # 24 h left exactly: near
            _requested("4", timedelta(days=29) - timedelta(seconds=1), "pending"),  # a second over 24 h
            _requested("5", timedelta(days=30), "due"),  # due at the run's instant: not past yet, near
            _requested("6", timedelta(days=40), "held"),  # a legal hold suspends the clock
            _requested("7", timedelta(days=40), "done"),
            _requested("8", timedelta(days=40), "withdrawn"),
        ],
        at=iso_utc(AS_OF),
    )


def _incident(state, config, incident_id, run_id, *, discovered, regulators, dry_run=False, approval=None):
    """A run in the register as the incident stages leave it: facts, obligations and the approval."""
    form = parse(
        {**FORM, "incident_id": incident_id, "discovered_at": iso_utc(discovered), "dry_run": dry_run},
        config.catalog,
    )
    state.incidents.register(
        incident_id=incident_id,
        title=form.title,
        discovered_at=iso_utc(discovered),
        run_id=run_id,
        phase="initial",
        dry_run=dry_run,
        as_of=iso_utc(AS_OF),
        facts=facts_json(form),
    )
    decisions = tuple(
        RegulatorDecision(rid, rid, None, True, ("always",), discovered + timedelta(hours=hours), f"{hours}h", True)
        for rid, hours in regulators.items()
    )
    fallback = FallbackDecision(False, False, 0, 0, 0.0, ("below",))
    obligations = Obligations(1, (), decisions, fallback, AS_OF)
    documents = {"obligations": to_json(obligations)}
    if approval:
        documents["approval"] = to_json(Approval(approval, by=None, how="test"))
    state.incidents.update_run(run_id, **documents)


def _delivered(state, incident_id, run_id, regulator, status="sent"):
    state.incidents.record_regulator_delivery(
        RegulatorDelivery(
            run_id, regulator, "email", incident_id, "initial", status, None, None, None, None, None, "", False
        )
    )


def _register(state, config):
    # INC-A: approved, the lead authority's 72 h end in 2 h: near
    _incident(
        state, config, "INC-A", "a1", discovered=AS_OF - timedelta(hours=70), regulators={"eu": 72}, approval="approved"
    )
    # INC-B: approved, 4 h over, one regulator told, one not: past for that one
    _incident(
        state,
        config,
        "INC-B",
        "b1",
        discovered=AS_OF - timedelta(hours=5),
        regulators={"cac": 4, "eu": 72},
        approval="approved",
    )
    _delivered(state, "INC-B", "b1", "eu")
    # INC-C: delivered in time
    _incident(
        state, config, "INC-C", "c1", discovered=AS_OF - timedelta(hours=5), regulators={"cac": 4}, approval="approved"
    )
    _delivered(state, "INC-C", "c1", "cac")
    # INC-D: only dry runs so far, and the deadline passed: past
    _incident(state, config, "INC-D", "d1", discovered=AS_OF - timedelta(hours=3), regulators={"sa": 1}, dry_run=True)
    # INC-E: a person rejected the notification: nothing owed
    _incident(
        state, config, "INC-E", "e1", discovered=AS_OF - timedelta(hours=9), regulators={"sa": 1}, approval="rejected"
    )
    # INC-F: the first mail bounced; a follow-up run delivered: nothing owed
    _incident(
        state, config, "INC-F", "f1", discovered=AS_OF - timedelta(hours=9), regulators={"sa": 1}, approval="approved"
    )
    _delivered(state, "INC-F", "f1", "sa", "undeliverable")
    _incident(
        state, config, "INC-F", "f2", discovered=AS_OF - timedelta(hours=9), regulators={"sa": 1}, approval="approved"
    )
    _delivered(state, "INC-F", "f2", "sa")
    # INC-G: 7 h left: outside the 6 h window
    _incident(
        state, config, "INC-G", "g1", discovered=AS_OF - timedelta(hours=65), regulators={"eu": 72}, approval="approved"
    )


@pytest.fixture
def watched(engine, tmp_path):
    config = _config(tmp_path)
    state = StateStore(engine, dataset_names=set(config.catalog.datasets))
    _erasures(state)
    _register(state, config)
    return config, state


def _ids(report: deadlines.DeadlineReport) -> dict:
    return {name: {s: [f.id for f in report.found(name, s)] for s in ("past", "near")} for name in report.checks}


def test_each_check_reports_what_is_near_or_past_at_the_runs_logical_date(watched):
    config, state = watched
    report = deadlines.check(config, state, AS_OF)
    assert _ids(report) == {
        "erasure_requests": {"past": ["r1"], "near": ["r5", "r2,r2b", "r3"]},
        "subject_requests": {"past": [], "near": []},
        "regulator_reports": {"past": ["INC-D/sa", "INC-B/cac"], "near": ["INC-A/eu"]},
        "owed_notices": {"past": [], "near": []},
        "agreements": {"past": ["lapsed"], "near": ["last_day", "renewing"]},
    }
    assert (report.past, report.near) == (4, 6) and report.as_of == AS_OF.isoformat()
    data = report.to_json()
    assert (data["past"], data["near"], data["as_of"]) == (4, 6, AS_OF.isoformat())
    assert data["checks"]["erasure_requests"]["past"] == [{"id": "r1", "deadline": "2026-11-25T10:00:00+00:00"}]
    assert data["checks"]["agreements"]["past"] == [{"id": "lapsed", "deadline": "2026-11-25"}]
    assert data["checks"]["regulator_reports"]["near"] == [{"id": "INC-A/eu", "deadline": "2026-11-26T12:00:00+00:00"}]
    assert deadlines.DeadlineReport.from_json(json.loads(json.dumps(data))) == report, "XCom: plain JSON, read back"


def test_the_clock_is_the_runs_logical_date(watched):
    config, state = watched
    earlier = deadlines.check(config, state, AS_OF - timedelta(days=3))
    assert _ids(earlier)["erasure_requests"] == {"past": [], "near": []}
    assert _ids(earlier)["agreements"] == {"past": [], "near": ["lapsed", "last_day"]}
    assert deadlines.check(config, state, AS_OF) == deadlines.check(config, state, AS_OF), "a rerun decides the same"


def test_the_windows_come_from_deadlines_yaml(engine, tmp_path):
    config = _config(tmp_path, {"near": {"erasure_requests": "0s", "regulator_reports": "3h", "agreements": "1d"}})
    state = StateStore(engine, dataset_names=set(config.catalog.datasets))
    _erasures(state)
    _register(state, config)
    report = _ids(deadlines.check(config, state, AS_OF))
    assert report["erasure_requests"] == {"past": ["r1"], "near": ["r5"]}, "0s: only what is due at the run's instant"
    assert report["regulator_reports"]["near"] == ["INC-A/eu"]
    assert report["agreements"] == {"past": ["lapsed"], "near": ["last_day"]}


def test_any_finding_near_or_past_fails_the_verdict_naming_the_ids(watched):
    config, state = watched
    with pytest.raises(LifecycleError) as failed:
        deadlines.verdict(deadlines.check(config, state, AS_OF))
    message = str(failed.value)
    assert message.startswith("4 past and 6 near their deadline: erasure_requests past: r1 (2026-11-25T10:00:00+00:00)")
    assert "regulator_reports near: INC-A/eu" in message and "agreements near: last_day (2026-11-26)" in message
    clear = deadlines.check(config, state, datetime(2026, 1, 1, tzinfo=UTC), checks=deadlines.CHECKS[:1])
    assert deadlines.verdict(clear) == {"past": 0, "near": 0}


def test_a_check_is_one_more_function(watched):
    config, state = watched

    def subject_requests(watch):
        return [deadlines.Finding("SR-1", iso_utc(watch.as_of), deadlines.PAST)]

    report = deadlines.check(config, state, AS_OF, checks=[*deadlines.CHECKS, ("subject_requests", subject_requests)])
    assert _ids(report)["subject_requests"] == {"past": ["SR-1"], "near": []} and report.past == 5


@pytest.fixture
def sink(monkeypatch):
    with MailSink() as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT",
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "extra": {"disable_ssl": True, "disable_tls": True},
                }
            ),
        )
        yield server


def test_the_privacy_contact_gets_one_summary_per_run_with_counts_and_ids(watched, sink):
    config, state = watched
    watch = deadlines.Deadlines(config, state)
    report = watch.check(AS_OF)
    assert watch.notify(report, "scheduled__1") == {"mailed": True, "status": "sent"}
    assert watch.notify(report, "scheduled__1") == {"mailed": False, "status": "sent"}, "a retry mails nobody again"
    [mail] = sink.messages
    assert mail.envelope_to == [CONTACT] and mail["Subject"].startswith("Privacy deadlines: 4 past, 6 near")
    for finding in ("r2,r2b", "INC-B/cac", "INC-A/eu", "lapsed", "renewing"):
        assert finding in mail.text
    assert "@" not in mail.text, "ids and counts only"
    [entry] = [e for e in state.ledger.entries() if e.kind == "deadlines.summary"]
    assert entry.payload["message_id"] == mail["Message-ID"] and entry.payload["past"] == 4
    assert watch.notify(report, "scheduled__2") == {"mailed": True, "status": "sent"}, "the next run mails again"


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_summary_killed_on_the_wire_is_not_sent_again(watched, sink):
    config, state = watched

    class Killed(Exception):
        pass

    class Dying(Mailer):
        def deliver(self, *args, **kwargs):
            super().deliver(*args, **kwargs)
            raise Killed()

    email = config.notifications.email
    dying = deadlines.Deadlines(config, state, mailer=lambda: Dying(email.conn_id, email.from_, email.max_per_second))
    report = dying.check(AS_OF)
    with pytest.raises(Killed):
        dying.notify(report, "scheduled__1")
    assert deadlines.Deadlines(config, state).notify(report, "scheduled__1") == {"mailed": False, "status": "uncertain"}
    assert len(sink.messages) == 1


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_nothing_to_report_or_notify_false_mails_nobody(engine, tmp_path, sink):
    config = _config(tmp_path, {"notify": False})
    state = StateStore(engine, dataset_names=set(config.catalog.datasets))
    watch = deadlines.Deadlines(config, state)
    assert watch.notify(watch.check(AS_OF), "scheduled__1") == {
        "mailed": False,
        "why": "deadlines.yaml: notify is false",
    }
    quiet = deadlines.Deadlines(load_config(sample.write(tmp_path / "quiet")), state)
    assert quiet.notify(quiet.check(datetime(2026, 1, 1, tzinfo=UTC)), "scheduled__2") == {
        "mailed": False,
        "why": "nothing near or past",
    }
    assert sink.messages == []


def test_a_persons_request_still_open_after_respond_within_is_past_and_a_done_one_is_not(tmp_path):
    from lifecycle.state.requests import SubjectRequest

    files = copy.deepcopy(sample.FILES)
    files["requests.yaml"] = {"respond_within": "7d"}
    config = load_config(sample.write(tmp_path / "config", files))
    state = StateStore(sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}"))

    def received(request_id: str, days_ago: float, state_name: str = "received") -> None:
        when = AS_OF - timedelta(days=days_ago)
        request = SubjectRequest(
            request_id, "access", "7", "form", (), None, "received", None,
            when.isoformat(), (when + timedelta(days=7)).isoformat(), None, when.isoformat(),
        )  # fmt: skip
        state.requests.receive(request)
        if state_name != "received":
            state.requests.update(request_id, state_name, at=AS_OF)

    received("late", 8)
    received("planned-late", 7.5, "planned")
    received("tomorrow", 6.5)
    received("answered", 9, "done")
    received("no-such-person", 9, "rejected")
    received("fresh", 1)
    found = _ids(deadlines.check(config, state, AS_OF))["subject_requests"]
    assert found == {"past": ["late", "planned-late"], "near": ["tomorrow"]}, "a dry run does not answer a request"
