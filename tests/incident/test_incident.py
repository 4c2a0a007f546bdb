"""Incident notification on SQLite, PostgreSQL and MariaDB, a real SMTP server and moto's S3 server."""

from __future__ import annotations

import copy
import json
import re
import socket
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from lifecycle import connections
from lifecycle.config import load_config
from lifecycle.errors import LifecycleError, TransientStoreError
from lifecycle.failures import retryable
from lifecycle.incident import FormError, IncidentNotification, parse
from lifecycle.incident.form import param_schemas
from lifecycle.incident.obligations import fallback
from lifecycle.mailsink import MailSink
from lifecycle.state import StateStore
from lifecycle.state.schema import deliveries, incident_runs
from tests.config import sample
from tests.support.s3 import aws_connection
from tests.support.sample_app import access_logs, chat_messages, conversations, meta, users

INCIDENT_ROWS = deliveries.c.notice.startswith("incident:")  # the claim table holds every notice

AS_OF = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)
IN_WINDOW = datetime(2026, 11, 5, 12, 0)
OUTSIDE = datetime(2026, 10, 1, 12, 0)

# id: (email, name, phone, address, country, locale)
PEOPLE = {
    1: ("alice.one@example.com", "Alice One", "+49 30 1234567", "Hauptstr. 1, Berlin", "DE", "de"),
    2: ("li.er@example.cn", "李二", "+86 21 5555 0102", "上海市人民路2号", "CN", "zh-CN"),
    3: (None, "Wang San", "+86 10 5555 0103", None, "CN", "zh-CN"),  # phone only
    4: (None, "Jean Quatre", None, "4 rue de la Paix, Paris", "FR", "fr"),  # post only
    5: (None, "Nobody Five", None, None, "US", "en"),  # no way to reach
    6: ("bounce.six@example.com", "Bounce Six", "+1 555 0106", None, "US", "en"),  # 5xx
    7: ("grey.seven@example.com", "Grey Seven", None, None, "US", "en"),  # 4xx, then accepted
    8: ("old.eight@example.com", "Old Eight", None, None, "US", "en"),  # rows only outside the window
    9: ("quiet.nine@example.com", "Quiet Nine", None, None, "US", "en"),  # no rows at all
    10: ("ten@example.com", "Ten <Ten> & Co", None, None, "GB", "en"),  # a name HTML must escape
    11: ("chat.eleven@example.com", "Chat Eleven", None, None, "US", "en"),  # only through two hops
}
AFFECTED = {1, 2, 3, 4, 5, 6, 7, 10, 11}
EMAILED = {1, 2, 6, 7, 10, 11}
BOUNCE, GREY = "bounce.six@example.com", "grey.seven@example.com"

FORM = {
    "incident_id": "INC-2026-042",
    "title": "Access log exposure",
    "discovered_at": "2026-11-12T08:00:00Z",
    "occurred_from": "2026-11-01T00:00:00Z",
    "occurred_to": "2026-11-10T00:00:00Z",
    "cause": "A misconfigured log export made access records readable from the internet.",
    "affected_categories": ["access_records"],
    "impact": "Someone could learn which pages you visited and from which network.",
    "measures_taken": "We closed the export, rotated keys and engaged an external forensic firm.",
    "precautions": "Be wary of messages that quote your recent activity.",
    "remedies": "We offer a free security review of your account.",
    "channels": ["email", "letter", "telephone"],
    "phase": "initial",
    "dry_run": False,
}


def _config(tmp_path, bucket: str, s3_conn_id: str, incidents: dict | None = None, systems: dict | None = None):
    files = copy.deepcopy(sample.FILES)
    catalog = files["catalog.yaml"]
    catalog["systems"]["media"] = {"type": "s3", "conn_id": s3_conn_id, "bucket": bucket}
    catalog["systems"].update(systems or {})
    catalog["subject"]["contact"] = {
        "email": "email",
        "name": "name",
        "phone": "phone",
        "address": "address",
        "country": "country",
        "locale": "locale",
    }
    catalog["datasets"]["users"]["fields"].update(
        {
            "phone": {"category": "basic_info", "anonymize": "null"},
            "address": {"category": "basic_info", "anonymize": "redact"},
            "country": {"category": "basic_info", "anonymize": "null"},
            "locale": {"personal": False},
        }
    )
    catalog["reports"] = {"path": str(tmp_path / "reports")}
    files["incidents.yaml"].update(
        {
            "email": {
                "conn_id": "smtp_default",
                "from": "MIC Privacy <privacy@mic.example>",
                "max_per_second": 500,
                "retry_attempts": 3,
                "retry_backoff": "1s",
            },
            "batch_size": 4,
        },
        **(incidents or {}),
    )
    return load_config(sample.write(tmp_path / "config", files))


