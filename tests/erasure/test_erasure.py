"""Erasure after account cancellation on SQLite, PostgreSQL, MariaDB and moto's S3 server."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import yaml

from lifecycle import attestations, reports
from lifecycle.config import load_config
from lifecycle.erasure import BatchResult, Erasure
from lifecycle.erasure.late import check_overdue
from lifecycle.errors import LifecycleError
from lifecycle.mailsink import MailSink
from lifecycle.sharing.interval import Interval
from lifecycle.sharing.register import SharingRegister, disclosure
from lifecycle.state import StateStore
from lifecycle.state.ledger import Ledger
from lifecycle.state.schema import erasures, recipient_deletions
from lifecycle.stores import open_store
from lifecycle.stores.contract import Change, Selection
from lifecycle.stores.s3 import S3Store
from lifecycle.stores.sql import SqlStore
from tests.config import sample
from tests.support.s3 import aws_connection
from tests.support.sample_app import access_logs, chat_messages, conversations, meta, orders, users

AS_OF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NOW = AS_OF.replace(tzinfo=None)
cancellations = sa.Table(
    "account_cancellations",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),
    sa.Column("requested_at", sa.DateTime),
    sa.Column("withdrawn_at", sa.DateTime),
)
DUE, HELD, PENDING, WITHDRAWN, DUPLICATE, MISSING = 2, 3, 4, 5, 6, 99
ERASED = {DUE, DUPLICATE}


def _config(tmp_path, bucket, reports=None, systems=None, **more_datasets):
    files = copy.deepcopy(sample.FILES)
    catalog = files["catalog.yaml"]
    catalog["systems"]["media"]["bucket"] = bucket
    catalog["datasets"].update(more_datasets)
    catalog["systems"].update(systems or {})
    catalog["categories"]["account_records"] = {"title": "Account cancellation requests", "purposes": ["account"]}
    catalog["datasets"]["account_cancellations"] = {
        "system": "app_db",
        "table": "account_cancellations",
        "primary_key": "id",
        "subject": "user_id -> users.id",
        "created": "requested_at",
        "category": "account_records",
        "fields": {"withdrawn_at": {}},
    }
    catalog["reports"] = reports or {"path": str(tmp_path / "reports")}
    files["cancellation.yaml"] = {
        "requests": {
            "dataset": "account_cancellations",
            "subject": "user_id",
            "requested_at": "requested_at",
            "withdrawn_at": "withdrawn_at",
        },
        "grace_period": "15d",
        "complete_within": "30d",
        "default_action": "delete",
        "batch_size": 1,
        "overrides": [{"applies_to": {"categories": ["transaction_records"]}, "action": "anonymize"}],
        "notify": {"scheduled": "cancellation_scheduled", "completed": "cancellation_completed"},
    }
    return load_config(sample.write(tmp_path / "config", files))


def _seed(engine):
    meta.create_all(engine)
    old = NOW - timedelta(days=400)
    with engine.begin() as conn:
        conn.execute(
            users.insert(),
            [
                {
                    "id": u,
                    "email": f"u{u}@example.com",
                    "name": f"User {u}",
                    "password_hash": "h" * 60,
                    "tier": "gold",
                    "created_at": old,
                }
                for u in range(1, 11)
            ],
        )
        conn.execute(
            access_logs.insert(),
            [
                {"id": n, "user_id": n % 10 + 1, "ip": f"10.0.{n}.1", "path": f"/p/{n}", "logged_at": old}
                for n in range(1, 61)
            ],
        )
        conn.execute(
            conversations.insert(), [{"id": c, "user_id": c % 10 + 1, "created_at": old} for c in range(1, 21)]
        )
        conn.execute(
            chat_messages.insert(),
            [{"id": m, "conversation_id": m % 20 + 1, "body": f"secret {m}", "sent_at": old} for m in range(1, 81)],
        )
        conn.execute(
            orders.insert(),
            [
                {"id": o, "user_id": o % 10 + 1, "address": f"{o} Main St", "amount": o, "created_at": old}
                for o in range(1, 31)
            ],
        )
        conn.execute(
            cancellations.insert(),
            [
                {"id": 1, "user_id": DUE, "requested_at": NOW - timedelta(days=20), "withdrawn_at": None},
                {"id": 2, "user_id": HELD, "requested_at": NOW - timedelta(days=20), "withdrawn_at": None},
                {"id": 3, "user_id": PENDING, "requested_at": NOW - timedelta(days=5), "withdrawn_at": None},
                {
                    "id": 4,
                    "user_id": WITHDRAWN,
                    "requested_at": NOW - timedelta(days=20),
                    "withdrawn_at": NOW - timedelta(days=18),
                },
                {"id": 5, "user_id": DUPLICATE, "requested_at": NOW - timedelta(days=17), "withdrawn_at": None},
                {"id": 6, "user_id": DUPLICATE, "requested_at": NOW - timedelta(days=16), "withdrawn_at": None},
            ],
        )
    return engine


def _rows_of_others(engine):
    """Checksums of every table restricted to rows of subjects that must not change."""
    keep = [u for u in range(1, 11) if u not in ERASED]
    out = {}
    with engine.connect() as conn:
        for table, owner in (
            (users, users.c.id),
            (access_logs, access_logs.c.user_id),
            (orders, orders.c.user_id),
            (conversations, conversations.c.user_id),
            (cancellations, cancellations.c.user_id),
        ):
            rows = conn.execute(sa.select(table).where(owner.in_(keep)).order_by(table.c.id)).all()
            out[table.name] = hashlib.sha256(json.dumps([list(map(str, r)) for r in rows]).encode()).hexdigest()
        rows = conn.execute(
            sa.select(chat_messages)
            .join(conversations, chat_messages.c.conversation_id == conversations.c.id)
            .where(conversations.c.user_id.in_(keep))
            .order_by(chat_messages.c.id)
        ).all()
        out["chat_messages"] = hashlib.sha256(json.dumps([list(map(str, r)) for r in rows]).encode()).hexdigest()
    return out


@pytest.fixture
def world(engine, tmp_path, monkeypatch, locked_s3_store, s3_endpoint, connect):
    """The app database and the media bucket reached through Airflow connections, as tasks reach them."""
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", "erasure-test-hmac-key-0123456789")
    _seed(engine)
    store = locked_s3_store
    connect("app_db", engine.url)
    connect("media_s3", aws_connection(s3_endpoint))
    for user in (DUE, PENDING, DUPLICATE):
        store.client.put_object(Bucket=store.bucket, Key=f"chats/{user}/1.jpg", Body=b"a")
        store.client.put_object(Bucket=store.bucket, Key=f"chats/{user}/1.jpg", Body=b"b")
    store.client.delete_object(Bucket=store.bucket, Key=f"chats/{DUE}/1.jpg")
    store.client.put_object(
        Bucket=store.bucket,
        Key=f"chats/{DUPLICATE}/kept.jpg",
        Body=b"x",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=datetime(2099, 1, 1, tzinfo=UTC),
    )
    config = _config(tmp_path, store.bucket)
    state_engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    state = StateStore(state_engine, dataset_names=set(config.catalog.datasets))
    state.holds.add(str(HELD), reason="litigation", today=AS_OF.date())
    with MailSink() as sink:
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
        yield config, engine, state, store, sink
    state_engine.dispose()


def _erasure(config, engine, state, store, sql_cls=None):
    """The erasure as a task runs it (stores by system name); ``sql_cls`` swaps in a SQL store
    that fails on purpose (a unit test of resumption, not of the path)."""
    if sql_cls is None:
        return Erasure(config, state)
    return Erasure(
        config,
        state,
        open_store=lambda system: (
            open_store(config.catalog, system) if system == "media" else sql_cls(engine, config.catalog, system)
        ),
    )


def _reach(engine, config, dataset, subjects):
    """Rows of ``dataset`` that still reach ``subjects``."""
    return SqlStore(engine, config.catalog).count_by_subject(dataset, Selection(subjects=tuple(map(str, subjects))))


def _run(erasure, run_id="scheduled__2026-06-01"):
    intake = erasure.intake(run_id, AS_OF)
    erasure.notify_scheduled()
    for batch in intake.batches:
        erasure.erase(batch, AS_OF, run_id=run_id)
    return intake


def test_a_batch_result_crosses_the_task_boundary_as_json_and_back():
    result = BatchResult("b-1", subjects=2, held=1, certificates=2, notices={"sent": 2}, deletion_requests={"sent": 1})
    data = json.loads(json.dumps(result.to_json()))
    assert data == {
        "batch": "b-1",
        "subjects": 2,
        "held": 1,
        "certificates": 2,
        "notices": {"sent": 2},
        "deletion_requests": {"sent": 1},
    }
    assert BatchResult.from_json(data) == result


def _states(state):
    with state.engine.connect() as conn:
        return {r.subject_id: r.state for r in conn.execute(sa.select(erasures))}


def _mails(sink):
    return sorted((m["To"], m["Subject"]) for m in sink.messages)


@pytest.mark.parametrize("list_budget", [1000, 1], ids=["one-listing", "per-subject-listing"])
def test_due_subjects_are_erased_everywhere_and_nobody_else_is_touched(world, list_budget, monkeypatch):
    config, engine, state, store, sink = world
    others = _rows_of_others(engine)
    monkeypatch.setattr(S3Store, "list_budget", list_budget)
    erasure = _erasure(config, engine, state, store)
    intake = _run(erasure)
    assert len(intake.batches) == 2, "batch_size 1: one batch per due subject; duplicate requests make one erasure"
    assert _states(state) == {
        str(DUE): "done",
        str(DUPLICATE): "done",
        str(HELD): "held",
        str(PENDING): "pending",
        str(WITHDRAWN): "withdrawn",
    }
    for dataset in ("users", "access_logs", "conversations", "chat_messages", "account_cancellations", "orders"):
        assert _reach(engine, config, dataset, ERASED) == {}, dataset
    with engine.connect() as conn:
        anonymized = conn.execute(sa.select(orders).where(orders.c.user_id.is_(None))).all()
    assert {o.id for o in anonymized} == {o for o in range(1, 31) if o % 10 + 1 in ERASED}
    assert all(o.address == "[redacted]" and o.amount == o.id for o in anonymized), "figures stay, the person goes"
    assert _rows_of_others(engine) == others

    left = {(v.key, v.is_delete_marker) for v in store.list_versions("chats/")}
    assert left == {(f"chats/{PENDING}/1.jpg", False), (f"chats/{DUPLICATE}/kept.jpg", False)}

    assert _mails(sink) == sorted(
        [
            (f"u{DUE}@example.com", "Your account will be deleted on 2026-05-27"),
            (f"u{DUPLICATE}@example.com", "Your account will be deleted on 2026-05-30"),
            (f"u{PENDING}@example.com", "Your account will be deleted on 2026-06-11"),
            (f"u{DUE}@example.com", "Your account has been deleted"),
            (f"u{DUPLICATE}@example.com", "Your account has been deleted"),
        ]
    )
    assert state.ledger.verify().ok


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "list_budget, listed",
    [
        (1000, ["chats/", "avatars/"] * 2),  # each dataset's prefix once (erase, verify)
        # past 2 entries a subject, the subject's own prefix: avatars/ holds 3 entries before the erasure, 2 after
        (2, ["chats/", "chats/{s}/", "avatars/", "avatars/{s}/", "chats/", "chats/{s}/", "avatars/"]),
    ],
    ids=["each-dataset", "each-subject"],
)
def test_object_datasets_are_listed_by_prefix_within_the_budget(world, tmp_path, list_budget, listed, monkeypatch):
    config, engine, state, store, sink = world
    config = _config(
        tmp_path,
        store.bucket,
        avatars={
            "system": "media",
            "prefix": "avatars/{subject}/",
            "created": "last_modified",
            "category": "basic_info",
        },
    )
    for user in (DUE, PENDING, DUPLICATE):
        store.client.put_object(Bucket=store.bucket, Key=f"avatars/{user}/a.png", Body=b"a")
    prefixes = []
    list_versions = S3Store.list_versions
    monkeypatch.setattr(
        S3Store,
        "list_versions",
        lambda self, prefix, **kw: (prefixes.append(prefix), list_versions(self, prefix, **kw))[1],
    )
    monkeypatch.setattr(S3Store, "list_budget", list_budget)
    erasure = _erasure(config, engine, state, store)
    intake = erasure.intake("run", AS_OF)
    erasure.erase(intake.batches[0], AS_OF, run_id="run")  # DUE: erase, then verify
    assert prefixes == [p.format(s=DUE) for p in listed]
    monkeypatch.setattr(S3Store, "list_versions", list_versions)
    left = {v.key for v in store.list_versions("")}
    assert left == {
        f"chats/{PENDING}/1.jpg",
        f"chats/{DUPLICATE}/1.jpg",
        f"chats/{DUPLICATE}/kept.jpg",
        f"avatars/{PENDING}/a.png",
        f"avatars/{DUPLICATE}/a.png",
    }


def _certificate(erasure, record) -> dict:
    """The person's certificate as it is rendered on demand (leaf, proof, signed batch root)."""
    root, _, subject = record.certificate.partition("#")
    assert root.endswith("/root.json") and subject == erasure.subject_hash(record.subject_id)
    return erasure.certificates.person(record.batch, subject)


