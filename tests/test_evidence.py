"""Signatures anyone can check: Ed25519 on every kind of document the lifecycle issues, batch
certificates as Merkle trees, signed ledger checkpoints, and ``evidence verify`` catching each
kind of tampering by name.  A second check verifies signatures with ``cryptography`` directly."""

from __future__ import annotations

import base64
import io
import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lifecycle import attestations, checkpoints, merkle, reports, signing
from lifecycle.catalog.models import Evidence, Reports
from lifecycle.cli import main
from lifecycle.erasure.certificates import Certificates, person_certificate
from lifecycle.rights.package import PackageWriter
from lifecycle.sharing.manifest import sign as hmac_sign
from lifecycle.state import StateStore
from lifecycle.state.ledger import entry_hash
from lifecycle.state.schema import GENESIS, ledger_entries, ledger_head
from tests.conftest import TEST_EVIDENCE_KEY

PUBLIC = Ed25519PrivateKey.from_private_bytes(base64.b64decode(TEST_EVIDENCE_KEY)).public_key()


def independently_verified(document: dict, public: Ed25519PublicKey = PUBLIC) -> bool:
    """The documented rule, implemented here without the project's module: Ed25519 over the
    compact sorted JSON of the document without ``signature``, its attestation without ``value``."""
    attestation = document["attestation"]
    body = {k: v for k, v in document.items() if k not in ("attestation", "signature")}
    body["attestation"] = {k: v for k, v in attestation.items() if k != "value"}
    message = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    try:
        public.verify(base64.b64decode(attestation["value"]), message)
    except Exception:
        return False
    return True


@pytest.fixture
def catalog(tmp_path):
    return SimpleNamespace(
        model=SimpleNamespace(
            reports=Reports(path=str(tmp_path / "reports")),
            evidence=Evidence(checkpoints=Reports(path=str(tmp_path / "evidence"))),
        )
    )


@pytest.fixture
def state(tmp_path):
    return StateStore(sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}"))


@pytest.fixture
def keys(catalog):
    return reports.public_keys(catalog)


def flip(raw: bytes, needle: bytes) -> bytes:
    """``raw`` with one byte of the first ``needle`` flipped (a letter or digit: the JSON stays valid)."""
    at = raw.index(needle) + len(needle) - 1
    return raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1 :]


def test_a_signature_checks_out_with_cryptography_alone_and_names_key_kind_and_fields(catalog, keys):
    document = reports.signer(catalog).sign({"b": [1, 2], "a": "ünïcode", "signature": "hmac"}, "test.kind")
    assert independently_verified(document)
    verdict = signing.verify(document, keys)
    assert verdict.ok and verdict.kind == "test.kind" and verdict.signed_fields == ["a", "b"]
    assert verdict.key_id == signing.key_id(PUBLIC) and len(verdict.key_id) == 16
    changed = document | {"b": [1, 3]}
    assert not independently_verified(changed) and "does not match" in signing.verify(changed, keys).problems[0]
    added = document | {"extra": 1}
    assert signing.verify(added, keys).problems[0].startswith("member(s) not signed: extra")
    relabelled = document | {"attestation": document["attestation"] | {"kind": "other"}}
    assert not independently_verified(relabelled)


def test_retired_keys_stay_listed_and_still_verify(catalog, tmp_path):
    old = Ed25519PrivateKey.generate()
    signed_before = signing.Signer(old).sign({"what": "signed with the old key"}, "test")
    retired_text = base64.b64encode(signing.raw_public(old.public_key())).decode()
    catalog.model.evidence = Evidence(retired_keys=[{"public_key": retired_text, "retired_on": "2026-01-01"}])
    published = signing.PublicKeys.load(reports.public_keys(catalog).published(), "test")
    assert published.status == {signing.key_id(PUBLIC): "current", signing.key_id(old.public_key()): "retired"}
    assert signing.verify(signed_before, published).ok
    only_current = signing.PublicKeys.of(PUBLIC)
    assert "is not among the public keys" in signing.verify(signed_before, only_current).problems[0]


def test_a_bad_private_key_is_refused_naming_the_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN_KEY", json.dumps({"conn_type": "generic", "password": "x" * 40}))
    with pytest.raises(signing.SigningError, match=r"'broken_key'.*Ed25519 private key"):
        signing.signer("broken_key")


