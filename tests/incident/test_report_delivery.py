"""Regulators receive what is theirs: each told regulator's report e-mailed to its contact (PDF and JSON
attached) and/or uploaded to its system, once, recorded in the register and the ledger; on SQLite,
PostgreSQL and MariaDB, a real SMTP server and moto's S3 server."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.errors import LifecycleError
from lifecycle.mail import Mailer
from lifecycle.mailsink import MailSink
from lifecycle.state import StateStore
from lifecycle.state.schema import deliveries, regulator_deliveries
from tests.incident.test_incident import AS_OF, IN_WINDOW, REGULATORS, _config, _notifier, _run, _seed
from tests.support.sample_app import access_logs

LEAD_SA, CAC, REFUSING = (
    "breach@lead-sa.regulator.example",
    "reports@cac.regulator.example",
    "refuse@closed.regulator.example",
)
TOLD = [
    {
        "id": "eu_lead_sa",
        "name": "Lead SA",
        "deadline": "72h",
        "when": {"subject_countries": ["DE"]},
        "contact": LEAD_SA,
        "delivery": {"system": "regulator_drop", "prefix": "lead-sa/"},
    },
    {"id": "cac_jiangsu", "name": "江苏省网信办", "deadline": "4h", "contact": CAC, "locale": "zh-CN"},
    {"id": "sectoral", "name": "Sectoral authority", "deadline": "30d", "delivery": {"system": "regulator_drop"}},
    {
        "id": "big_only",
        "name": "Big",
        "deadline": "4h",
        "when": {"affected_at_least": 1000},
        "contact": "big@big.regulator.example",
    },
]


@pytest.fixture
def world(engine, tmp_path, monkeypatch, s3_store, s3_conn_id, connect):
    """The incident world of test_incident, with a bucket regulators' reports are uploaded to."""
    connect("app_db", engine.url)
    _seed(engine)
    drop = f"t-reg-{uuid.uuid4().hex[:8]}"
    s3_store.client.create_bucket(Bucket=drop)

    def configure(regulators, folder="config"):
        return _config(
            tmp_path / folder,
            s3_store.bucket,
            s3_conn_id,
            {"regulators": regulators},
            systems={"regulator_drop": {"type": "s3", "conn_id": s3_conn_id, "bucket": drop}},
        )

    config = configure(TOLD)
    state = StateStore(engine, dataset_names=set(config.catalog.datasets))
    with MailSink(rcpt_policy=lambda to: "550 5.1.1 no such mailbox" if to == REFUSING else None) as sink:
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
        yield config, engine, state, s3_store, drop, sink, configure


def _to_regulators(sink) -> list:
    return [m for m in sink.messages if m.envelope_to[0].endswith(REGULATORS)]


def _register(engine) -> dict:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(regulator_deliveries)).all()
    return {(r.run_id, r.regulator_id, r.channel): r for r in rows}


