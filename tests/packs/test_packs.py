"""Evidence packs: one signed folder per period that a regulator checks with the public key
alone; the same bytes when built again; a changed file or another key caught by name; each
recipient delivered once across a kill (a real SMTP server and moto's S3 server)."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import subprocess
import sys
import uuid
import zipfile
from datetime import date

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lifecycle import checkpoints, signing
from lifecycle.cli import main
from lifecycle.config import load_config
from lifecycle.erasure.certificates import Certificates
from lifecycle.errors import LifecycleError
from lifecycle.mail import Mailer
from lifecycle.mailsink import MailSink
from lifecycle.packs import Period, build_pack, deliver_pack, verify_pack
from lifecycle.sharing.register import SharingRegister
from lifecycle.state import StateStore
from lifecycle.stores import Stores
from tests.config import sample

NOVEMBER = Period(date(2026, 11, 1), date(2026, 11, 30))
AUDITOR, REGULATOR = "audit@auditor.example", "packs@regulator.example"


class Killed(BaseException):
    """The process dies (no handler of ours runs)."""


def _config(folder, s3_conn_id=None, drop=None, smtp_port=None):
    files = copy.deepcopy(sample.FILES)
    catalog = files["catalog.yaml"]
    catalog["reports"] = {"path": str(folder / "reports")}
    recipients = [{"id": "auditor", "name": "Audit firm", "email": AUDITOR}]
    if drop:
        catalog["systems"]["pack_drop"] = {"type": "s3", "conn_id": s3_conn_id, "bucket": drop}
        recipients.append(
            {
                "id": "lead_sa",
                "name": "Lead SA",
                "role": "regulator",
                "email": REGULATOR,
                "upload": {"system": "pack_drop", "prefix": "evidence/"},
            }
        )
    catalog["evidence"] = {
        "checkpoints": {"path": str(folder / "evidence")},
        "packs": {"destination": {"path": str(folder / "evidence")}, "recipients": recipients},
    }
    files["incidents.yaml"]["email"] = {
        "conn_id": "smtp_default",
        "from": "MIC Privacy <privacy@mic.example>",
        "retry_attempts": 1,
    }
    return load_config(sample.write(folder / "config", files))


def _entry(recipient: str, end: str) -> dict:
    return {
        "entry_key": f"{recipient}|{end}",
        "recipient_id": recipient,
        "recipient_name": "Acme Analytics",
        "contact": "dpo@acme.example",
        "role": "processor",
        "legal_basis": "contract",
        "purpose": "Order analytics",
        "processing": "csv extract of orders",
        "agreement_id": "DPA-7",
        "categories": ["transaction_records"],
        "fields": {"orders": ["id", "total"]},
        "interval_start": f"{end[:10]}T00:00:00+00:00",
        "interval_end": end,
        "outcome": "delivered",
        "records": 42,
        "manifest": "s3://drop/acme/manifest.json",
        "manifest_sha256": "ab" * 32,
    }


def _leaf(subject: str, completed_at: str, batch: str) -> dict:
    return {"subject": subject, "completed_at": completed_at, "batch": batch, "datasets": [], "ledger_entries": []}


def _seed(config, state) -> str:
    """Two disclosures, two erasure batches and two checkpoints: one of each in November; the
    key of November's checkpoint."""
    register, certificates = SharingRegister(state), Certificates(config.catalog, state)
    for day in ("2026-10-20", "2026-11-03"):
        register.record(_entry("acme", f"{day}T00:00:00+00:00"), dag_id="sharing_acme", run_id=day)
        batch = f"{day}:0"
        leaves = {s: _leaf(s * 32, f"{day}T10:00:00+00:00", batch) for s in ("ab", "cd", "ef")}
        certificates._write(batch, leaves, run_id=f"manual__{day}")
        where = checkpoints.publish(config.catalog, state.ledger, time=f"{day}T12:00:00+00:00", dag_id="d", run_id=day)
    return "checkpoints/" + where.rsplit("/", 1)[-1]