# -- each signed kind: a flipped byte and a replaced public key are caught -----------------


def _report(catalog, state, tmp_path):
    """A regulator report: JSON (signed, with the PDF's SHA-256), HTML and PDF."""
    document = {
        "report": "cancellation erasure",
        "run_id": "manual/1",
        "as_of": "2026-06-01T00:00:00+00:00",
        "states": {"done": 2},
        "notices": {},
        "completed_this_run": 2,
        "certificates": [],
        "overdue": [],
        "complete_within": "30d",
    }
    writer = reports.ReportWriter(catalog, state.ledger)
    written = writer.write(
        "cancellation/2026-06-01/report",
        document,
        template="cancellation_report.html.j2",
        kind="erasure.report",
        pdf=b"%PDF-1.4 the report",
    )
    return written.json.location, b"2026-06-01T00"


def _batch(catalog, state):
    leaves = {str(n): _leaf(n) for n in range(5)}
    root = Certificates(catalog, state)._write("2026-06-01:0", leaves, "run")
    return root["location"], b"erasure.certificates"


def _leaf(n: int) -> dict:
    return {
        "subject": f"{n:02d}" + "ab" * 31,
        "requested_at": "2026-05-01T00:00:00+00:00",
        "grace_end": "2026-05-31T00:00:00+00:00",
        "completed_at": f"2026-06-01T00:00:{n:02d}+00:00",
        "batch": "2026-06-01:0",
        "datasets": [{"dataset": "orders", "action": "anonymize", "anonymized": n}],
        "ledger_entries": ["cd" * 32],
    }


def _manifest(catalog, tmp_path):
    document = reports.signer(catalog).sign({"manifest": "delivery", "records": 40}, "sharing.manifest")
    document["signature"] = {"algorithm": "HMAC-SHA256", "value": hmac_sign(document, b"k" * 32)}
    path = tmp_path / "manifest.json"
    path.write_bytes(reports.canonical(document))
    assert hmac_sign(json.loads(path.read_bytes()), b"k" * 32) == document["signature"]["value"]
    return str(path), b"sharing.manifest"


def _package(catalog, tmp_path):
    buffer = io.BytesIO()
    writer = PackageWriter(buffer, "2026-06-01T00:00:00+00:00")
    writer.write("data/orders.jsonl", [b'{"order": 1}\n'], compress=False, dataset="orders", records=1)
    writer.finish({"manifest": "access package", "request_id": "R1"}, b"k" * 32, "test", reports.signer(catalog))
    path = tmp_path / "package.zip"
    path.write_bytes(buffer.getvalue())
    return str(path), b'{"order": 1'


def _checkpoint(catalog, state):
    for n in range(4):
        state.ledger.append("test.event", {"n": n}, run_id="run")
    return checkpoints.publish(
        catalog, state.ledger, time="2026-06-01T00:00:00+00:00", dag_id="d", run_id="r"
    ), b"ledger"


KINDS = ["report", "batch root", "sharing manifest", "access package", "checkpoint"]


def _issue(kind, catalog, state, tmp_path):
    return {
        "report": lambda: _report(catalog, state, tmp_path),
        "batch root": lambda: _batch(catalog, state),
        "sharing manifest": lambda: _manifest(catalog, tmp_path),
        "access package": lambda: _package(catalog, tmp_path),
        "checkpoint": lambda: _checkpoint(catalog, state),
    }[kind]()


@pytest.mark.parametrize("kind", KINDS)
def test_evidence_verify_passes_each_kind_and_catches_a_flipped_byte_and_a_replaced_key(
    kind, catalog, state, tmp_path, capsys
):
    location, needle = _issue(kind, catalog, state, tmp_path)
    keys_file = tmp_path / "keys.json"
    keys_file.write_bytes(reports.public_keys(catalog).published())
    assert main(["evidence", "verify", location, "--keys", str(keys_file)]) == 0
    out = capsys.readouterr().out
    assert f"key {signing.key_id(PUBLIC)}" in out and "signed fields: " in out and "result: OK" in out
    if kind != "access package":
        assert independently_verified(json.loads(open(location, "rb").read()))

    raw = open(location, "rb").read()
    tampered = tmp_path / f"tampered{location[-5:]}"
    tampered.write_bytes(flip(raw, needle))
    assert main(["evidence", "verify", str(tampered), "--keys", str(keys_file)]) == 1
    assert "FAILED" in capsys.readouterr().out

    other = tmp_path / "other-keys.json"
    other.write_bytes(signing.PublicKeys.of(Ed25519PrivateKey.generate().public_key()).published())
    assert main(["evidence", "verify", location, "--keys", str(other)]) == 1
    assert f"key id '{signing.key_id(PUBLIC)}' is not among the public keys given" in capsys.readouterr().out