def _seed(engine):
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            users.insert(),
            [
                {
                    "id": i,
                    "email": e,
                    "name": n,
                    "phone": p,
                    "address": a,
                    "country": c,
                    "locale": loc,
                    "password_hash": "h",
                    "tier": "gold",
                    "created_at": OUTSIDE,
                }
                for i, (e, n, p, a, c, loc) in PEOPLE.items()
            ],
        )
        logs = [
            {"id": n, "user_id": u, "ip": f"10.0.0.{n}", "path": "/p", "logged_at": IN_WINDOW}
            for n, u in enumerate(sorted(AFFECTED - {11}), start=1)
        ]
        logs += [
            {"id": 100, "user_id": 8, "ip": "10.0.1.1", "path": "/p", "logged_at": OUTSIDE},
            {"id": 101, "user_id": 1, "ip": "10.0.1.2", "path": "/p", "logged_at": IN_WINDOW},
        ]
        conn.execute(access_logs.insert(), logs)
        conn.execute(conversations.insert(), [{"id": 1, "user_id": 11, "created_at": OUTSIDE}])
        conn.execute(chat_messages.insert(), [{"id": 1, "conversation_id": 1, "body": "hello", "sent_at": IN_WINDOW}])


class Refusals:
    """RCPT policy: 550 for the bounce address, 451 the first two times for the greylisting one."""

    def __init__(self):
        self.seen: dict[str, int] = {}

    def __call__(self, address: str) -> str | None:
        self.seen[address] = self.seen.get(address, 0) + 1
        if address == BOUNCE:
            return "550 5.1.1 mailbox unavailable"
        if address == GREY and self.seen[address] <= 2:
            return "451 4.7.1 greylisted, try again later"
        return None


@pytest.fixture
def world(engine, tmp_path, monkeypatch, s3_store, s3_conn_id, connect):
    """The app database and the media bucket reached through Airflow connections, as tasks reach them."""
    connect("app_db", engine.url)
    _seed(engine)
    config = _config(tmp_path, s3_store.bucket, s3_conn_id)
    state = StateStore(engine, dataset_names=set(config.catalog.datasets))
    with MailSink(rcpt_policy=Refusals()) as sink:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT",
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": sink.port,
                    "extra": {"disable_ssl": True, "disable_tls": True},
                }
            ),
        )
        yield config, engine, state, s3_store, sink


def _notifier(config, engine, state, store, sleeps=None, mailer=None):
    return IncidentNotification(
        config, state, mailer=mailer, sleep=(sleeps.append if sleeps is not None else lambda s: None)
    )


def _run(notifier, config, run_id="manual__1", *, approve="approved", as_of=AS_OF, **changes):
    form = parse({**FORM, **changes}, config.catalog)
    notifier.register(form, run_id, as_of)
    notifier.resolve(run_id)
    notifier.obligations(run_id)
    preview = notifier.preview(run_id)
    if form.dry_run:
        return notifier.finish(run_id), preview
    notifier.record_approval(run_id, approve, by="responder", how="test")
    if approve != "approved":
        return notifier.finish(run_id), preview
    for batch in notifier.batches(run_id):
        notifier.send_batch(run_id, batch)
    notifier.contact_lists(run_id)
    notifier.announce(run_id)
    notifier.regulator_reports(run_id)
    notifier.deliver_reports(run_id)
    return notifier.finish(run_id), preview


REGULATORS = ".regulator.example"  # the regulators' addresses in these tests