@pytest.fixture
def world(engine, tmp_path):
    config = _config(tmp_path)
    state = StateStore(engine, dataset_names=set(config.catalog.datasets))
    return config, state, tmp_path, _seed(config, state)


def _files(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_pack_holds_the_periods_records_verifies_and_is_the_same_bytes_built_again(world, capsys):
    config, state, tmp, checkpoint = world
    first = build_pack(config, state, NOVEMBER.start, NOVEMBER.end, tmp / "a")
    second = build_pack(config, state, NOVEMBER.start, NOVEMBER.end, tmp / "b")
    a, b = _files(tmp / "a"), _files(tmp / "b")
    assert a == b and first.manifest_sha256 == second.manifest_sha256, "same period and state, same bytes"
    assert sorted(a) == sorted(
        [
            "VERIFY.md",
            "batches/2026-11-03_0/leaves.jsonl",
            "batches/2026-11-03_0/root.json",
            checkpoint,
            "evidence-pack.pdf",
            "index.html",
            "manifest.json",
            "public-keys.json",
            "records/batch_roots.html",
            "records/batch_roots.json",
            "records/breach_register.html",
            "records/breach_register.json",
            "records/ledger_checkpoints.html",
            "records/ledger_checkpoints.json",
            "records/record_of_processing.html",
            "records/record_of_processing.json",
            "records/request_statistics.html",
            "records/request_statistics.json",
            "records/sharing_register.csv",
            "records/sharing_register.html",
            "records/sharing_register.json",
        ]
    ), "October's batch, checkpoint and disclosure stay out"
    manifest = json.loads(a["manifest.json"])
    assert manifest["period"] == {"from": "2026-11-01", "to": "2026-11-30"}
    assert manifest["as_of"] == "2026-11-30T23:59:59+00:00"
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == {
        p: hashlib.sha256(d).hexdigest() for p, d in a.items() if p != "manifest.json"
    }
    processing = json.loads(a["records/record_of_processing.json"])
    assert processing["record"] == "record of processing activities" and processing["controller"]["name"]
    statistics = json.loads(a["records/request_statistics.json"])
    assert statistics["period"] == {"from": "2026-11-01T00:00:00+00:00", "to": "2026-12-01T00:00:00+00:00"}
    assert [s["name"] for s in manifest["sections"]] == [
        "record_of_processing",
        "request_statistics",
        "breach_register",
        "sharing_register",
        "batch_roots",
        "ledger_checkpoints",
    ]
    assert json.loads(a["records/breach_register.json"])["incidents"] == [], "no incident in this state store"
    register = json.loads(a["records/sharing_register.json"])
    assert [e["interval_end"] for e in register["entries"]] == ["2026-11-03T00:00:00+00:00"]
    assert a["batches/2026-11-03_0/root.json"] == (tmp / "reports/certificates/2026-11-03_0/root.json").read_bytes()
    assert a[checkpoint] == (tmp / "evidence" / checkpoint).read_bytes()
    key_id = signing.key_id(signing.PublicKeys.load(a["public-keys.json"], "pack").keys.popitem()[1])
    assert manifest["attestation"]["key_id"] == key_id and key_id in a["index.html"].decode()

    from pypdf import PdfReader

    pdf = PdfReader(io.BytesIO(a["evidence-pack.pdf"]))
    assert pdf.metadata["/CreationDate"].startswith("D:20261130235959"), "the PDF is dated the pack's time"
    assert pdf.metadata["/ModDate"] == pdf.metadata["/CreationDate"]
    text = " ".join(page.extract_text() for page in pdf.pages)
    assert "Sharing register" in text and "Acme Analytics" in text and "Ledger checkpoints" in text

    # the project's verifier, on the folder and on the manifest, with the public keys given
    keys = tmp / "published-keys.json"
    keys.write_bytes(a["public-keys.json"])
    assert main(["evidence", "verify", "--keys", str(keys), str(tmp / "a")]) == 0
    assert main(["evidence", "verify", str(tmp / "a" / "manifest.json")]) == 0
    out = capsys.readouterr().out
    assert "evidence.pack" in out and "every file the manifest lists (20) re-hashed" in out
    assert "the signed batch roots and checkpoints inside it (2)" in out and "result: OK" in out

    # VERIFY.md's snippet, run as written, with Python and cryptography alone
    snippet = re.search(r"```python\n(.*?)```", a["VERIFY.md"].decode(), re.S)[1]
    ran = subprocess.run([sys.executable, "-c", snippet], cwd=tmp / "a", capture_output=True, text=True)
    assert ran.returncode == 0 and "all 20 files check out" in ran.stdout, ran.stderr


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "path", ["records/sharing_register.json", "evidence-pack.pdf", "batches/2026-11-03_0/leaves.jsonl", "index.html"]
)
def test_a_byte_flipped_in_any_file_fails_the_check_naming_the_file(world, capsys, path):
    config, state, tmp, checkpoint = world
    build_pack(config, state, NOVEMBER.start, NOVEMBER.end, tmp / "p")
    target = tmp / "p" / path
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    checked = verify_pack(config, NOVEMBER, tmp / "p")
    assert checked.problems[0] == f"{path}: does not hash to the SHA-256 the signed manifest lists (changed)"
    assert all(p.startswith((path, "batches/2026-11-03_0/root.json: the leaves")) for p in checked.problems)
    assert main(["evidence", "verify", str(tmp / "p")]) == 1
    assert f"FAILED: {path}: does not hash" in capsys.readouterr().out


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_another_public_key_or_a_replaced_key_file_fails_the_check(world, capsys):
    config, state, tmp, checkpoint = world
    build_pack(config, state, NOVEMBER.start, NOVEMBER.end, tmp / "p")
    other = signing.PublicKeys.of(Ed25519PrivateKey.generate().public_key()).published()
    (tmp / "other.json").write_bytes(other)
    assert main(["evidence", "verify", "--keys", str(tmp / "other.json"), str(tmp / "p")]) == 1
    assert "is not among the public keys given" in capsys.readouterr().out
    (tmp / "p" / "public-keys.json").write_bytes(other)  # the pack's own copy swapped
    assert main(["evidence", "verify", str(tmp / "p")]) == 1
    out = capsys.readouterr().out
    assert "is not among the public keys given" in out and "public-keys.json: does not hash" in out
    manifest = json.loads((tmp / "p" / "manifest.json").read_bytes())
    manifest["files"] = manifest["files"][1:]  # a file dropped from the signed list
    (tmp / "p" / "manifest.json").write_text(json.dumps(manifest))
    checked = verify_pack(config, NOVEMBER, tmp / "p")
    assert any("does not match" in p for p in checked.problems)