def test_a_changed_pdf_is_caught_by_the_signed_json_beside_it(catalog, state, tmp_path, capsys):
    location, _ = _report(catalog, state, tmp_path)
    pdf = location[: -len(".json")] + ".pdf"
    assert main(["evidence", "verify", location]) == 0  # keys found beside the reports
    assert "public-keys.json" in capsys.readouterr().out
    open(pdf, "wb").write(b"%PDF-1.4 another report")
    assert main(["evidence", "verify", location]) == 1
    assert "the PDF beside it does not hash to the signed pdf_sha256" in capsys.readouterr().out


# -- batch certificates as Merkle trees -----------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_every_leafs_proof_leads_to_the_root(n):
    leaves = [_leaf(i) for i in range(n)]
    root = merkle.root(leaves)
    for i, leaf in enumerate(leaves):
        assert merkle.fold(leaf, merkle.proof(leaves, i)) == root
    assert merkle.fold(_leaf(99), merkle.proof(leaves, 0)) != root


def test_a_persons_certificate_verifies_offline_and_a_dropped_leaf_is_named(
    catalog, state, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv(
        "LIFECYCLE_VAR_DIR", str(tmp_path)
    )  # the demo configuration's reports: $LIFECYCLE_VAR_DIR/reports
    location, _ = _batch(catalog, state)
    certificates = Certificates(catalog, state)
    subject = _leaf(3)["subject"]
    document = certificates.person("2026-06-01:0", subject[:20])
    assert document["leaf"] == _leaf(3) and document["batch_root"]["attestation"]["kind"] == "erasure.certificates"
    assert attestations.check(json.dumps(document).encode(), reports.public_keys(catalog)).ok
    out = tmp_path / "cert.json"
    assert main(["certificate", "show", "--batch", "2026-06-01:0", "--subject", subject, "--out", str(out)]) == 0
    assert main(["evidence", "verify", str(out), "--keys", str(tmp_path / "reports" / "public-keys.json")]) == 0
    assert "the leaf's inclusion proof against the signed Merkle root" in capsys.readouterr().out

    assert main(["evidence", "verify", location]) == 0  # the root, and the leaves beside it
    assert "the leaves beside it give the signed Merkle root" in capsys.readouterr().out

    # a leaf dropped from the batch: the root's check says so, and every proof now built leads
    # elsewhere, naming its person
    leaves_file = tmp_path / "reports" / "certificates" / "2026-06-01_0" / "leaves.jsonl"
    lines = leaves_file.read_bytes().splitlines(keepends=True)
    leaves_file.write_bytes(b"".join(lines[:1] + lines[2:]))
    assert main(["evidence", "verify", location]) == 1
    assert "the leaves file holds 4 leaves, the signed root 5 (a leaf dropped or added)" in capsys.readouterr().out
    rebuilt = certificates.person("2026-06-01:0", subject)
    checked = attestations.check(json.dumps(rebuilt).encode(), reports.public_keys(catalog))
    assert not checked.ok and f"leaf of person {subject[:16]}" in checked.problems[0]
    with pytest.raises(Exception, match=f"0 certified person\\(s\\) match subject '{_leaf(1)['subject']}'"):
        certificates.person("2026-06-01:0", _leaf(1)["subject"])

    # a leaf changed in a certificate: its proof no longer reaches the signed root
    forged = person_certificate(_leaf(3) | {"datasets": []}, document["proof"], document["batch_root"])
    problems = attestations.check(json.dumps(forged).encode(), reports.public_keys(catalog)).problems
    assert problems and "its inclusion proof leads to" in problems[0]


# -- ledger checkpoints ---------------------------------------------------------------------


def _rechain(engine, rows: list[dict]) -> None:
    """Rewrite the ledger as ``rows`` (seq renumbered), every hash recomputed from the first:
    what an operator rewriting history would do; the chain itself then verifies."""
    prev = GENESIS
    with engine.begin() as conn:
        conn.execute(ledger_entries.delete())
        for seq, row in enumerate(rows, start=1):
            fields = {k: row[k] for k in ("recorded_at", "kind", "dag_id", "run_id", "idempotency_key", "payload")}
            digest = entry_hash(seq=seq, prev_hash=prev, **fields)
            conn.execute(ledger_entries.insert().values(seq=seq, prev_hash=prev, entry_hash=digest, **fields))
            prev = digest
        conn.execute(ledger_head.update().values(seq=len(rows), entry_hash=prev))


def _rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(ledger_entries).order_by(ledger_entries.c.seq))]