def _recipients(sink) -> list[str]:
    """The people mailed (regulators' reports left out)."""
    return sorted(r for m in sink.messages for r in m.envelope_to if not r.endswith(REGULATORS))


def _email(subject: int) -> str:
    return PEOPLE[subject][0]


# ------------------------------------------------------------------- the form


def test_the_form_offers_the_catalogs_datasets_and_categories(tmp_path):
    config = load_config(sample.write(tmp_path / "config"))
    schemas = param_schemas(config.catalog)
    assert schemas["affected_datasets"][1]["items"]["enum"] == [
        "users",
        "access_logs",
        "conversations",
        "chat_messages",
        "orders",
        "chat_photos",
    ]
    assert schemas["affected_categories"][1]["items"]["enum"] == list(sample.CATALOG["categories"])
    assert schemas["dry_run"][0] is True and schemas["phase"][0] == "initial"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"incident_id": "x"}, "incident_id: 'x' does not match"),
        ({"discovered_at": "yesterday"}, "discovered_at: 'yesterday' is not a 'date-time'"),
        ({"affected_datasets": ["payroll"]}, "affected_datasets: 'payroll' is not one of"),
        ({"affected_categories": []}, "scope: name the affected datasets or categories"),
        ({"subjects_uri": "s3://bkt-ids/ids.txt"}, "not both"),
        ({"occurred_from": "2026-11-11T00:00:00Z"}, "occurred_from 2026-11-11T00:00:00+00:00 is after occurred_to"),
        ({"occurred_to": None}, "occurred_from and occurred_to: both are needed"),
        ({"phase": "final"}, "phase: 'final' is not one of ['initial', 'update']"),
        ({"cause": None}, "cause: required"),
        ({"channels": ["pigeon"]}, "channels: 'pigeon' is not one of"),
        ({"contact": {"name": "Desk", "email": "nope"}}, "contact.email: 'nope' is not an e-mail address"),
        ({"colour": "red"}, "unknown field(s) ['colour']"),
    ],
)
def test_invalid_form_input_is_refused_with_a_clear_message(tmp_path, change, message):
    config = load_config(sample.write(tmp_path / "config"))
    with pytest.raises(FormError) as refused:
        parse({**FORM, **change}, config.catalog)
    assert message in str(refused.value), str(refused.value)
    assert "nothing was done" in str(refused.value)


def test_airflow_refuses_input_that_does_not_fit_the_params(tmp_path):
    from airflow.sdk.definitions.param import ParamsDict

    from lifecycle.incident import airflow_params

    config = load_config(sample.write(tmp_path / "config"))
    params = ParamsDict(airflow_params(config.catalog))
    params.update({k: v for k, v in FORM.items()})
    assert params.validate()["dry_run"] is False
    bad = ParamsDict(airflow_params(config.catalog))
    with pytest.raises(Exception, match="payroll"):
        bad.update({**FORM, "affected_datasets": ["payroll"]})
        bad.validate()


# ------------------------------------------------------------------ e-mails


def test_each_affected_person_with_email_gets_one_mail_with_every_section_in_their_language(world):
    config, engine, state, store, sink = world
    sleeps: list[float] = []
    summary, _ = _run(_notifier(config, engine, state, store, sleeps), config)
    assert _recipients(sink) == sorted(_email(s) for s in EMAILED - {6})
    by_to = {m.envelope_to[0]: m for m in sink.messages}
    english = [
        "WHAT HAPPENED",
        "WHAT INFORMATION WAS INVOLVED",
        "POSSIBLE IMPACT",
        "WHAT WE ARE DOING",
        "WHAT YOU CAN DO",
        "REMEDIES",
        "FOR MORE INFORMATION",
    ]
    chinese = ["事件基本情况", "涉及的个人信息", "可能的影响", "处置措施", "防范措施", "补救措施", "联系方式"]
    for subject in EMAILED - {6}:
        message = by_to[_email(subject)]
        text = message.get_body(preferencelist=("plain",)).get_content()
        html = message.get_body(preferencelist=("html",)).get_content()
        headings = chinese if subject == 2 else english
        assert all(h in text for h in headings), (subject, text)
        assert all(h.lower() in html.lower() for h in headings), subject
        assert (
            FORM["precautions"] in text and "privacy@mic.example" in text and "Personal Internet access records" in text
        ) or subject == 2
        assert PEOPLE[subject][1] in text, "addressed by name"
        assert subject != 10 or "Dear Ten &lt;Ten&gt; &amp; Co," in html
        assert message["Content-Language"] == ("zh-CN" if subject == 2 else "en")
    assert "个人信息安全事件告知" in by_to[_email(2)]["Subject"]
    assert summary["emails_sent"] == 5 and summary["undeliverable"] == 1
    assert [round(s) for s in sleeps] == [1, 2], "451 twice: tried again 1 s, then 2 s later, then accepted"
    assert state.ledger.verify().ok