def test_certificates_match_what_was_removed_and_hold_no_personal_information(world):
    config, engine, state, store, sink = world
    erasure = _erasure(config, engine, state, store)
    _run(erasure)
    with state.engine.connect() as conn:
        record = conn.execute(sa.select(erasures).where(erasures.c.subject_id == str(DUPLICATE))).one()
    document = _certificate(erasure, record)
    text = json.dumps(document)
    root = record.certificate.partition("#")[0]
    written = open(root).read() + open(root.replace(".json", ".html")).read()
    written += open(root.replace("root.json", "leaves.jsonl")).read()
    for secret in (f"u{DUPLICATE}@example.com", f"User {DUPLICATE}", "Main St", "secret "):
        assert secret not in text and secret not in written
    assert attestations.check(text.encode(), reports.public_keys(config.catalog)).ok
    cert = document["leaf"]
    assert cert["subject"] == erasure.subject_hash(str(DUPLICATE)) and str(DUPLICATE) not in cert["subject"][:1]
    rows = {d["dataset"]: d for d in cert["datasets"]}
    assert rows["access_logs"]["deleted"] == sum(1 for n in range(1, 61) if n % 10 + 1 == DUPLICATE)
    assert rows["chat_messages"]["deleted"] == sum(1 for m in range(1, 81) if (m % 20 + 1) % 10 + 1 == DUPLICATE)
    assert rows["account_cancellations"]["deleted"] == 2
    assert rows["orders"]["anonymized"] == 3 and "PRC E-Commerce Law art. 31" in rows["orders"]["retained"]["why"]
    assert rows["chat_photos"]["object_versions_deleted"] == 2
    assert rows["chat_photos"]["retained"]["locks"][0]["retain_until"] == "2099-01-01T00:00:00+00:00"
    assert rows["users"]["deleted"] == 1
    assert cert["requested_at"].startswith("2026-05-15") and cert["completed_at"]
    hashes = {e.entry_hash for e in state.ledger.entries()}
    assert set(cert["ledger_entries"]) <= hashes and len(cert["ledger_entries"]) >= 12


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_certificates_go_to_an_s3_reports_destination_as_recorded(world, tmp_path, s3_conn_id):
    config, engine, state, store, sink = world
    store.client.create_bucket(Bucket="erasure-archive")
    config = _config(
        tmp_path,
        store.bucket,
        reports={"system": "archive", "prefix": "lifecycle/"},
        systems={"archive": {"type": "s3", "conn_id": s3_conn_id, "bucket": "erasure-archive"}},
    )
    erasure = _erasure(config, engine, state, store)
    _run(erasure)
    recorded = list(state.ledger.entries(kind="erasure.certificates"))
    assert sum(e.payload["subjects"] for e in recorded) == len(ERASED)
    for entry in recorded:  # one signed root per batch, its leaves beside it
        key = entry.payload["json"].removeprefix("s3://erasure-archive/")
        assert key == f"lifecycle/certificates/{reports.safe_name(entry.payload['batch'])}/root.json"
        body = store.client.get_object(Bucket="erasure-archive", Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == entry.payload["json_sha256"]
        assert json.loads(body)["merkle"]["root"] == entry.payload["root"]
        html = store.client.get_object(Bucket="erasure-archive", Key=key.replace(".json", ".html"))
        assert html["ContentType"].startswith("text/html") and entry.payload["root"] in html["Body"].read().decode()
    with state.engine.connect() as conn:
        for record in conn.execute(sa.select(erasures).where(erasures.c.state == "done")):
            document = _certificate(erasure, record)
            assert document["leaf"]["subject"] == erasure.subject_hash(record.subject_id)
            assert attestations.check(json.dumps(document).encode(), reports.public_keys(config.catalog)).ok


class Killed(Exception):
    pass


def _dying_at(point: str, monkeypatch):
    """A SqlStore class (and, for the ledger or the objects, a patched Ledger or S3Store) that
    raises Killed at ``point``: of the third table step, or of the first object step."""
    calls = {"delete": 0, "done": 0, "objects": 0}

    class Dying(SqlStore):
        def delete(self, *args, **kwargs):
            calls["delete"] += 1
            if calls["delete"] == 3 and point == "before a step's delete":
                raise Killed()
            change = super().delete(*args, **kwargs)
            if calls["delete"] == 3 and point == "after a step's delete committed":
                raise Killed()
            return change

    if point == "as an object step deletes, beside the table steps":
        delete = S3Store.delete

        def dying_delete(self, *args, **kwargs):
            calls["objects"] += 1
            if calls["objects"] == 1:  # once: the rerun deletes through
                raise Killed()
            return delete(self, *args, **kwargs)

        monkeypatch.setattr(S3Store, "delete", dying_delete)
    if point == "as a step's done record goes with the next plan":
        append_many = Ledger.append_many

        def dying_append_many(self, records, **kwargs):
            if any(r.kind == "erasure.done" for r in records):
                calls["done"] += 1
                if calls["done"] == 2:  # once: the rerun appends through
                    raise Killed()
            return append_many(self, records, **kwargs)

        monkeypatch.setattr(Ledger, "append_many", dying_append_many)
    return Dying


@pytest.mark.parametrize(
    "point",
    [
        "before a step's delete",
        "after a step's delete committed",
        "as a step's done record goes with the next plan",
        "as an object step deletes, beside the table steps",
    ],
)
def test_a_run_killed_mid_batch_resumes_to_the_same_end_state_with_each_notice_once(world, monkeypatch, point):
    config, engine, state, store, sink = world
    with pytest.raises(Killed):
        _run(_erasure(config, engine, state, store, _dying_at(point, monkeypatch)))
    assert _states(state)[str(DUE)] == "erasing"
    if point.startswith("as an object step"):  # the table steps beside it went on and were recorded
        done = {e.payload["dataset"] for e in state.ledger.entries(kind="erasure.done")}
        assert {"access_logs", "chat_messages", "orders"} <= done and "chat_photos" not in done
    erasure = _erasure(config, engine, state, store)
    _run(erasure)
    _run(erasure)  # and once more: nothing new
    assert _states(state) == {
        str(DUE): "done",
        str(DUPLICATE): "done",
        str(HELD): "held",
        str(PENDING): "pending",
        str(WITHDRAWN): "withdrawn",
    }
    sent = _mails(sink)
    assert len(sent) == len(set(sent)) == 5, sent
    assert _reach(engine, config, "access_logs", ERASED) == {}
    assert state.ledger.verify().ok
    with state.engine.connect() as conn:
        certificates = {
            r.subject_id: _certificate(erasure, r)["leaf"]
            for r in conn.execute(sa.select(erasures).where(erasures.c.state == "done"))
        }
    for subject in ERASED:  # what the interrupted steps removed is certified all the same
        rows = {d["dataset"]: d for d in certificates[str(subject)]["datasets"]}
        assert rows["access_logs"]["deleted"] == sum(1 for n in range(1, 61) if n % 10 + 1 == subject)
        assert rows["chat_messages"]["deleted"] == sum(1 for m in range(1, 81) if (m % 20 + 1) % 10 + 1 == subject)
        assert rows["orders"]["anonymized"] == sum(1 for o in range(1, 31) if o % 10 + 1 == subject)
        assert rows["users"]["deleted"] == 1
    photos = {d["dataset"]: d for d in certificates[str(DUPLICATE)]["datasets"]}["chat_photos"]
    assert photos["object_versions_deleted"] == 2


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)  # SQLite does not enforce the FK by default
def test_a_request_for_an_unknown_subject_is_rejected_with_the_reason(world):
    config, engine, state, store, sink = world
    with engine.begin() as conn:
        conn.execute(cancellations.insert().values(id=7, user_id=MISSING, requested_at=NOW - timedelta(days=30)))
    _erasure(config, engine, state, store).intake("manual__1", AS_OF)
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(erasures).where(erasures.c.subject_id == str(MISSING))).one()
    assert row.state == "rejected" and "no users row" in row.reason


