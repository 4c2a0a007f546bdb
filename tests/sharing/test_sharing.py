"""Third-party sharing on SQLite, PostgreSQL, MariaDB and moto's S3 server."""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import hmac
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from lifecycle import cli
from lifecycle.config import load_config
from lifecycle.errors import ConfigError
from lifecycle.sharing.gate import SharingRefused
from lifecycle.sharing.service import Interval, Sharing
from lifecycle.sharing.verify import verify_manifest
from lifecycle.state import StateStore
from lifecycle.state.schema import erasures, sharing_register
from tests.config import sample
from tests.erasure.test_erasure import cancellations
from tests.support.sample_app import meta, orders, users

AS_OF = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
NOW = AS_OF.replace(tzinfo=None)
INTERVAL = Interval(AS_OF - timedelta(days=1), AS_OF)
HMAC_KEY = "sharing-test-hmac-key-0123456789"
SIGNING_KEY = "sharing-test-signing-key-0123456789"

consent_meta = sa.MetaData()
consents = sa.Table(
    "consents",
    consent_meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer),
    sa.Column("purpose", sa.String(64)),
    sa.Column("granted_at", sa.DateTime),
    sa.Column("withdrawn_at", sa.DateTime),
)

PENDING_CANCELLATION, DUE_CANCELLATION, WITHDRAWN_CANCELLATION, ERASING = 6, 8, 7, 9
EXCLUDED = {PENDING_CANCELLATION, DUE_CANCELLATION, ERASING}
CONSENTING = {
    1,
    3,
}  # 2 withdrew the day before the run, 3 re-granted, 4 granted after it, 5 another purpose, 6 cancelling


def _files(tmp_path, bucket, conn_id) -> dict:
    files = copy.deepcopy(sample.FILES)
    catalog = files["catalog.yaml"]
    catalog["systems"]["drop"] = {"type": "s3", "conn_id": conn_id, "bucket": bucket}
    catalog["reports"] = {"path": str(tmp_path / "reports")}
    catalog["categories"].update(
        {"consent_records": {"purposes": ["account"]}, "account_records": {"purposes": ["account"]}}
    )
    catalog["datasets"].pop("chat_photos")
    catalog["datasets"]["consents"] = {
        "system": "app_db",
        "table": "consents",
        "primary_key": "id",
        "subject": "user_id -> users.id",
        "created": "granted_at",
        "category": "consent_records",
        "consent": {"purpose": "purpose", "granted": "granted_at", "withdrawn": "withdrawn_at"},
        "fields": {"purpose": {"personal": False}, "withdrawn_at": {}},
    }
    catalog["datasets"]["account_cancellations"] = {
        "system": "app_db",
        "table": "account_cancellations",
        "primary_key": "id",
        "subject": "user_id -> users.id",
        "created": "requested_at",
        "category": "account_records",
        "fields": {"withdrawn_at": {}},
    }
    files["cancellation.yaml"] = {
        "requests": {
            "dataset": "account_cancellations",
            "subject": "user_id",
            "requested_at": "requested_at",
            "withdrawn_at": "withdrawn_at",
        },
        "grace_period": "15d",
        "complete_within": "30d",
    }
    agreement = {"id": "DPA-1", "type": "confidentiality", "signed": "2024-03-01", "expires": "2027-03-01"}
    files["recipients.yaml"] = {
        "recipients": [
            {
                "id": "push",
                "name": "Acme Push Ltd.",
                "contact": "privacy@acme.example",
                "role": "processor",
                "legal_basis": "entrusted_processing",
                "purpose": "Deliver push notifications",
                "agreement": agreement,
                "share": {"users": ["email", "tier"], "orders": ["amount", "created_at"]},
                "delivery": {"system": "drop", "prefix": "push/{ds}/", "format": "jsonl", "fetch_rows": 3},
            },
            {
                "id": "expo",
                "name": "Expo GmbH",
                "contact": "dp@expo.example",
                "role": "marketing_partner",
                "legal_basis": "consent",
                "purpose": "Invite buyers to the expo",
                "agreement": {**agreement, "id": "NDA-7", "covers": ["basic_info"]},
                "share": {"users": ["name", "email"]},
                "consent": {"dataset": "consents", "purpose": "expo"},
                "delivery": {"system": "drop", "prefix": "expo/{ds}/", "format": "csv"},
            },
        ]
    }
    return files