@pytest.fixture
def published(catalog, state):
    """Two checkpoints over 10 entries (6, then 4 more); a third publish finds nothing new."""
    for n in range(6):
        state.ledger.append("test.event", {"n": n}, run_id="r1")
    first = checkpoints.publish(catalog, state.ledger, time="2026-06-01T00:00:00+00:00", dag_id="d", run_id="r1")
    for n in range(6, 10):
        state.ledger.append("test.event", {"n": n}, run_id="r2")
    second = checkpoints.publish(catalog, state.ledger, time="2026-06-02T00:00:00+00:00", dag_id="d", run_id="r2")
    assert checkpoints.publish(catalog, state.ledger, time="2026-06-03T00:00:00+00:00", dag_id="d", run_id="r3") is None
    return first, second


def test_checkpoints_chain_and_the_ledger_extends_them(catalog, state, published, keys):
    first, second = published
    latest = json.loads(open(second).read())
    assert latest["entries"] == 10 and latest["time"] == "2026-06-02T00:00:00+00:00"
    assert latest["previous"]["key"] == "checkpoints/000000000006.json" and latest["appended"]["from"] == 7
    assert latest["head_hash"] == _rows(state.engine)[-1]["entry_hash"] and independently_verified(latest)
    assert checkpoints.check(catalog, state.ledger, keys) == (2, [])


def _edit(rows):
    rows[2]["payload"] = json.dumps({"n": 99})
    return rows


def _remove(rows):
    return rows[:3] + rows[4:]


def _reorder(rows):
    rows[1], rows[4] = rows[4], rows[1]
    return rows


@pytest.mark.parametrize(
    ("change", "named"),
    [(_edit, "entry 3"), (_remove, "entry 4"), (_reorder, "entry 2")],
    ids=["edit", "remove", "reorder"],
)
def test_a_rechained_ledger_passes_its_own_check_but_not_the_checkpoints(
    catalog, state, published, keys, change, named
):
    _rechain(state.engine, change(_rows(state.engine)))
    assert state.ledger.verify().ok  # the chain was recomputed from the start: it checks out by itself
    count, problems = checkpoints.check(catalog, state.ledger, keys)
    assert count == 2 and problems and f"ledger {named} has hash" in problems[0]
    assert problems[0].startswith("checkpoints/000000000006.json")


def test_an_edited_entry_without_rechaining_is_named_by_both_checks(catalog, state, published, keys):
    with state.engine.begin() as conn:
        conn.execute(ledger_entries.update().where(ledger_entries.c.seq == 8).values(payload='{"n":80}'))
    assert "entry 8: content does not match its hash (edited)" in state.ledger.verify().problems
    _, problems = checkpoints.check(catalog, state.ledger, keys)
    assert problems == []  # the stored hash is unchanged: the chain check is the one that names it
    rows = _rows(state.engine)
    _rechain(state.engine, rows)
    _, problems = checkpoints.check(catalog, state.ledger, keys)
    assert len(problems) == 1 and "checkpoints/000000000010.json: ledger entry 8 has hash" in problems[0]