def _files(message) -> dict[str, bytes]:
    return {part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()}


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_each_told_regulator_gets_its_report_by_mail_and_upload_once(world, tmp_path):
    config, engine, state, store, drop, sink, _ = world
    notifier = _notifier(config, engine, state, store)
    summary, _ = _run(notifier, config)

    mails = {m.envelope_to[0]: m for m in _to_regulators(sink)}
    assert sorted(mails) == sorted([LEAD_SA, CAC]), "a regulator not told (big_only) gets nothing"
    rows = _register(engine)
    assert sorted(rows) == [
        ("manual__1", "cac_jiangsu", "email"),
        ("manual__1", "eu_lead_sa", "email"),
        ("manual__1", "eu_lead_sa", "upload"),
        ("manual__1", "sectoral", "upload"),
    ]
    folder = tmp_path / "config" / "reports" / "incidents" / "INC-2026-042" / "manual__1"
    for regulator, address in (("eu_lead_sa", LEAD_SA), ("cac_jiangsu", CAC)):
        message, row = mails[address], rows[("manual__1", regulator, "email")]
        files = _files(message)
        assert sorted(files) == ["incident-INC-2026-042.json", "incident-INC-2026-042.pdf"]
        assert files["incident-INC-2026-042.pdf"] == (folder / f"report.{regulator}.pdf").read_bytes()
        assert files["incident-INC-2026-042.json"] == (folder / f"report.{regulator}.json").read_bytes()
        assert row.pdf_sha256 == hashlib.sha256(files["incident-INC-2026-042.pdf"]).hexdigest()
        assert row.json_sha256 == hashlib.sha256(files["incident-INC-2026-042.json"]).hexdigest()
        assert (row.status, row.target, row.message_id) == ("sent", address, message["Message-ID"])
        assert row.delivered_at == AS_OF.isoformat() and row.late is False
        assert row.pdf_sha256 in message.text, "the cover e-mail names each file's SHA-256"
        report = json.loads(files["incident-INC-2026-042.json"])
        assert any(address in how for how in report["timeline"]["delivered_by"])
    assert mails[CAC]["Subject"].startswith("个人信息安全事件报告") and "江苏省网信办" in mails[CAC].text
    assert mails[LEAD_SA]["Subject"].startswith("Report of a personal information security incident")
    with engine.connect() as conn:
        claims = conn.execute(sa.select(deliveries).where(deliveries.c.notice == "regulator:INC-2026-042:manual__1"))
        assert {c.subject_id: c.status for c in claims} == {"eu_lead_sa": "sent", "cac_jiangsu": "sent"}

    uploaded = store.client.list_objects_v2(Bucket=drop)["Contents"]
    keys = sorted(o["Key"] for o in uploaded)
    assert keys == [
        "INC-2026-042/manual__1/report.sectoral.json",
        "INC-2026-042/manual__1/report.sectoral.pdf",
        "lead-sa/INC-2026-042/manual__1/report.eu_lead_sa.json",
        "lead-sa/INC-2026-042/manual__1/report.eu_lead_sa.pdf",
    ]
    pdf = store.client.get_object(Bucket=drop, Key=keys[3])["Body"].read()
    assert hashlib.sha256(pdf).hexdigest() == rows[("manual__1", "eu_lead_sa", "upload")].pdf_sha256
    assert rows[("manual__1", "sectoral", "upload")].target == f"s3://{drop}/INC-2026-042/manual__1/"

    delivered = summary["reports_delivered"]
    assert delivered["eu_lead_sa"] == {
        "at": AS_OF.isoformat(),
        "deadline": "2026-11-15T08:00:00+00:00",
        "late": False,
        "channels": {"email": "sent", "upload": "uploaded"},
    }
    assert delivered["sectoral"]["channels"] == {"upload": "uploaded"} and set(delivered) == {
        "eu_lead_sa",
        "cac_jiangsu",
        "sectoral",
    }
    entries = [e for e in state.ledger.entries() if e.kind == "incident.delivery"]
    assert len(entries) == 4 and {e.payload["regulator"] for e in entries} == {"eu_lead_sa", "cac_jiangsu", "sectoral"}
    by_key = {e.idempotency_key: e.payload for e in entries}
    email = by_key["incident:INC-2026-042:manual__1:delivery:eu_lead_sa:email"]
    assert (
        email["message_id"] == mails[LEAD_SA]["Message-ID"]
        and email["pdf_sha256"] == rows[("manual__1", "eu_lead_sa", "email")].pdf_sha256
    )

    before = (len(sink.messages), len(list(state.ledger.entries())))
    assert notifier.deliver_reports("manual__1") == delivered, "a rerun delivers nothing again"
    assert (len(sink.messages), len(list(state.ledger.entries()))) == before
    (folder / "report.eu_lead_sa.pdf").write_bytes(b"%PDF-1.4 rendered again")  # a rerun of regulator_reports
    notifier.deliver_reports("manual__1")
    assert _register(engine) == rows, "the register keeps the hashes of what was sent"
    assert state.ledger.verify().ok


class Killed(Exception):
    """The worker dies right after the SMTP server accepted a regulator's mail."""