def _seed(engine, state):
    meta.create_all(engine)
    consent_meta.create_all(engine)
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
            orders.insert(),
            [
                {"id": o, "user_id": o % 10 + 1, "address": f"{o} Main St", "amount": o, "created_at": old}
                for o in range(1, 31)
            ],
        )
        conn.execute(
            consents.insert(),
            [
                {"id": 1, "user_id": 1, "purpose": "expo", "granted_at": old, "withdrawn_at": None},
                {"id": 2, "user_id": 2, "purpose": "expo", "granted_at": old, "withdrawn_at": NOW - timedelta(days=1)},
                {"id": 3, "user_id": 3, "purpose": "expo", "granted_at": old, "withdrawn_at": old + timedelta(days=1)},
                {"id": 4, "user_id": 3, "purpose": "expo", "granted_at": old + timedelta(days=9), "withdrawn_at": None},
                {"id": 5, "user_id": 4, "purpose": "expo", "granted_at": NOW + timedelta(days=1), "withdrawn_at": None},
                {"id": 6, "user_id": 5, "purpose": "newsletter", "granted_at": old, "withdrawn_at": None},
                {"id": 7, "user_id": 6, "purpose": "expo", "granted_at": old, "withdrawn_at": None},
            ],
        )
        conn.execute(
            cancellations.insert(),
            [
                {
                    "id": 1,
                    "user_id": PENDING_CANCELLATION,
                    "requested_at": NOW - timedelta(days=5),
                    "withdrawn_at": None,
                },
                {"id": 2, "user_id": DUE_CANCELLATION, "requested_at": NOW - timedelta(days=20), "withdrawn_at": None},
                {
                    "id": 3,
                    "user_id": WITHDRAWN_CANCELLATION,
                    "requested_at": NOW - timedelta(days=20),
                    "withdrawn_at": NOW - timedelta(days=18),
                },
            ],
        )
    with state.engine.begin() as conn:  # a batch the erasure DAG is working on (its request row already gone)
        conn.execute(
            erasures.insert().values(
                subject_id=str(ERASING),
                request_ids="[9]",
                requested_at="2026-05-01T00:00:00+00:00",
                grace_end="2026-05-16T00:00:00+00:00",
                state="erasing",
                first_seen="x",
                updated_at="x",
            )
        )


@pytest.fixture
def world(engine, tmp_path, monkeypatch, s3_store, s3_conn_id, connect):
    """The app database and the drop bucket reached through Airflow connections, as tasks reach them."""
    connect("app_db", engine.url)
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", HMAC_KEY)
    monkeypatch.setenv("AIRFLOW_CONN_LIFECYCLE_SIGNING", json.dumps({"conn_type": "generic", "password": SIGNING_KEY}))
    files = _files(tmp_path, s3_store.bucket, s3_conn_id)
    config = load_config(sample.write(tmp_path / "config", files))
    state_engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    state = StateStore(state_engine, dataset_names=set(config.catalog.datasets))
    _seed(engine, state)
    yield config, engine, state, s3_store
    state_engine.dispose()


def _sharing(config, engine, state, store, recipient):
    return Sharing(config, state, recipient)


def _deliver(sharing, interval=INTERVAL):
    sharing.gate(interval, dag_id=f"sharing_{sharing.recipient.id}", run_id="scheduled__x")
    files = [sharing.extract(d, interval) for d in sharing.recipient.share]
    manifest = sharing.manifest(interval, files, dag_id=f"sharing_{sharing.recipient.id}", run_id="scheduled__x")
    sharing.record_delivery(interval, manifest, run_id="scheduled__x")
    return files, manifest


def _pseudonym(recipient: str, subject) -> str:
    key = hmac.new(HMAC_KEY.encode(), f"sharing:{recipient}".encode(), hashlib.sha256).digest()
    return hmac.new(key, str(subject).encode(), hashlib.sha256).hexdigest()


def _register(state):
    with state.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(sharing_register))]