def test_a_removed_or_replaced_checkpoint_is_caught(catalog, state, published, keys, tmp_path):
    first, second = published
    replaced = flip(open(first, "rb").read(), b'"time": "2026-06-01')
    open(first, "wb").write(replaced)
    _, problems = checkpoints.check(catalog, state.ledger, keys)
    assert any("000000000006.json: the Ed25519 signature does not match" in p for p in problems)
    assert any("000000000010.json: does not follow checkpoints/000000000006.json" in p for p in problems)
    (tmp_path / "evidence" / "checkpoints" / "000000000006.json").unlink()
    _, problems = checkpoints.check(catalog, state.ledger, keys)
    assert problems == [
        "checkpoints/000000000010.json: names a previous checkpoint 'checkpoints/000000000006.json' that is not there (removed)"
    ]


def test_ledger_verify_checkpoints_on_the_command_line(tmp_path, monkeypatch, capsys):
    from lifecycle import connections
    from lifecycle.config import load_config
    from tests.config import sample

    config = sample.write(tmp_path / "config")
    monkeypatch.setenv("AIRFLOW_CONN_LIFECYCLE_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv(
        "LIFECYCLE_VAR_DIR", str(tmp_path)
    )  # the default evidence destination: $LIFECYCLE_VAR_DIR/evidence
    connections.forget()
    try:
        catalog = load_config(config).catalog
        state = StateStore.for_catalog(catalog)
        for n in range(5):
            state.ledger.append("test.event", {"n": n}, run_id="r1")
        where = checkpoints.publish(catalog, state.ledger, time="2026-06-01T00:00:00+00:00", dag_id="d", run_id="r1")
        assert where == str(tmp_path / "evidence" / "checkpoints" / "000000000005.json")
        assert main(["--config", str(config), "ledger", "verify", "--checkpoints"]) == 0
        assert "checkpoints: 1 checked, the ledger extends every one" in capsys.readouterr().out
        _rechain(state.engine, _edit(_rows(state.engine)))
        assert main(["--config", str(config), "ledger", "verify", "--checkpoints"]) == 1
        out = capsys.readouterr().out
        assert "ledger: 5 entries, chain intact" in out and "ledger entry 3 has hash" in out and "1 problem(s)" in out
    finally:
        connections.forget()


def test_checkpoints_to_an_object_lock_bucket_and_evidence_verify_of_s3(
    catalog, state, locked_s3_store, s3_conn_id, capsys
):
    from lifecycle.catalog.models import System

    store = locked_s3_store
    store.client.put_object_lock_configuration(
        Bucket=store.bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 3650}},
        },
    )
    catalog.systems = {"evidence": System(type="s3", conn_id=s3_conn_id, bucket=store.bucket)}
    catalog.model.evidence = Evidence(checkpoints=Reports(system="evidence", prefix="ledger/"))
    for n in range(3):
        state.ledger.append("test.event", {"n": n}, run_id="r1")
    where = checkpoints.publish(catalog, state.ledger, time="2026-06-01T00:00:00+00:00", dag_id="d", run_id="r1")
    assert where == f"s3://{store.bucket}/ledger/checkpoints/000000000003.json"
    head = store.client.head_object(Bucket=store.bucket, Key="ledger/checkpoints/000000000003.json")
    assert head["ObjectLockMode"] == "COMPLIANCE"  # the bucket's default retention holds it
    assert checkpoints.check(catalog, state.ledger, reports.public_keys(catalog)) == (1, [])
    assert main(["evidence", "verify", where, "--conn-id", s3_conn_id]) == 0  # keys found above it in the bucket
    out = capsys.readouterr().out
    assert "ledger.checkpoint" in out and f"s3://{store.bucket}/ledger/public-keys.json" in out


def test_a_batch_certified_in_two_runs_keeps_everyone_under_one_signed_root(catalog, state, keys):
    certificates = Certificates(catalog, state)
    first = certificates._write("B", {str(n): _leaf(n) for n in range(3)}, "run-1")
    again = certificates._write("B", {str(n): _leaf(n) for n in range(3)}, "run-1")  # a rerun: the same root
    second = certificates._write("B", {str(n): _leaf(n) for n in range(3, 5)}, "run-2")
    assert first == again and second["root"] == merkle.root([_leaf(n) for n in range(5)])
    for n in range(5):
        document = certificates.person("B", _leaf(n)["subject"])
        assert attestations.check(json.dumps(document).encode(), keys).ok
    recorded = [e.payload["root"] for e in state.ledger.entries(kind="erasure.certificates")]
    assert recorded == [first["root"], second["root"]]