def test_an_unanonymizable_leftover_fails_the_subject_loudly(world):
    config, engine, state, store, sink = world

    class Forgetful(SqlStore):
        def delete(self, dataset, selection, **kwargs):
            return Change() if dataset == "access_logs" else super().delete(dataset, selection, **kwargs)

    with pytest.raises(LifecycleError, match=r"access_logs: .* row\(s\) still reach the subject"):
        _run(_erasure(config, engine, state, store, Forgetful))
    assert _states(state)[str(DUE)] == "failed"
    assert _reach(engine, config, "users", [DUE]) == {str(DUE): 1}, "the subject row stays when the rest failed"


def test_requests_past_complete_within_are_reported_overdue(world):
    config, engine, state, store, sink = world
    with engine.begin() as conn:
        conn.execute(
            cancellations.update().where(cancellations.c.id == 1).values(requested_at=NOW - timedelta(days=40))
        )
    erasure = _erasure(config, engine, state, store)
    erasure.intake("manual__late", AS_OF)  # due, batched, but not erased (the run died)
    late = erasure.overdue(AS_OF)
    assert [(o["state"], o["deadline"][:10]) for o in late] == [("erasing", "2026-05-22")]
    assert late[0]["subject"] == erasure.subject_hash(str(DUE)), "the report names people by keyed hash only"
    report = erasure.report("manual__late", AS_OF)
    assert report["overdue"] == 1 and "u2@example.com" not in open(report["json"]).read()
    with pytest.raises(LifecycleError, match=r"^1 cancellation request\(s\) are past complete_within \(\d+d\)"):
        check_overdue(erasure, AS_OF)
    assert check_overdue(erasure, AS_OF - timedelta(days=60)) == {"overdue": 0}, "nothing was late back then"