def test_a_pack_is_delivered_to_each_recipient_once_across_a_kill(engine, tmp_path, monkeypatch, s3_store, s3_conn_id):
    """The task dies right after the SMTP server took the auditor's mail and after the first file
    was put; run again (twice), nobody is mailed twice and no file is put twice."""
    from lifecycle.stores.s3 import S3Store

    drop = f"t-pack-{uuid.uuid4().hex[:8]}"
    s3_store.client.create_bucket(Bucket=drop)
    s3_store.client.put_bucket_versioning(Bucket=drop, VersioningConfiguration={"Status": "Enabled"})
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
        config = _config(tmp_path, s3_conn_id, drop)
        state = StateStore(engine, dataset_names=set(config.catalog.datasets))
        _seed(config, state)
        built = build_pack(config, state, NOVEMBER.start, NOVEMBER.end)
        stores = Stores(config.catalog)
        put, transmit = S3Store.put_bytes, Mailer.transmit

        def put_then_die(self, key, data, **kwargs):
            version = put(self, key, data, **kwargs)
            if self.bucket == drop:
                raise Killed()
            return version

        def transmit_then_die(self, composed):
            message_id = transmit(self, composed)
            if composed.to == AUDITOR:
                raise Killed()
            return message_id

        monkeypatch.setattr(S3Store, "put_bytes", put_then_die)
        with pytest.raises(Killed):
            deliver_pack(config, state, NOVEMBER, stores)
        monkeypatch.setattr(S3Store, "put_bytes", put)
        monkeypatch.setattr(Mailer, "transmit", transmit_then_die)
        with pytest.raises(Killed):
            deliver_pack(config, state, NOVEMBER, stores)
        monkeypatch.setattr(Mailer, "transmit", transmit)
        for _ in range(2):  # the cleared task, and once more
            with pytest.raises(LifecycleError, match="auditor by email: uncertain"):
                deliver_pack(config, state, NOVEMBER, stores)

        to = sorted(m.envelope_to[0] for m in sink.messages)
        assert to == [AUDITOR, REGULATOR], "each recipient mailed once; the mail in flight in the kill not again"
        mail = next(m for m in sink.messages if m.envelope_to[0] == REGULATOR)
        attached = {part.get_filename(): part.get_payload(decode=True) for part in mail.iter_attachments()}
        assert sorted(attached) == [
            "evidence-pack-2026-11-01_2026-11-30.pdf",
            "evidence-pack-2026-11-01_2026-11-30.zip",
        ]
        assert built.manifest_sha256 in mail.text
        unzipped = tmp_path / "unzipped"
        zipfile.ZipFile(io.BytesIO(attached["evidence-pack-2026-11-01_2026-11-30.zip"])).extractall(unzipped)
        assert main(["evidence", "verify", str(unzipped)]) == 0, "the zip is the pack, and it checks out"
        (tmp_path / "pack.zip").write_bytes(attached["evidence-pack-2026-11-01_2026-11-30.zip"])
        assert (
            main(["evidence", "verify", "--keys", str(unzipped / "public-keys.json"), str(tmp_path / "pack.zip")]) == 0
        )

        versions = s3_store.client.list_object_versions(Bucket=drop).get("Versions", [])
        keys = [v["Key"] for v in versions]
        assert sorted(keys) == sorted(
            f"evidence/2026-11-01_2026-11-30/{p}" for p in _files(tmp_path / "evidence/packs/2026-11-01_2026-11-30")
        )
        assert len(keys) == len(set(keys)) == built.files, "each file put once: one version per key"
        entries = state.ledger.entries_with_prefix("evidence:pack:2026-11-01_2026-11-30:delivery:")
        assert sorted((e.payload["recipient"], e.payload["channel"], e.payload["status"]) for e in entries) == [
            ("auditor", "email", "uncertain"),
            ("lead_sa", "email", "sent"),
            ("lead_sa", "upload", "uploaded"),
        ]
        assert all(e.payload["manifest_sha256"] == built.manifest_sha256 for e in entries)
        assert state.ledger.verify().ok


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_the_command_builds_a_period_into_a_folder_and_checks_it(world, connect, capsys):
    config, state, tmp, _ = world
    connect("lifecycle_state", state.engine.url)
    out = tmp / "by-hand"
    argv = ["--config", str(config.directory), "evidence", "pack", "--from", "2026-11-01", "--to", "2026-11-30"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"evidence pack 2026-11-01_2026-11-30: {out}/ (21 files" in printed and "result: OK" in printed
    assert (out / "manifest.json").exists() and (out / "index.html").exists()
    assert (
        main(["--config", str(config.directory), "evidence", "pack", "--from", "2026-11-30", "--to", "2026-11-01"]) == 1
    )
    assert "--to 2026-11-01 is before --from 2026-11-30" in capsys.readouterr().err


PACK_CASES = [
    (
        {"id": "x", "name": "X", "upload": {"system": "nowhere"}},
        "evidence.packs.recipients[0].upload.system",
        "unknown system 'nowhere'",
    ),
    ({"id": "x", "name": "X", "upload": {"system": "app_db"}}, "evidence.packs.recipients[0].upload.system", "s3"),
    ({"id": "x", "name": "X"}, "evidence.packs.recipients[0]", "needs email, upload or both"),
]


@pytest.mark.parametrize("recipient,path,words", PACK_CASES)
def test_a_pack_recipient_without_a_channel_or_with_a_wrong_system_is_refused(tmp_path, recipient, path, words):
    from lifecycle.errors import ConfigError

    files = copy.deepcopy(sample.FILES)
    files["catalog.yaml"]["evidence"] = {"packs": {"recipients": [recipient]}}
    with pytest.raises(ConfigError) as caught:
        load_config(sample.write(tmp_path, files))
    found = [str(p) for p in caught.value.problems]
    assert any(path in p and words in p for p in found), found


def test_mailed_pack_recipients_need_mail_settings(tmp_path):
    from lifecycle.errors import ConfigError

    files = copy.deepcopy(sample.FILES)
    del files["incidents.yaml"]
    files["catalog.yaml"]["evidence"] = {"packs": {"recipients": [{"id": "x", "name": "X", "email": AUDITOR}]}}
    with pytest.raises(ConfigError, match=r"evidence.packs.recipients\[0\].email: notices need mail settings"):
        load_config(sample.write(tmp_path, files))


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_the_demo_ends_with_its_months_pack_where_it_is_and_its_check(world, connect):
    from datetime import UTC, datetime

    from lifecycle.demo.evidence import pack_lines

    config, state, tmp, _ = world
    connect("lifecycle_state", state.engine.url)
    lines = pack_lines(config, datetime(2026, 11, 26, tzinfo=UTC))
    folder = f"{tmp}/evidence/packs/2026-11-01_2026-11-26/"
    assert lines[0] == f"\nevidence pack 2026-11-01 – 2026-11-26: {folder}index.html (21 files)"
    assert lines[1] == f"$ python -m lifecycle evidence verify {folder}" and lines[-1] == "  result: OK"
    assert len(lines) <= 8, "a few lines"


def test_a_monthly_run_packs_the_calendar_month_before_its_logical_date():
    from datetime import UTC, datetime

    assert Period.month_before(datetime(2026, 12, 1, tzinfo=UTC)) == NOVEMBER
    assert Period.month_before(datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == NOVEMBER
    assert Period.month_before(datetime(2027, 1, 1, tzinfo=UTC)).key == "2026-12-01_2026-12-31"
    assert Period.month_before(datetime(2028, 3, 1, tzinfo=UTC)).end == date(2028, 2, 29)
    assert NOVEMBER.begins.isoformat() == "2026-11-01T00:00:00+00:00"
    assert NOVEMBER.until.isoformat() == "2026-12-01T00:00:00+00:00"
    with pytest.raises(LifecycleError, match="--to 2026-11-01 is before --from 2026-11-02"):
        Period(date(2026, 11, 2), date(2026, 11, 1))


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_pack_in_an_s3_destination_is_checked_where_it_is(engine, tmp_path, s3_store, s3_conn_id, capsys):
    files = copy.deepcopy(sample.FILES)
    files["catalog.yaml"]["reports"] = {"path": str(tmp_path / "reports")}
    files["catalog.yaml"]["systems"]["evidence"] = {"type": "s3", "conn_id": s3_conn_id, "bucket": s3_store.bucket}
    files["catalog.yaml"]["evidence"] = {
        "checkpoints": {"path": str(tmp_path / "evidence")},
        "packs": {"destination": {"system": "evidence", "prefix": "regulators/"}},
    }
    config = load_config(sample.write(tmp_path / "config", files))
    state = StateStore(engine, dataset_names=set(config.catalog.datasets))
    _seed(config, state)
    built = build_pack(config, state, NOVEMBER.start, NOVEMBER.end)
    assert built.location == f"s3://{s3_store.bucket}/regulators/packs/2026-11-01_2026-11-30/"
    assert verify_pack(config, NOVEMBER).ok
    keys = tmp_path / "keys.json"
    keys.write_bytes(s3_store.get_bytes("regulators/packs/2026-11-01_2026-11-30/public-keys.json"))
    manifest = built.location + "manifest.json"
    assert main(["evidence", "verify", "--keys", str(keys), "--conn-id", s3_conn_id, manifest]) == 0
    assert "every file the manifest lists (20) re-hashed" in capsys.readouterr().out
    s3_store.put_bytes("regulators/packs/2026-11-01_2026-11-30/records/batch_roots.json", b"{}", content_type="x")
    assert verify_pack(config, NOVEMBER).problems[0].startswith("records/batch_roots.json: does not hash")