def test_a_delivery_has_exactly_the_agreed_fields_and_subjects_and_hashes_to_its_manifest(world):
    config, engine, state, store = world
    files, manifest = _deliver(_sharing(config, engine, state, store, "push"))

    body = store.get_bytes("push/2026-05-31/users.jsonl")
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert all(set(r) == {"_subject", "email", "tier"} for r in rows)
    expected = set(range(1, 11)) - EXCLUDED
    assert sorted(r["_subject"] for r in rows) == sorted(_pseudonym("push", u) for u in expected)
    assert sorted(r["email"] for r in rows) == sorted(f"u{u}@example.com" for u in expected)
    order_rows = [json.loads(line) for line in store.get_bytes("push/2026-05-31/orders.jsonl").decode().splitlines()]
    assert all(set(r) == {"_subject", "amount", "created_at"} for r in order_rows)
    assert len(order_rows) == sum(1 for o in range(1, 31) if o % 10 + 1 not in EXCLUDED)
    assert _pseudonym("push", 1) == _pseudonym("push", "1") != _pseudonym("expo", 1)

    document = json.loads(store.get_bytes("push/2026-05-31/manifest.json"))
    entry = next(d for d in document["datasets"] if d["dataset"] == "users")
    assert entry["file"]["sha256"] == hashlib.sha256(body).hexdigest() and entry["file"]["size"] == len(body)
    assert entry["records"] == len(rows) and entry["excluded_pending_cancellation"] == len(EXCLUDED)
    assert entry["fields"] == ["_subject", "email", "tier"] and entry["categories"] == ["basic_info"]
    assert document["agreement"]["id"] == "DPA-1" and document["legal_basis"] == "entrusted_processing"
    assert document["data_interval"] == {"start": "2026-05-31T00:00:00+00:00", "end": "2026-06-01T00:00:00+00:00"}
    for key in ("push/2026-05-31/users.jsonl", "push/2026-05-31/manifest.json", "push/2026-05-31/manifest.html"):
        assert store.head(key)["ServerSideEncryption"] == "AES256"
    assert verify_manifest(store, "push/2026-05-31/manifest.json", SIGNING_KEY.encode()) == []
    [entry] = _register(state)
    assert (entry["outcome"], entry["records"], entry["manifest_sha256"]) == (
        "delivered",
        document["records"],
        manifest["sha256"],
    )
    assert "u1@example.com" not in json.dumps(files) + json.dumps(manifest), "no personal values in what tasks return"


def test_consent_withdrawn_the_day_before_and_pending_cancellations_are_excluded(world):
    config, engine, state, store = world
    _deliver(_sharing(config, engine, state, store, "expo"))
    rows = list(csv.DictReader(io.StringIO(store.get_bytes("expo/2026-05-31/users.csv").decode())))
    assert rows and list(rows[0]) == ["_subject", "name", "email"]
    assert sorted(r["_subject"] for r in rows) == sorted(_pseudonym("expo", u) for u in CONSENTING)


def test_a_task_context_is_used_as_it_is_and_a_recipient_reads_what_it_shares_and_its_consents(world):
    from lifecycle.runtime import Run, RunContext
    from lifecycle.stores import Stores

    config, engine, state, store = world
    ctx = RunContext(config, Run("sharing_expo", "scheduled__x", INTERVAL.end, INTERVAL.start))
    ctx.__dict__.update(state=state, stores=Stores(config.catalog, lambda system: store))  # the cached handles
    expo, push = Sharing.of(ctx, "expo"), Sharing.of(ctx, "push")
    assert expo.stores is ctx.stores and expo.state is state, "the task's stores, not a second registry over them"
    assert expo.source_datasets() == ["consents", "users"] and push.source_datasets() == ["orders", "users"]


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_rerun_of_the_same_interval_rewrites_the_same_keys_and_keeps_one_register_entry(world):
    config, engine, state, store = world
    sharing = _sharing(config, engine, state, store, "push")
    _deliver(sharing)
    first = sorted(store.keys("push/"))
    _deliver(sharing)
    assert (
        sorted(store.keys("push/"))
        == first
        == [f"push/2026-05-31/{n}" for n in ("manifest.html", "manifest.json", "orders.jsonl", "users.jsonl")]
    )
    assert len(_register(state)) == 1
    _deliver(sharing, Interval(AS_OF, AS_OF + timedelta(days=7)))
    assert len(_register(state)) == 2