# ------------------------------------------------------------------ notices


def _notices(state, template):
    from lifecycle.state.schema import deliveries

    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries).where(deliveries.c.notice == f"notice:{template}"))
        return {r.subject_id: r.status for r in rows}


@pytest.mark.parametrize("dies_at", [2, 4], ids=["scheduled-notice", "completion-notice"])
def test_a_notice_whose_outcome_was_lost_is_never_sent_again_and_is_reported_uncertain(world, dies_at):
    """The process dies after the server accepted a mail and before its outcome was recorded
    (the state store on the backend under test)."""
    from lifecycle.mail import Mailer

    config, engine, _, store, sink = world
    state = StateStore(engine, dataset_names=set(config.catalog.datasets))
    state.holds.add(str(HELD), reason="litigation", today=AS_OF.date())
    email, accepted = config.notifications.email, []

    class DiesAfterSending(Mailer):
        def transmit(self, composed):
            message_id = super().transmit(composed)
            accepted.append(composed)
            if len(accepted) == dies_at:
                raise Killed()
            return message_id

    with pytest.raises(Killed):
        _run(Erasure(config, state, mailer=lambda: DiesAfterSending(email.conn_id, email.from_, email.max_per_second)))
    lost = next(m for m in sink.messages if m["Message-ID"] == accepted[-1].message_id)
    template = "cancellation_scheduled" if "will be deleted" in lost["Subject"] else "cancellation_completed"
    subject = lost["To"].removeprefix("u").split("@")[0]
    assert _notices(state, template)[subject] == "sending", "claimed before the mail went out"
    from lifecycle.state.schema import deliveries

    with state.engine.connect() as conn:
        claimed = conn.execute(
            sa.select(deliveries.c.message_id).where(
                deliveries.c.subject_id == subject, deliveries.c.notice == f"notice:{template}"
            )
        ).scalar_one()
    assert claimed == accepted[-1].message_id, "the claim names the Message-ID, so the mail log can settle it"

    erasure = _erasure(config, engine, state, store)
    intake = erasure.intake("scheduled__2026-06-01", AS_OF)
    scheduled = erasure.notify_scheduled()
    results = [erasure.erase(batch, AS_OF, run_id="scheduled__2026-06-01") for batch in intake.batches]
    _run(_erasure(config, engine, state, store))  # and once more: nothing new

    sent = _mails(sink)
    assert len(sent) == len(set(sent)) == 5, "every notice went out exactly once, the interrupted one too"
    assert _notices(state, template)[subject] == "uncertain"
    reported = (
        scheduled
        if template == "cancellation_scheduled"
        else next(r.notices for r in results if r.notices.get("uncertain"))
    )
    assert reported["uncertain"] == 1
    assert _states(state) == {
        str(DUE): "done",
        str(DUPLICATE): "done",
        str(HELD): "held",
        str(PENDING): "pending",
        str(WITHDRAWN): "withdrawn",
    }
    summaries = [e.payload for e in state.ledger.entries(kind="notice.batch") if e.payload["template"] == template]
    assert sum(p["statuses"].get("uncertain", 0) for p in summaries) == 1
    assert sum(p["statuses"].get("sent", 0) for p in summaries) == sum(
        1 for s in _notices(state, template).values() if s == "sent"
    )
    with state.engine.connect() as conn:
        query = sa.select(deliveries.c.ledger_hash).where(deliveries.c.notice.startswith("notice:"))
        backing = set(conn.execute(query).scalars())
    assert backing <= {e.entry_hash for e in state.ledger.entries(kind="notice.batch")}, (
        "every outcome is backed by the ledger"
    )
    report = erasure.report("scheduled__2026-06-01", AS_OF)
    assert json.loads(open(report["json"]).read())["notices"][template]["uncertain"] == 1
    assert "uncertain" in open(report["html"]).read()
    assert state.ledger.verify().ok


