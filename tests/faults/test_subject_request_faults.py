"""subject_request (access) under faults: S3 answering 503 SlowDown on the package's upload,
briefly or for longer, and the SMTP server's 421 on the link's mail.  After the retry the
person has one package (one version in the bucket) and one mail, and the ledger verifies."""

from __future__ import annotations

import pytest

from lifecycle import connections
from lifecycle.rights import SubjectRights
from tests.faults.conftest import S3_BACKENDS, backend_of, outcome_of, record, with_retries
from tests.rights.conftest import rights_world  # noqa: F401  (the fixture)
from tests.rights.test_access import RUN, _exports, _person, _request
from tests.support.faults import SmtpFaults
from tests.support.s3 import aws_connection

CHECKED = "package versions in the bucket (boto3 listing), mails at the sink, the ledger"


@pytest.fixture
def faulty_rights(rights_world, s3_endpoint, proxies, connect, monkeypatch):  # noqa: F811
    """The rights world with its buckets behind an S3 proxy and the sink's fault hook."""
    world = rights_world
    proxy = proxies(int(s3_endpoint.rsplit(":", 1)[1]), "http")
    for conn_id in {s.conn_id for s in world.config.catalog.systems.values() if s.type == "s3"}:
        connect(conn_id, aws_connection(f"http://127.0.0.1:{proxy.port}"))
    connections.forget()
    faults = SmtpFaults()
    world.sink.faults = faults
    return world, proxy, faults


def _answer(world):
    uid = _person()
    request_id = _request(world, SubjectRights(world.config, world.state), uid)
    done = []
    tally = with_retries(
        [("answer", lambda: done.append(SubjectRights(world.config, world.state).answer(request_id, RUN, world.as_of)))]
    )
    return tally, done[-1]


def _check(world, done) -> None:
    assert done["state"] == "done"
    key = done["result"]["package_key"]
    assert len([v for v in _exports(world) if v["Key"] == key]) == 1, "one package uploaded"
    assert len(world.sink.messages) == 1, "one mail"
    assert world.state.ledger.verify().ok


@pytest.mark.parametrize("backend_url", S3_BACKENDS, indirect=True)
@pytest.mark.parametrize("times, outcome", [(2, "absorbed"), (12, "fails")])
def test_s3_slowdown_on_the_upload_waits_or_fails_retryably_and_one_package_goes_up(faulty_rights, times, outcome):
    world, proxy, _ = faulty_rights
    proxy.http_error(503, "SlowDown", times=times, match="PUT ")
    tally, done = _answer(world)
    assert proxy.counts["injected"] == times
    assert bool(tally.failures) == (outcome == "fails"), tally.failures
    _check(world, done)
    fault = f"S3 503 SlowDown ×{times} on uploads"
    record("subject_request", fault, backend_of(world.app), outcome_of(tally), 1 + len(tally.failures), CHECKED)


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_421_on_the_links_mail_waits_and_one_mail_goes(faulty_rights):
    world, _, _ = faulty_rights
    faults_left = {"n": 1}

    def once(stage, address):
        if stage == "MAIL" and faults_left["n"]:
            faults_left["n"] -= 1
            return "421 4.7.0 closing connection, try again later"
        return None

    world.sink.faults = once
    tally, done = _answer(world)
    assert tally.failures == [] and faults_left["n"] == 0
    _check(world, done)
    record("subject_request", "SMTP 421 on the mail", backend_of(world.app), "waits, succeeds", 1, CHECKED)