def test_a_5xx_address_is_undeliverable_and_goes_to_the_lists_with_people_without_email(world, tmp_path):
    config, engine, state, store, sink = world
    summary, _ = _run(_notifier(config, engine, state, store), config)
    with engine.connect() as conn:
        rows = {r.subject_id: r for r in conn.execute(sa.select(deliveries).where(INCIDENT_ROWS))}
    assert rows["6"].status == "undeliverable" and rows["6"].code == 550
    assert rows["7"].status == "sent" and rows["7"].attempts == 3
    folder = tmp_path / "reports" / "incidents" / "INC-2026-042" / "manual__1"
    letters = (folder / "letters.csv").read_text().splitlines()
    calls = (folder / "telephone.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in letters[1:]] == ["4"]
    assert [line.split(",")[0] for line in calls[1:]] == ["3", "6"]
    assert "e-mail undeliverable" in calls[2] and "no e-mail address" in calls[1]
    assert (summary["letters"], summary["telephone"], summary["no_contact"]) == (1, 2, 1)


class Killed(Exception):
    """The worker dies right after the SMTP server accepted a mail."""


@pytest.mark.parametrize("backend_url", ["sqlite", "postgresql"], indirect=True)
def test_a_run_killed_in_the_middle_of_sending_mails_each_person_once_after_a_rerun(world):
    config, engine, state, store, sink = world
    from lifecycle.mail import Mailer

    class Dying(Mailer):
        calls = 0

        def deliver(self, *args, **kwargs):
            outcome = super().deliver(*args, **kwargs)
            Dying.calls += 1
            if Dying.calls == 2:
                raise Killed()
            return outcome

    email = config.notifications.email
    dying = _notifier(
        config, engine, state, store, mailer=lambda: Dying(email.conn_id, email.from_, email.max_per_second)
    )
    with pytest.raises(Killed):
        _run(dying, config)
    assert len(sink.messages) == 2
    again = _notifier(config, engine, state, store)
    for batch in again.batches("manual__1"):
        again.send_batch("manual__1", batch)
    for batch in again.batches("manual__1"):  # and once more: nothing new
        again.send_batch("manual__1", batch)
    sent = _recipients(sink)
    assert sent == sorted(set(sent)) == sorted(_email(s) for s in EMAILED - {6})
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(sa.select(deliveries.c.subject_id, deliveries.c.status).where(INCIDENT_ROWS)).all()
        )
    assert list(statuses.values()).count("uncertain") == 1, "the one in flight is never resent, and is named uncertain"
    assert state.ledger.verify().ok


def test_a_dry_run_writes_previews_and_sends_nothing(world, tmp_path):
    config, engine, state, store, sink = world
    notifier = _notifier(config, engine, state, store)
    summary, preview = _run(notifier, config, dry_run=True)
    assert sink.messages == [] and summary["outcome"] == "dry run" and summary["emails_sent"] == 0
    folder = tmp_path / "reports" / preview["folder"]
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "announcement.html",
        "email.en.html",
        "email.en.txt",
        "email.zh-CN.html",
        "email.zh-CN.txt",
        "report.eu_lead_sa.html",
        "report.eu_lead_sa.json",
        "report.eu_lead_sa.pdf",
    ]
    assert "Dear customer" in (folder / "email.en.txt").read_text()
    assert json.loads((folder / "report.eu_lead_sa.json").read_text())["draft"] is True
    with pytest.raises(Exception, match="dry run: nothing is sent"):
        notifier.send_batch("manual__1", 0)
    assert list(store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])) == []