def test_notices_recorded_in_the_ledger_by_earlier_versions_count_as_sent(world):
    config, engine, state, store, sink = world
    state.ledger.append(
        "notice.sent",
        {"template": "cancellation_scheduled", "subject": str(DUE)},
        key=f"notice:cancellation_scheduled:{DUE}",
    )
    _run(_erasure(config, engine, state, store))
    assert (f"u{DUE}@example.com", "Your account will be deleted on 2026-05-27") not in _mails(sink)
    assert len(_mails(sink)) == 4
    assert str(DUE) not in _notices(state, "cancellation_scheduled")


def test_an_address_the_server_refuses_for_good_is_recorded_undeliverable_and_the_erasure_goes_on(world, monkeypatch):
    config, engine, state, store, _ = world
    refused = f"u{DUE}@example.com"
    with MailSink(rcpt_policy=lambda to: "550 5.1.1 no such user" if to == refused else None) as sink:
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
        _run(_erasure(config, engine, state, store))
        _run(_erasure(config, engine, state, store))  # a rerun tries nobody again
    assert _notices(state, "cancellation_scheduled")[str(DUE)] == "undeliverable"
    assert _notices(state, "cancellation_completed") == {str(DUE): "undeliverable", str(DUPLICATE): "sent"}
    assert _states(state)[str(DUE)] == "done", "a refused notice does not hold the erasure up"
    assert [to for to, _ in _mails(sink)] == sorted([f"u{PENDING}@example.com"] + [f"u{DUPLICATE}@example.com"] * 2)
    from lifecycle.state.schema import deliveries

    with state.engine.connect() as conn:
        undeliverable = (deliveries.c.status == "undeliverable") & deliveries.c.notice.startswith("notice:")
        reasons = set(conn.execute(sa.select(deliveries.c.reason).where(undeliverable)).scalars())
    assert reasons == {"SMTP 550"}, "the reply code only: the server's text may name the address"
    summaries = [e.payload["statuses"] for e in state.ledger.entries(kind="notice.batch")]
    assert sum(s.get("undeliverable", 0) for s in summaries) == 2