@pytest.mark.parametrize("backend_url", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_a_delivery_killed_half_way_and_rerun_mails_no_regulator_twice(world):
    config, engine, state, store, drop, sink, _ = world
    email = config.notifications.email

    class Dying(Mailer):
        def deliver(self, composed, **kwargs):
            outcome = super().deliver(composed, **kwargs)
            if composed.to.endswith(REGULATORS):
                raise Killed()
            return outcome

    dying = _notifier(
        config, engine, state, store, mailer=lambda: Dying(email.conn_id, email.from_, email.max_per_second)
    )
    with pytest.raises(Killed):
        _run(dying, config)
    assert len(_to_regulators(sink)) == 1, "one regulator mailed when the task died"
    again = _notifier(config, engine, state, store)
    for _ in range(2):  # the rerun, and once more
        with pytest.raises(LifecycleError, match=r"by email: uncertain .*Message-ID <") as refused:
            again.deliver_reports("manual__1")
        assert "a follow-up run (phase update) delivers again" in str(refused.value)
    to = [m.envelope_to[0] for m in _to_regulators(sink)]
    assert sorted(to) == sorted([LEAD_SA, CAC]) and len(to) == len(set(to)), "each regulator mailed once"
    rows = _register(engine)
    statuses = sorted(r.status for (_, _, channel), r in rows.items() if channel == "email")
    assert statuses == ["sent", "uncertain"], "the mail in flight is never resent, and named uncertain"
    summary = again.finish("manual__1")
    assert sorted(s for r in summary["reports_delivered"].values() for s in r["channels"].values()) == [
        "sent",
        "uncertain",
        "uploaded",
        "uploaded",
    ]
    assert state.ledger.verify().ok


@pytest.mark.parametrize("backend_url", ["sqlite", "postgresql"], indirect=True)
def test_a_late_delivery_says_so_and_carries_the_delay_reasons(world):
    config, engine, state, store, drop, sink, configure = world
    config = configure([{"id": "hourly", "name": "Hourly authority", "deadline": "1h", "contact": CAC}], "late")
    reasons = "The scope could only be confirmed after the forensic review of the export logs."
    summary, _ = _run(_notifier(config, engine, state, store), config, delay_reasons=reasons)
    [message] = _to_regulators(sink)
    assert message["Subject"].endswith("(after the deadline)")
    assert "REASONS FOR THE DELAY" in message.text and reasons in message.text
    files = _files(message)
    report = json.loads(files["incident-INC-2026-042.json"])
    assert report["timeline"]["deadline_met"] is False and report["timeline"]["delay_reasons"] == reasons
    assert reasons in " ".join(_pdf_text(files["incident-INC-2026-042.pdf"]).split())
    [row] = _register(engine).values()
    assert row.late is True and row.deadline == "2026-11-12T09:00:00+00:00" and row.delivered_at == AS_OF.isoformat()
    assert summary["reports_delivered"]["hourly"]["late"] is True


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_follow_up_delivers_the_follow_up_report(world):
    config, engine, state, store, drop, sink, configure = world
    config = configure([{"id": "sectoral", "name": "Sectoral", "deadline": "30d", "contact": LEAD_SA}], "update")
    notifier = _notifier(config, engine, state, store)
    _run(notifier, config)
    with engine.begin() as conn:  # investigation finds one more person
        conn.execute(access_logs.insert().values(id=200, user_id=9, ip="10.0.2.1", path="/p", logged_at=IN_WINDOW))
    _run(notifier, config, run_id="manual__2", phase="update", as_of=AS_OF + timedelta(days=2))
    first, follow_up = _to_regulators(sink)
    assert not first["Subject"].startswith("Follow-up") and follow_up["Subject"].startswith("Follow-up report")
    files = _files(follow_up)
    assert sorted(files) == ["incident-INC-2026-042-follow-up.json", "incident-INC-2026-042-follow-up.pdf"]
    assert json.loads(files["incident-INC-2026-042-follow-up.json"])["follow_up"] is True
    rows = _register(engine)
    assert rows[("manual__2", "sectoral", "email")].phase == "update"
    assert rows[("manual__2", "sectoral", "email")].delivered_at == (AS_OF + timedelta(days=2)).isoformat()


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_refused_mail_to_a_regulator_fails_the_task_once_recorded_and_is_not_retried(world):
    config, engine, state, store, drop, sink, configure = world
    config = configure([{"id": "closed", "name": "Closed office", "deadline": "30d", "contact": REFUSING}], "refused")
    notifier = _notifier(config, engine, state, store)
    with pytest.raises(LifecycleError, match=r"regulator report\(s\) not delivered: closed by email: undeliverable"):
        _run(notifier, config)
    [row] = _register(engine).values()
    assert row.status == "undeliverable" and row.message_id
    with pytest.raises(LifecycleError, match="undeliverable"):
        notifier.deliver_reports("manual__1")
    assert _to_regulators(sink) == []
    assert notifier.finish("manual__1")["reports_delivered"]["closed"]["channels"] == {"email": "undeliverable"}


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_dry_run_delivers_nothing_and_its_drafts_say_how_they_would_go(world, tmp_path):
    config, engine, state, store, drop, sink, _ = world
    notifier = _notifier(config, engine, state, store)
    _, preview = _run(notifier, config, dry_run=True)
    with pytest.raises(LifecycleError, match="dry run: nothing is sent"):
        notifier.deliver_reports("manual__1")
    assert _to_regulators(sink) == [] and "Contents" not in store.client.list_objects_v2(Bucket=drop)
    draft = json.loads((tmp_path / "config" / "reports" / preview["folder"] / "report.eu_lead_sa.json").read_text())
    assert draft["timeline"]["delivered_by"] == [
        f"e-mail to {LEAD_SA} (PDF and JSON attached)",
        "upload to system regulator_drop under lead-sa/",
    ]


@pytest.mark.parametrize("backend_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("dies_after", ["the first file", "both files, before the record"])
def test_an_upload_killed_half_way_is_finished_by_clearing_the_task_and_nothing_is_uploaded_twice(
    world, monkeypatch, dies_after
):
    """The task dies between the puts of a regulator's files, or after them and before their record;
    clearing ``deliver_reports`` finishes the delivery.  The oracle: every version in a versioned bucket."""
    from lifecycle.incident import report_delivery
    from lifecycle.stores.s3 import S3Store

    config, engine, state, store, drop, sink, _ = world
    store.client.put_bucket_versioning(Bucket=drop, VersioningConfiguration={"Status": "Enabled"})
    puts = []
    original_put, original_record = S3Store.put_bytes, report_delivery._record

    def put_then_die(self, key, data, **kwargs):
        version = original_put(self, key, data, **kwargs)
        puts.append(key)
        if dies_after == "the first file" and self.bucket == drop:
            raise Killed()
        return version

    def die_before_record(services, run, package, channel, *args, **kwargs):
        if channel == "upload":
            raise Killed()
        return original_record(services, run, package, channel, *args, **kwargs)

    monkeypatch.setattr(S3Store, "put_bytes", put_then_die)
    if dies_after != "the first file":
        monkeypatch.setattr(report_delivery, "_record", die_before_record)
    notifier = _notifier(config, engine, state, store)
    with pytest.raises(Killed):
        _run(notifier, config)
    monkeypatch.setattr(S3Store, "put_bytes", original_put)
    monkeypatch.setattr(report_delivery, "_record", original_record)

    for _ in range(2):  # the cleared task, and once more
        delivered = notifier.deliver_reports("manual__1")
    versions = store.client.list_object_versions(Bucket=drop).get("Versions", [])
    keys = sorted(v["Key"] for v in versions)
    assert keys == sorted(
        f"{prefix}INC-2026-042/manual__1/report.{regulator}.{ext}"
        for prefix, regulator in (("lead-sa/", "eu_lead_sa"), ("", "sectoral"))
        for ext in ("json", "pdf")
    ), "each file once: one version per key"
    folder = config.catalog.model.reports.path + "/incidents/INC-2026-042/manual__1/"
    for version in versions:
        body = store.client.get_object(Bucket=drop, Key=version["Key"])["Body"].read()
        with open(folder + version["Key"].rsplit("/", 1)[-1], "rb") as written:
            assert body == written.read(), "what is there is the report as written"
    assert {r: d["channels"].get("upload") for r, d in delivered.items()} == {
        "eu_lead_sa": "uploaded",
        "sectoral": "uploaded",
        "cac_jiangsu": None,
    }
    to = [m.envelope_to[0] for m in _to_regulators(sink)]
    assert sorted(to) == sorted([LEAD_SA, CAC]), "each regulator mailed once"
    assert state.ledger.verify().ok