def test_a_rejected_run_sends_nothing(world):
    config, engine, state, store, sink = world
    notifier = _notifier(config, engine, state, store)
    summary, _ = _run(notifier, config, approve="rejected")
    assert summary["outcome"] == "rejected"
    with pytest.raises(Exception, match="not approved \\(rejected\\)"):
        notifier.send_batch("manual__1", 0)
    assert sink.messages == []


@pytest.mark.parametrize(
    "answer, decision",
    [
        (None, None),
        ({"auto": True}, {"decision": "approved", "by": None, "how": "incidents.yaml approval: none"}),
        (
            {
                "chosen_options": ["Approve"],
                "params_input": {},
                "responded_by_user": {"id": "7", "name": "duty-officer"},
            },
            {"decision": "approved", "by": "duty-officer", "how": "approval task"},
        ),
        (
            {
                "chosen_options": ["Reject"],
                "params_input": {},
                "responded_by_user": {"id": "7", "name": "duty-officer"},
            },
            {"decision": "rejected", "by": "duty-officer", "how": "approval task"},
        ),
    ],
)
def test_the_approval_tasks_answer_becomes_the_registers_decision(answer, decision):
    from lifecycle.incident.approval import approval_from_answer

    approval = approval_from_answer(answer)
    assert (approval and approval.to_dict()) == decision


# ------------------------------------------------------------ obligations


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_deadlines_run_from_discovery_for_each_matching_regulator(world, tmp_path):
    config, engine, state, store, sink = world
    config = _config(
        tmp_path / "c2",
        store.bucket,
        world[0].catalog.systems["media"].conn_id,
        {
            "regulators": [
                {
                    "id": "cac_jiangsu",
                    "name": "Jiangsu CAC",
                    "deadline": "4h",
                    "when": {"affected_at_least": 9},
                    "contact": "reports@cac-jiangsu.regulator.example",
                },
                {
                    "id": "cac_big",
                    "name": "Big",
                    "deadline": "4h",
                    "when": {"affected_at_least": 10},
                    "contact": "reports@cac-big.regulator.example",
                },
                {
                    "id": "eu_lead_sa",
                    "name": "Lead SA",
                    "deadline": "72h",
                    "when": {"subject_countries": ["DE", "FR"]},
                    "contact": "reports@eu-lead-sa.regulator.example",
                },
                {
                    "id": "ca_ag",
                    "name": "California AG",
                    "deadline": "30d",
                    "when": {"subject_countries": ["US"], "categories": ["transaction_records"]},
                    "contact": "reports@ca-ag.regulator.example",
                },
                {"id": "always", "name": "Sectoral", "deadline": "1h", "contact": "reports@always.regulator.example"},
            ]
        },
    )
    notifier = _notifier(config, engine, state, store)
    form = parse({**FORM, "dry_run": True}, config.catalog)
    notifier.register(form, "manual__d", AS_OF)
    notifier.resolve("manual__d")
    notifier.obligations("manual__d")
    with engine.connect() as conn:
        obligations = conn.execute(sa.select(incident_runs.c.obligations)).scalar_one()
    regulators = {r["id"]: r for r in json.loads(obligations)["regulators"]}
    assert {k for k, r in regulators.items() if r["matched"]} == {"cac_jiangsu", "eu_lead_sa", "always"}
    assert regulators["cac_jiangsu"]["deadline"] == "2026-11-12T12:00:00+00:00"
    assert regulators["eu_lead_sa"]["deadline"] == "2026-11-15T08:00:00+00:00"
    assert regulators["always"]["deadline"] == "2026-11-12T09:00:00+00:00"
    assert (
        regulators["always"]["met_if_notified_now"] is False
        and regulators["cac_jiangsu"]["met_if_notified_now"] is True
    )
    assert "9 affected (threshold 10)" in regulators["cac_big"]["reasons"][0]
    assert "none of transaction_records involved" in regulators["ca_ag"]["reasons"][1]