def test_a_person_claimed_by_another_process_meanwhile_is_not_mailed_and_earlier_outcomes_stay_recorded(world):
    from lifecycle.state.schema import deliveries

    config, engine, state, store, sink = world
    erasure = _erasure(config, engine, state, store)
    erasure.intake("manual__1", AS_OF)
    with state.engine.begin() as conn:  # another process claimed (and sent) one notice after this one read the rows
        conn.execute(
            deliveries.insert().values(
                notice="notice:cancellation_scheduled",
                subject_id=str(DUPLICATE),
                scope="other",
                status="sent",
                attempts=1,
                claimed_at="x",
                updated_at="x",
            )
        )
    original, calls = state.notices.rows, []

    def stale(template, subjects):
        calls.append(1)
        return {} if len(calls) == 1 else original(template, subjects)

    state.notices.rows = stale
    counts = erasure.notify_scheduled()
    assert (counts["sent"], counts["already"]) == (2, 1)
    assert _notices(state, "cancellation_scheduled") == {str(DUE): "sent", str(PENDING): "sent", str(DUPLICATE): "sent"}
    assert sorted(to for to, _ in _mails(sink)) == [f"u{DUE}@example.com", f"u{PENDING}@example.com"]


def test_recipients_that_received_data_get_one_deletion_request_per_batch_naming_their_pseudonyms(world, tmp_path):
    """Every recipient with a delivered register entry that carried records is asked, once per
    batch, for the batch's verified people (by `_subject`); a recipient only ever refused is not."""
    config, engine, state, store, sink = world
    folder = tmp_path / "config"
    recipients = yaml.safe_load((folder / "recipients.yaml").read_text())
    push = recipients["recipients"][0]
    clear = {**push, "id": "clear_partner", "name": "Clear Ltd.", "contact": "dpo@clear.example"}
    refused = {**push, "id": "refused_partner", "name": "Refused Ltd.", "contact": "dpo@refused.example"}
    recipients["recipients"] += [{**clear, "pseudonymize_subject": False}, refused]
    (folder / "recipients.yaml").write_text(yaml.safe_dump(recipients, sort_keys=False))
    config = load_config(folder)
    interval = Interval(AS_OF - timedelta(days=40), AS_OF - timedelta(days=33))
    register = SharingRegister(state)
    for recipient in config.recipients.recipients:
        delivered = recipient.id != "refused_partner"
        register.record(
            {
                **disclosure(recipient, config.catalog, interval),
                "outcome": "delivered" if delivered else "refused",
                "rule": None if delivered else "agreement",
                "reason": None if delivered else "agreement expired",
                "records": 10 if delivered else 0,
                "manifest": None,
                "manifest_sha256": "0" * 64 if delivered else None,
            },
            run_id="scheduled__before",
        )

    intake = _run(_erasure(config, engine, state, store))
    _run(_erasure(config, engine, state, store))  # again: nothing new
    key = hmac.new(b"erasure-test-hmac-key-0123456789", b"sharing:push_provider", hashlib.sha256).digest()
    pseudonym = {s: hmac.new(key, str(s).encode(), hashlib.sha256).hexdigest() for s in ERASED}
    to_push = [m for m in sink.messages if m["To"] == "privacy@acmepush.example"]
    to_clear = [m for m in sink.messages if m["To"] == "dpo@clear.example"]
    assert len(to_push) == len(to_clear) == len(intake.batches) == 2, "one request per recipient and batch"
    assert not [m for m in sink.messages if m["To"] == "dpo@refused.example"], "never received anything"
    named = sorted(p for m in to_push for p in pseudonym.values() if p in m.text)
    assert named == sorted(pseudonym.values()) and all(sum(p in m.text for p in named) == 1 for m in to_push)
    listed = [line.strip() for m in to_clear for line in m.text.splitlines()]
    assert sorted(s for s in map(str, ERASED) if s in listed) == sorted(map(str, ERASED)), "ids in clear there"
    assert all("erased" in m.text for m in to_push + to_clear)
    with state.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(recipient_deletions))]
    assert sorted((r["scope"], r["recipient_id"]) for r in rows) == sorted(
        (f"erasure:{b}", rid) for b in intake.batches for rid in ("clear_partner", "push_provider")
    )
    assert all(
        (r["reason"], r["purpose"], r["subjects"], r["status"]) == ("cancellation", None, 1, "sent") for r in rows
    )
    for r in rows:
        assert state.ledger.find(f"deletion:{r['scope']}:{r['recipient_id']}").entry_hash == r["ledger_hash"]
    assert state.ledger.verify().ok