def _refused(config, recipient_id, **changes):
    """The configuration with one recipient changed past validation (the gate is the second line of defence)."""
    recipients = []
    for r in config.recipients.recipients:
        if r.id == recipient_id:
            agreement = changes.pop("agreement", None)
            r = r.model_copy(
                update={**changes, **({"agreement": r.agreement.model_copy(update=agreement)} if agreement else {})}
            )
        recipients.append(r)
    return dataclasses.replace(config, recipients=config.recipients.model_copy(update={"recipients": recipients}))


REFUSALS = [
    (
        "expired agreement",
        "push",
        {"agreement": {"expires": date(2026, 5, 31)}},
        "agreement_in_force",
        None,
        "expired on 2026-05-31, before the run's date 2026-06-01",
    ),
    (
        "not yet signed",
        "push",
        {"agreement": {"signed": date(2026, 6, 2)}},
        "agreement_signed",
        None,
        "signed on 2026-06-02, after the run's date 2026-06-01",
    ),
    (
        "field outside the agreement",
        "expo",
        {"share": {"users": ["name", "email"], "orders": ["address"]}},
        "field_in_agreement",
        "orders.address",
        "which agreement NDA-7 does not cover",
    ),
    (
        "a credentials field",
        "push",
        {"share": {"users": ["email", "password_hash"]}},
        "field_shareable",
        "users.password_hash",
        "a category that is never shared",
    ),
    (
        "consent basis without consent config",
        "expo",
        {"consent": None},
        "consent_configured",
        None,
        "legal_basis consent needs consent",
    ),
]


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("recipient,changes,rule,field,words", [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_a_refused_delivery_names_recipient_rule_and_field_delivers_nothing_and_is_registered(
    world, recipient, changes, rule, field, words
):
    config, engine, state, store = world
    sharing = _sharing(_refused(config, recipient, **changes), engine, state, store, recipient)
    with pytest.raises(SharingRefused) as caught:
        _deliver(sharing)
    message = str(caught.value)
    assert f"recipient {recipient!r}: rule {rule}:" in message and words in message
    if field:
        assert f" {field}: " in message
    assert store.keys("") == [], "nothing delivered"
    [entry] = _register(state)
    assert (entry["outcome"], entry["rule"], entry["records"], entry["manifest"]) == ("refused", rule, 0, None)
    assert words in entry["reason"]
    assert [e.kind for e in state.ledger.entries(kind="sharing.refused")] == ["sharing.refused"]


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_manifest_verify_passes_then_fails_after_one_byte_of_the_file_or_the_manifest_changes(world, capsys):
    config, engine, state, store = world
    _deliver(_sharing(config, engine, state, store, "push"))
    folder = str(config.directory)
    key = "push/2026-05-31/manifest.json"
    assert cli.main(["--config", folder, "manifest", "verify", key]) == 0
    assert cli.main(["--config", folder, "manifest", "verify", f"s3://{store.bucket}/{key}"]) == 0
    assert "signature valid" in capsys.readouterr().out

    data = store.get_bytes("push/2026-05-31/users.jsonl")
    store.client.put_object(
        Bucket=store.bucket, Key="push/2026-05-31/users.jsonl", Body=data.replace(b"u1@", b"u7@", 1)
    )
    assert cli.main(["--config", folder, "manifest", "verify", key]) == 1
    assert "users: push/2026-05-31/users.jsonl" in capsys.readouterr().out
    store.client.put_object(Bucket=store.bucket, Key="push/2026-05-31/users.jsonl", Body=data)
    assert cli.main(["--config", folder, "manifest", "verify", key]) == 0

    manifest = store.get_bytes(key)
    at = manifest.index(b'"records": ') + len(b'"records": ')
    changed = manifest[:at] + bytes([manifest[at] ^ 1]) + manifest[at + 1 :]
    store.client.put_object(Bucket=store.bucket, Key=key, Body=changed)
    capsys.readouterr()
    assert cli.main(["--config", folder, "manifest", "verify", key]) == 1
    assert "signature does not match" in capsys.readouterr().out
    assert verify_manifest(store, key, b"another-key-0123456789") != []


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_the_register_export_for_a_period_lists_deliveries_and_refusals(world, capsys, monkeypatch):
    config, engine, state, store = world
    _deliver(_sharing(config, engine, state, store, "push"))
    with pytest.raises(SharingRefused):
        _deliver(
            _sharing(_refused(config, "expo", agreement={"expires": date(2026, 5, 1)}), engine, state, store, "expo")
        )
    _deliver(
        _sharing(config, engine, state, store, "push"), Interval(AS_OF + timedelta(days=40), AS_OF + timedelta(days=41))
    )
    monkeypatch.setattr(cli, "_state", lambda args: state)
    assert (
        cli.main(
            ["--config", str(config.directory), "sharing", "register", "--from", "2026-06-01", "--to", "2026-06-30"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "2 entries" in out
    csv_path = out.split("csv:")[1].split()[0]
    rows = list(csv.DictReader(open(csv_path, encoding="utf-8")))
    assert [(r["recipient_id"], r["outcome"]) for r in rows] == [("expo", "refused"), ("push", "delivered")]
    push = next(r for r in rows if r["recipient_id"] == "push")
    assert push["recipient_name"] == "Acme Push Ltd." and push["contact"] == "privacy@acme.example"
    assert push["purpose"] == "Deliver push notifications" and "basic_info" in push["categories"]
    assert "jsonl extract of users, orders, written to" in push["processing"] and push["manifest"].startswith("s3://")
    assert "agreement_in_force" in next(r for r in rows if r["recipient_id"] == "expo")["rule"]
    html = open(out.split("html:")[1].split()[0], encoding="utf-8").read()
    assert "Expo GmbH" in html and "refused" in html


def test_a_large_file_goes_up_in_parts_and_a_failed_upload_leaves_nothing(s3_store):
    part = 5 * 1024 * 1024
    chunks = [bytes([n]) * (1024 * 1024) for n in range(11)]
    uploaded = s3_store.upload(
        "big.jsonl", iter(chunks), content_type="application/x-ndjson", encryption="AES256", part_size=part
    )
    assert (uploaded.parts, uploaded.size) == (3, 11 * 1024 * 1024)
    assert uploaded.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert s3_store.digest("big.jsonl") == (uploaded.size, uploaded.sha256)
    assert s3_store.head("big.jsonl")["ServerSideEncryption"] == "AES256"

    def failing():
        yield from chunks[:6]
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        s3_store.upload("broken.jsonl", failing(), content_type="application/x-ndjson", part_size=part)
    assert s3_store.head("broken.jsonl") is None
    assert s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []


CONFIG_PROBLEMS = [
    (
        "marketing without consent basis",
        ("recipients", 1, "legal_basis"),
        "contract",
        "recipients[1].legal_basis",
        "a marketing_partner may receive data under consent, not contract",
    ),
    (
        "field outside the agreement",
        ("recipients", 1, "share"),
        {"users": ["name", "tier", "email"], "orders": ["address"]},
        "recipients[1].share.orders[0]",
        "which agreement NDA-7 does not cover",
    ),
    (
        "rows of a category outside the agreement",
        ("recipients", 1, "share"),
        {"users": ["name"], "orders": ["amount"]},
        "recipients[1].share.orders",
        "rows of 'orders' are transaction_records",
    ),
    (
        "the subject id listed",
        ("recipients", 0, "share"),
        {"orders": ["user_id"]},
        "recipients[0].share.orders[0]",
        "holds the subject id",
    ),
    (
        "prefix without the interval",
        ("recipients", 0, "delivery", "prefix"),
        "push/",
        "recipients[0].delivery.prefix",
        "needs {ds}",
    ),
    (
        "acquirer under a processing agreement",
        ("recipients", 0),
        None,
        "recipients[0].agreement.type",
        "due_diligence needs a confidentiality agreement",
    ),
]


@pytest.mark.parametrize("keys,value,path,words", [c[1:] for c in CONFIG_PROBLEMS], ids=[c[0] for c in CONFIG_PROBLEMS])
def test_bad_recipient_configuration_is_refused_with_file_and_key(tmp_path, keys, value, path, words):
    files = _files(tmp_path, "bkt-drop", "drop_s3")
    target = files["recipients.yaml"]
    for k in keys[:-1]:
        target = target[k]
    if value is None:  # the acquirer case changes three keys
        target[keys[-1]].update(role="acquirer", legal_basis="due_diligence")
        target[keys[-1]]["agreement"]["type"] = "data_processing"
    else:
        target[keys[-1]] = value
    with pytest.raises(ConfigError) as caught:
        load_config(sample.write(tmp_path / "config", files))
    found = [p for p in caught.value.problems if p.file == "recipients.yaml" and p.path == path]
    assert any(words in p.message for p in found), [str(p) for p in caught.value.problems]


class Killed(BaseException):
    """The task's process dies (no handler of ours runs)."""


def _versions(store, prefix: str) -> dict[str, int]:
    """The oracle: how many times each key was written, from a versioned bucket's versions."""
    found: dict[str, int] = {}
    for version in store.client.list_object_versions(Bucket=store.bucket, Prefix=prefix).get("Versions", []):
        found[version["Key"]] = found.get(version["Key"], 0) + 1
    return found


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("killed_in", ["extract_orders", "manifest"])
def test_a_delivery_killed_mid_way_is_finished_by_clearing_its_tasks_and_uploads_nothing_twice(
    world, monkeypatch, killed_in
):
    """An extract dies after its file went up and was recorded, before the task returned; or the
    manifest task dies after writing the signed manifest.  Clearing the run's tasks finishes the
    delivery: every key is written once, the manifest verifies, the register has one entry."""
    from lifecycle.sharing import service

    config, engine, state, store = world
    store.client.put_bucket_versioning(Bucket=store.bucket, VersioningConfiguration={"Status": "Enabled"})
    sharing = _sharing(config, engine, state, store, "push")
    if killed_in == "extract_orders":
        record = state.ledger.append

        def record_then_die(kind, payload, **kwargs):
            entry = record(kind, payload, **kwargs)
            if kind == "sharing.extracted" and payload["dataset"] == "orders":
                raise Killed()
            return entry

        monkeypatch.setattr(state.ledger, "append", record_then_die)
        restore = (state.ledger, "append", record)
    else:
        written = service.write_manifest

        def write_then_die(*args, **kwargs):
            written(*args, **kwargs)
            raise Killed()

        monkeypatch.setattr(service, "write_manifest", write_then_die)
        restore = (service, "write_manifest", written)
    with pytest.raises(Killed):
        _deliver(sharing)
    monkeypatch.setattr(*restore)  # the process that reruns the tasks is a new one
    if killed_in == "extract_orders":
        assert _versions(store, "push/") == {"push/2026-05-31/users.jsonl": 1, "push/2026-05-31/orders.jsonl": 1}

    files, manifest = _deliver(_sharing(config, engine, state, store, "push"))  # every task cleared
    _deliver(_sharing(config, engine, state, store, "push"))  # and once more
    assert _versions(store, "push/") == {
        f"push/2026-05-31/{name}": 1 for name in ("users.jsonl", "orders.jsonl", "manifest.json", "manifest.html")
    }, "each key written once"
    assert verify_manifest(store, "push/2026-05-31/manifest.json", SIGNING_KEY.encode()) == []
    body = store.get_bytes("push/2026-05-31/users.jsonl")
    assert next(f for f in files if f["dataset"] == "users")["sha256"] == hashlib.sha256(body).hexdigest()
    [entry] = _register(state)
    assert entry["manifest_sha256"] == manifest["sha256"]
    assert state.ledger.verify().ok


def test_an_upload_a_killed_process_left_open_is_aborted_by_the_next_upload_of_its_key(s3_store):
    """A killed extract cannot abort its multipart upload; its parts (personal data) must not stay."""
    key = "push/2026-05-31/users.jsonl"
    left = s3_store.client.create_multipart_upload(Bucket=s3_store.bucket, Key=key)["UploadId"]
    s3_store.client.upload_part(Bucket=s3_store.bucket, Key=key, UploadId=left, PartNumber=1, Body=b"x" * 1024)
    other = s3_store.client.create_multipart_upload(Bucket=s3_store.bucket, Key=key + ".other")["UploadId"]
    s3_store.upload(key, [b'{"a": 1}\n'], content_type="application/x-ndjson")
    open_uploads = s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in open_uploads] == [(key + ".other", other)], "only its own key's"
    assert s3_store.get_bytes(key) == b'{"a": 1}\n'