@pytest.mark.parametrize(
    "affected, unreachable, notified, fires",
    [
        (499_999, 0, 499_999, False),
        (500_000, 0, 500_000, True),
        (1000, 99, 1000, False),
        (1000, 100, 1000, True),
        (10, 1, 10, True),
        (0, 0, 0, False),
    ],
)
def test_the_fallback_fires_exactly_at_its_thresholds(tmp_path, affected, unreachable, notified, fires):
    config = load_config(sample.write(tmp_path / "config"))
    decision = fallback(config.incidents.fallback, affected, unreachable, notified, chosen=False).to_dict()
    assert decision["fires"] is fires and decision["publish"] is fires
    assert decision["reasons"] and ("at least" in decision["reasons"][0]) is fires


# -------------------------------------------------- documents and follow-up


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_announcement_and_reports_name_no_person(world, tmp_path):
    config, engine, state, store, sink = world
    config = _config(
        tmp_path / "c3",
        store.bucket,
        world[0].catalog.systems["media"].conn_id,
        {
            "regulators": [
                {
                    "id": "eu_lead_sa",
                    "name": "Lead SA",
                    "deadline": "72h",
                    "when": {"subject_countries": ["DE"]},
                    "contact": "reports@eu-lead-sa.regulator.example",
                }
            ]
        },
    )
    summary, _ = _run(
        _notifier(config, engine, state, store), config, channels=["email", "letter", "telephone", "announcement"]
    )
    folder = tmp_path / "c3" / "reports" / "incidents" / "INC-2026-042" / "manual__1"
    announcement = store.get_bytes("notices/INC-2026-042.html").decode()
    assert summary["announcement"].endswith(f"/{store.bucket}/notices/INC-2026-042.html")
    from pypdf import PdfReader

    def read(path):
        return "".join(p.extract_text() for p in PdfReader(path).pages) if path.suffix == ".pdf" else path.read_text()

    documents = {"announcement": announcement}
    documents.update({path.name: read(path) for path in folder.glob("report.*")})
    documents.update(
        {f"preview/{p.name}": read(p) for p in (folder / "preview").iterdir() if not p.name.startswith("email")}
    )
    assert {"report.eu_lead_sa.html", "report.eu_lead_sa.pdf", "report.eu_lead_sa.json"} <= set(documents)
    for name, text in documents.items():
        for email, person, phone, address, _, _ in PEOPLE.values():
            for value in (email, person, phone, address):
                assert not value or value not in text, f"{name} holds {value!r}"
        assert not re.search(r"[\w.]+@example\.(com|cn)", text), name
    report = json.loads((folder / "report.eu_lead_sa.json").read_text())
    assert report["timeline"]["deadline"] == "2026-11-15T08:00:00+00:00" and report["timeline"]["deadline_met"] is True
    assert report["delivery"]["emails_sent"] == 5 and report["delivery"]["undeliverable"] == 1
    assert report["scope"]["records_by_category"] == {"Personal Internet access records": 10}
    assert report["follow_up"] is False and "Follow-up" not in documents["report.eu_lead_sa.html"]
    assert "Deadline met" in documents["report.eu_lead_sa.pdf"]


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_report_with_chinese_text_renders_it_in_the_pdf(world, tmp_path):
    config, engine, state, store, sink = world
    config = _config(
        tmp_path / "c5",
        store.bucket,
        world[0].catalog.systems["media"].conn_id,
        {
            "regulators": [
                {
                    "id": "cac_jiangsu",
                    "name": "江苏省网信办",
                    "deadline": "4h",
                    "contact": "reports@cac-jiangsu.regulator.example",
                }
            ]
        },
    )
    _run(
        _notifier(config, engine, state, store), config, dry_run=True, cause="日志导出配置错误，访问记录可被公开读取。"
    )
    from pypdf import PdfReader

    pdf = (
        tmp_path / "c5" / "reports" / "incidents" / "INC-2026-042" / "manual__1" / "preview" / "report.cac_jiangsu.pdf"
    )
    text = "".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "日志导出配置错误" in text and "江苏省网信办" in text


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_follow_up_notifies_only_newly_affected_people_and_marks_reports(world, tmp_path):
    config, engine, state, store, sink = world
    config = _config(
        tmp_path / "c4",
        store.bucket,
        world[0].catalog.systems["media"].conn_id,
        {
            "regulators": [
                {"id": "always", "name": "Sectoral", "deadline": "30d", "contact": "reports@always.regulator.example"}
            ]
        },
    )
    notifier = _notifier(config, engine, state, store)
    _run(notifier, config)
    first = _recipients(sink)
    with engine.begin() as conn:  # investigation finds one more person: user 9 was affected as well
        conn.execute(access_logs.insert().values(id=200, user_id=9, ip="10.0.2.1", path="/p", logged_at=IN_WINDOW))
    with pytest.raises(Exception, match="already notified"):
        _run(notifier, config, run_id="manual__again")
    summary, _ = _run(notifier, config, run_id="manual__2", phase="update", as_of=AS_OF + timedelta(days=2))
    assert sorted(set(_recipients(sink)) - set(first)) == [_email(9)] and len(_recipients(sink)) == len(first) + 1
    assert summary["newly_notified"] == 1 and summary["affected"] == len(AFFECTED) + 1
    report = json.loads(
        (tmp_path / "c4" / "reports" / "incidents" / "INC-2026-042" / "manual__2" / "report.always.json").read_text()
    )
    assert report["follow_up"] is True and report["scope"]["people_affected_total"] == len(AFFECTED) + 1
    assert (
        "Follow-up report"
        in (tmp_path / "c4" / "reports" / "incidents" / "INC-2026-042" / "manual__2" / "report.always.html").read_text()
    )
    message = next(m for m in sink.messages if m.envelope_to == [_email(9)])
    assert message["Subject"].startswith("Update: ")


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_people_can_come_from_an_s3_listing_of_ids(world):
    config, engine, state, store, sink = world
    store.put_bytes("incident/ids.txt", b"# affected accounts\n2\n9\n404\n", content_type="text/plain")
    notifier = _notifier(config, engine, state, store)
    summary, _ = _run(
        notifier,
        config,
        affected_categories=[],
        occurred_from=None,
        occurred_to=None,
        subjects_uri=f"s3://{store.bucket}/incident/ids.txt",
    )
    assert _recipients(sink) == sorted([_email(2), _email(9)])
    with engine.connect() as conn:
        scope = json.loads(conn.execute(sa.select(incident_runs.c.scope)).scalar_one())
    assert scope["unknown_ids"] == 1 and scope["affected"] == 2


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_list_of_ids_out_of_reach_for_now_is_retried_and_a_missing_one_is_not(world, monkeypatch):
    config, engine, state, store, sink = world
    media = config.catalog.systems["media"].conn_id
    notifier = _notifier(config, engine, state, store)
    form = parse(
        {
            **FORM,
            "affected_categories": [],
            "occurred_from": None,
            "occurred_to": None,
            "subjects_uri": f"s3://{store.bucket}/incident/missing.txt",
        },
        config.catalog,
    )
    notifier.register(form, "manual__ids", AS_OF)
    with pytest.raises(
        LifecycleError, match=r"subjects_uri: cannot read s3://.*/incident/missing.txt: NoSuchKey"
    ) as missing:
        notifier.resolve("manual__ids")
    assert not retryable(missing.value)
    with socket.socket() as probe:  # the same bucket behind an endpoint that does not answer now
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv(f"AIRFLOW_CONN_{media.upper()}", aws_connection(f"http://127.0.0.1:{closed}"))
    connections.forget()
    with pytest.raises(TransientStoreError, match="EndpointConnectionError") as blip:
        _notifier(config, engine, state, store).resolve("manual__ids")
    assert retryable(blip.value)


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_the_register_holds_facts_decisions_and_figures_and_the_ledger_no_addresses(world):
    config, engine, state, store, sink = world
    _run(_notifier(config, engine, state, store), config)
    with engine.connect() as conn:
        run = conn.execute(sa.select(incident_runs)).one()
    assert json.loads(run.facts)["cause"] == FORM["cause"]
    assert json.loads(run.scope)["by_country"] == {"DE": 1, "CN": 2, "FR": 1, "US": 4, "GB": 1}
    assert json.loads(run.scope)["reach"] == {"email": 6, "phone": 1, "post": 1, "none": 1}
    assert json.loads(run.approval) == {"decision": "approved", "by": "responder", "how": "test"}
    assert json.loads(run.figures)["final"]["emails_sent"] == 5
    kinds = [e.kind for e in state.ledger.entries()]
    assert kinds.count("incident.batch") == 2 and "incident.figures" in kinds
    ledger = json.dumps([e.payload for e in state.ledger.entries()], ensure_ascii=False)
    for email, person, phone, *_ in PEOPLE.values():
        assert not (email and email in ledger) and person not in ledger


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_resolving_again_after_a_crash_before_the_scope_was_saved_finds_the_same_people(world):
    config, engine, state, store, sink = world
    notifier = _notifier(config, engine, state, store)
    notifier.register(parse({**FORM, "dry_run": True}, config.catalog), "manual__r", AS_OF)
    first = notifier.resolve("manual__r")
    with engine.begin() as conn:
        conn.execute(incident_runs.update().values(scope=None))
    assert notifier.resolve("manual__r") == first == notifier.resolve("manual__r")