# ------------------------------------------------------------ transactions


class Transactions:
    """Transactions begun, committed and rolled back on one database (SQLAlchemy's events)."""

    def __init__(self, database: str | None):
        self.database, self.counts = database, {"begin": 0, "commit": 0, "rollback": 0}

    def __enter__(self):
        for name in self.counts:
            sa.event.listen(sa.engine.Engine, name, self._counter(name))
        return self

    def _counter(self, name):
        def count(conn, *args):
            if conn.engine.url.database == self.database:
                self.counts[name] += 1

        count.__name__ = f"count_{name}"
        self._listeners = getattr(self, "_listeners", []) + [(name, count)]
        return count

    def __exit__(self, *exc):
        for name, listener in self._listeners:
            sa.event.remove(sa.engine.Engine, name, listener)


def _edited(tmp_path, file: str, change):
    """The world's configuration after ``change(data)`` of one of its files."""
    path = tmp_path / "config" / file
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(tmp_path / "config")


@pytest.mark.parametrize("size", [1, 2], ids=["one-person", "two-people"])
def test_a_batch_takes_transactions_by_step_not_by_person(world, tmp_path, size):
    """Each table step commits once (its plan in the ledger before); the reads of a verification
    share one transaction; nothing else touches the app database but the completion notice's
    address lookup.  Two people in a batch take what one takes."""
    config, engine, state, store, sink = world
    erasure = Erasure(_edited(tmp_path, "cancellation.yaml", lambda c: c.update(batch_size=size)), state)
    intake = erasure.intake("run", AS_OF)
    with Transactions(engine.url.database) as app:
        result = erasure.erase(intake.batches[0], AS_OF, run_id="run")
    assert result.subjects == size
    tables = [s for s in erasure.steps() if config.catalog.dataset(s.dataset).is_table]
    # SQLite locks the whole file while it writes: each step reads its rows in a transaction of its own first
    reads_first = len(tables) if engine.dialect.name == "sqlite" else 0
    assert app.counts["commit"] == len(tables), app.counts
    assert app.counts["rollback"] == 3 + reads_first, "two verifications and the completion notice's addresses"
    assert app.counts["begin"] == len(tables) + 3 + reads_first


# ------------------------------------------------- anonymized rows: what anonymization promises


def _anonymize_users(cancellation):
    """The account's own row kept, anonymized (default_action), what is access or account records deleted."""
    cancellation["default_action"] = "anonymize"
    cancellation["overrides"] = [
        {"applies_to": {"categories": ["access_records", "account_records"]}, "action": "delete"}
    ]


def _users(engine, ids):
    with engine.connect() as conn:
        return {r.id: r for r in conn.execute(sa.select(users).where(users.c.id.in_(ids)))}


