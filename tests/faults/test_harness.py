"""The fault harness itself: each fault fires where it is armed, and the proxy stops by itself."""

from __future__ import annotations

import smtplib
import socket
import time

import boto3
import pytest
import sqlalchemy as sa
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from lifecycle.mailsink import MailSink
from tests.support.faults import FaultProxy, SmtpFaults


@pytest.mark.parametrize("backend_url", ["postgresql", "mariadb"], indirect=True)
def test_the_nth_statement_resets_its_connection_and_the_others_pass(engine, db_proxy):
    proxy, url = db_proxy
    through = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with through.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        proxy.reset_after_statements(2)
        assert conn.execute(sa.text("SELECT 2")).scalar() == 2
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(sa.text("SELECT 3"))
    with through.connect() as conn:  # a new connection works again
        assert conn.execute(sa.text("SELECT 4")).scalar() == 4
    assert proxy.counts["resets"] == 1 and proxy.counts["statements"] >= 3


@pytest.mark.parametrize("backend_url", ["postgresql"], indirect=True)
def test_a_refused_port_opens_again_after_its_time(engine, db_proxy):
    proxy, _ = db_proxy
    proxy.refuse_for(0.5)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1)
    time.sleep(0.7)
    socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()


def test_s3_errors_are_answered_by_the_proxy_and_the_rest_reaches_the_server(s3_endpoint, proxies):
    proxy = proxies(int(s3_endpoint.rsplit(":", 1)[1]), "http")
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{proxy.port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=BotoConfig(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    client.create_bucket(Bucket="bkt-harness")
    proxy.http_error(503, "SlowDown", match="PUT")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket="bkt-harness", Key="a", Body=b"x")
    assert refused.value.response["Error"]["Code"] == "SlowDown"
    client.put_object(Bucket="bkt-harness", Key="a", Body=b"x")
    assert [v["Key"] for v in client.list_object_versions(Bucket="bkt-harness")["Versions"]] == ["a"]
    assert proxy.counts["injected"] == 1


def test_the_proxy_stops_by_itself_after_its_lifetime():
    with MailSink() as sink, FaultProxy(sink.port, lifetime=0.3) as proxy:
        smtplib.SMTP("127.0.0.1", proxy.port, timeout=5).quit()
        time.sleep(0.6)
        with pytest.raises(OSError):
            smtplib.SMTP("127.0.0.1", proxy.port, timeout=2)


def test_a_421_closes_the_session_and_greylisting_refuses_until_the_nth_try():
    faults = SmtpFaults(close_every=2, greylisted=lambda a: a.startswith("grey"), greylist_tries=2)
    with MailSink(faults=faults) as sink:
        smtp = smtplib.SMTP("127.0.0.1", sink.port, timeout=5)
        smtp.sendmail("a@x.example", ["one@x.example"], b"Subject: 1\r\n\r\n1\r\n")
        with pytest.raises(smtplib.SMTPSenderRefused) as closed:
            smtp.sendmail("a@x.example", ["two@x.example"], b"Subject: 2\r\n\r\n2\r\n")
        assert closed.value.smtp_code == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()
        faults.close_every = None
        smtp = smtplib.SMTP("127.0.0.1", sink.port, timeout=5)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("a@x.example", ["grey@x.example"], b"Subject: 3\r\n\r\n3\r\n")
        smtp.sendmail("a@x.example", ["grey@x.example"], b"Subject: 3\r\n\r\n3\r\n")
        smtp.quit()
        assert [m.envelope_to for m in sink.wait_for(2)] == [["one@x.example"], ["grey@x.example"]]
    assert (faults.closed, faults.greylisted) == (1, 1)