def test_a_locale_without_an_incident_notice_template_is_refused(tmp_path):
    from lifecycle.errors import ConfigError

    files = copy.deepcopy(sample.FILES)
    files["incidents.yaml"]["locales"] = ["en", "tlh"]
    with pytest.raises(ConfigError, match=r"incidents.yaml: locales\[1\]: 'tlh' has no incident notice template"):
        load_config(sample.write(tmp_path / "config", files))


# A run's documents as the register held them before they were typed (an approved run with its announcement):
# they must read, and write back byte for byte.
STORED = {
    "scope": '{"affected": 9, "already_notified": 0, "batches": 2, "by_country": {"CN": 2, "DE": 1, "FR": 1, '
    '"GB": 1, "US": 4}, "by_locale": {"de": 1, "en": 5, "fr": 1, "zh-CN": 2}, "categories": ["access_records"], '
    '"datasets": {"access_logs": 9, "chat_messages": 1}, "new": 9, "reach": {"email": 6, "none": 1, "phone": 1, '
    '"post": 1}, "records_by_category": {"access_records": 10}, "unknown_ids": 0}',
    "obligations": '{"affected_total": 9, "countries": ["CN", "DE"], "decided_at": "2026-11-12T10:00:00+00:00", '
    '"fallback": {"fires": true, "notified": 9, "publish": true, "reasons": ["3 of 9 people to notify"], '
    '"unreachable": 3, "unreachable_fraction": 0.333333}, "fallback_final": {"delivery": {"sent": 5, '
    '"undeliverable": 1}, "fires": true, "notified": 9, "publish": true, "published": {"location": '
    '"s3://bkt/notices/INC-2026-042.html", "system": "media", "url": "http://s3.example/bkt/notices/INC-2026-042.html"}, '
    '"reasons": ["4 of 9 people to notify"], "unreachable": 4, "unreachable_fraction": 0.444444}, "regulators": '
    '[{"contact": null, "deadline": "2026-11-15T08:00:00+00:00", "deadline_after_discovery": "72h", "id": "eu", '
    '"matched": true, "met_if_notified_now": true, "name": "EU", "reasons": ["affected people in DE"]}]}',
    "approval": '{"by": "responder", "decision": "approved", "how": "test"}',
    "figures": '{"final": {"affected": 9, "outcome": "approved"}, "lists": {"files": {"letters": "r/letters.csv"}, '
    '"letters": 1, "no_contact": 1, "telephone": 2}, "preview": {"email.en.txt": "r/preview/email.en.txt"}, '
    '"reports": {"eu": {"html": "r/report.eu.html", "json": "r/report.eu.json", "pdf": "r/report.eu.pdf"}}}',
}


@pytest.mark.parametrize("column", sorted(STORED))
def test_a_runs_documents_written_before_read_and_write_back_unchanged(column):
    from lifecycle.incident import models

    model = {"scope": models.Scope, "obligations": models.Obligations, "approval": models.Approval}
    document = model.get(column, models.Figures).from_dict(json.loads(STORED[column]))
    assert models.to_json(document) == STORED[column]