def test_an_anonymized_subject_row_is_kept_and_verified_by_its_anonymized_fields(world, tmp_path):
    config, engine, state, store, sink = world
    before = _users(engine, ERASED)
    config = _edited(tmp_path, "cancellation.yaml", _anonymize_users)
    erasure = _erasure(config, engine, state, store)
    _run(erasure)
    assert _states(state)[str(DUE)] == _states(state)[str(DUPLICATE)] == "done"
    after = _users(engine, ERASED)
    for uid in ERASED:
        row, was = after[uid], before[uid]
        assert row.email != was.email and len(row.email) == 64, "hmac"
        assert (row.name, row.password_hash, row.tier) == ("[redacted]", None, was.tier), "only personal fields change"
    for dataset in ("access_logs", "conversations", "chat_messages", "account_cancellations"):
        assert _reach(engine, config, dataset, ERASED) == {}, dataset
    with engine.connect() as conn:
        orders_left = conn.execute(sa.select(orders).where(orders.c.user_id.is_(None))).all()
    assert len(orders_left) == sum(1 for o in range(1, 31) if o % 10 + 1 in ERASED), "orders: the link cleared"
    with state.engine.connect() as conn:
        record = conn.execute(sa.select(erasures).where(erasures.c.subject_id == str(DUE))).one()
    rows = {d["dataset"]: d for d in _certificate(erasure, record)["leaf"]["datasets"]}
    assert rows["users"]["anonymized"] == 1 and rows["users"]["retained"]["form"] == "anonymized, link kept"
    assert rows["orders"]["retained"]["form"] == "anonymized, unlinked"
    assert state.ledger.verify().ok


def _keep_order_links(catalog):
    catalog["datasets"]["orders"]["on_anonymize"] = {"link": "keep"}


def test_anonymized_rows_may_keep_their_link_and_stay_the_persons(world, tmp_path):
    config, engine, state, store, sink = world
    _edited(tmp_path, "cancellation.yaml", _anonymize_users)
    config = _edited(tmp_path, "catalog.yaml", _keep_order_links)
    erasure = _erasure(config, engine, state, store)
    _run(erasure)
    assert _states(state)[str(DUE)] == "done"
    with engine.connect() as conn:
        kept = conn.execute(sa.select(orders).where(orders.c.user_id.in_(ERASED))).all()
    assert sorted(o.id for o in kept) == [o for o in range(1, 31) if o % 10 + 1 in ERASED], "still linked"
    assert all(o.address == "[redacted]" and o.amount == o.id for o in kept)
    with state.engine.connect() as conn:
        record = conn.execute(sa.select(erasures).where(erasures.c.subject_id == str(DUE))).one()
    rows = {d["dataset"]: d for d in _certificate(erasure, record)["leaf"]["datasets"]}
    assert rows["orders"]["retained"]["form"] == "anonymized, link kept" and rows["orders"]["anonymized"] == 3


class _SkipsOrders(SqlStore):
    """Anonymizes nothing of orders but what ``mode`` says: only the link, or only the fields."""

    mode = "link only"

    def anonymize(self, dataset, selection, fields, **kwargs):
        if dataset == "orders":
            fields = [] if self.mode == "link only" else fields
            kwargs["unlink"] = kwargs["unlink"] and self.mode == "link only"
        return super().anonymize(dataset, selection, fields, **kwargs)


@pytest.mark.parametrize(
    "link, mode, message",
    [
        ("keep", "link only", r"orders: 3 row\(s\) reaching the subject still hold personal values"),
        ("clear", "fields only", r"orders: 3 row\(s\) still reach the subject"),
        ("clear", "link only", r"orders: \d+ anonymized row\(s\) still hold personal values"),
    ],
)
def test_verification_of_anonymized_rows_checks_what_the_link_choice_promises(world, tmp_path, link, mode, message):
    config, engine, state, store, sink = world
    _edited(tmp_path, "cancellation.yaml", _anonymize_users)
    config = _edited(tmp_path, "catalog.yaml", lambda c: c["datasets"]["orders"].update(on_anonymize={"link": link}))
    sloppy = type("Sloppy", (_SkipsOrders,), {"mode": mode})
    with pytest.raises(LifecycleError, match=message):
        _run(_erasure(config, engine, state, store, sloppy))
    assert _states(state)[str(DUE)] == "failed"
    assert _users(engine, [DUE])[DUE].email == f"u{DUE}@example.com", "the account's row waits for the rest"


def test_a_step_with_nothing_to_change_takes_no_ledger_commit_of_its_own(world, monkeypatch):
    config, engine, state, store, sink = world
    with engine.begin() as conn:
        conn.execute(orders.delete().where(orders.c.user_id == DUE))
    appended = []
    append_many = Ledger.append_many

    def recording(self, records, **kwargs):
        appended.append([(r.kind, r.payload.get("dataset")) for r in records])
        return append_many(self, records, **kwargs)

    monkeypatch.setattr(Ledger, "append_many", recording)
    erasure = _erasure(config, engine, state, store)
    erasure.erase(erasure.intake("run", AS_OF).batches[0], AS_OF, run_id="run")
    (with_orders,) = [call for call in appended if ("erasure.plan", "orders") in call]
    assert with_orders.index(("erasure.plan", "orders")) < len(with_orders) - 1, (
        "no change waited on the empty plan: it went with the records appended after it"
    )
    (plan,) = [e for e in state.ledger.entries(kind="erasure.plan") if e.payload["dataset"] == "orders"]
    assert plan.payload["rows"] == {} and _states(state)[str(DUE)] == "done"
