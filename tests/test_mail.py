"""The one way notices go out (``mail.send_claimed`` over ``mail.Mailer`` and a claim table), against a real SMTP sink."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import pytest
import sqlalchemy as sa

from lifecycle.mail import Mailer, Notice, claim_group, send_claimed
from lifecycle.mailsink import MailSink
from lifecycle.state.claims import Claims
from lifecycle.state.schema import deliveries, metadata

PEOPLE = [f"p{n:02d}" for n in range(1, 13)]


def _claims(engine) -> Claims:
    """One notice's claim rows; a person without an address is recorded ``no_address``."""
    return Claims(engine, "notice:test", "run", no_address="no_address")


@pytest.fixture
def sink(monkeypatch):
    with MailSink(rcpt_policy=lambda to: "550 5.1.1 no such user" if to.startswith("p07@") else None) as server:
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


def _send(engine, people, mailer_cls=Mailer, rate=10_000):
    with mailer_cls("smtp_default", "privacy@example.com", rate) as mailer:

        def prepare(subject):
            if subject == "p03":  # no address
                return None
            return mailer.compose(
                f"{subject}@example.com", Notice(f"Hello {subject}", "text", "en"), key=f"test:{subject}"
            )

        return send_claimed(mailer, people, _claims(engine), prepare=prepare)


def _rows(engine):
    with engine.connect() as conn:
        return {r.subject_id: r for r in conn.execute(sa.select(deliveries))}


def test_every_person_is_claimed_then_mailed_once_with_outcomes_recorded(tmp_path, sink):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'claims.db'}")
    metadata.create_all(engine, tables=[deliveries])
    counts = _send(engine, PEOPLE)
    assert counts == {"sent": 10, "undeliverable": 1, "no_address": 1}
    rows = _rows(engine)
    assert rows["p07"].status == "undeliverable" and rows["p07"].code == 550
    assert rows["p03"].status == "no_address"
    assert {r.status for s, r in rows.items() if s not in ("p03", "p07")} == {"sent"}
    received = {m["Message-ID"]: m["To"] for m in sink.messages}
    assert received == {r.message_id: f"{s}@example.com" for s, r in rows.items() if r.status == "sent"}
    assert _send(engine, PEOPLE) == {"taken": 12}, "a claimed person is never mailed again"
    assert len(sink.messages) == 10


def _killed_after(engine_url: str, people: list[str], mails: int, rate: float) -> None:
    """A worker that dies (SIGKILL: no cleanup) right after the server accepted mail ``mails``."""
    accepted = []

    class DiesMidway(Mailer):
        def transmit(self, composed):
            message_id = super().transmit(composed)
            accepted.append(message_id)
            if len(accepted) == mails:
                os.kill(os.getpid(), signal.SIGKILL)
            return message_id

    _send(sa.create_engine(engine_url), people, DiesMidway, rate)


@pytest.mark.parametrize(("rate", "group"), [(50, 1), (10_000, 16)], ids=["one claim a commit", "groups of 16"])
def test_a_worker_killed_while_sending_leaves_at_most_two_groups_of_claims_open_and_mails_nobody_twice(
    tmp_path, sink, rate, group
):
    people = [f"p{n:02d}" for n in range(1, 41)]
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    engine = sa.create_engine(url)
    metadata.create_all(engine, tables=[deliveries])
    with Mailer("smtp_default", "privacy@example.com", rate) as mailer:
        assert claim_group(mailer) == group
    worker = multiprocessing.get_context("fork").Process(target=_killed_after, args=(url, people, 20, rate))
    worker.start()
    worker.join(60)
    assert worker.exitcode == -signal.SIGKILL
    rows = _rows(engine)
    open_claims = {s for s, r in rows.items() if r.status == "sending"}
    assert 1 <= len(open_claims) <= 2 * group, "the group on the wire, and perhaps the next group's claims"
    received = [m["Message-ID"] for m in sink.messages]
    assert len(received) == 20
    assert set(received) <= {r.message_id for r in rows.values()}, "no mail went out without its claim"

    _send(engine, [p for p in people if p not in rows])  # the rerun: open claims are not sent again
    to = [m["To"] for m in sink.messages]
    assert len(to) == len(set(to)), "nobody mailed twice"
    unsent = {s for s in people if f"{s}@example.com" not in to} - {"p03", "p07"}
    assert unsent <= open_claims and len(unsent) <= 2 * group - 1, "only claims made before their mails went out"


def test_the_rate_spaces_the_starts_of_mails(tmp_path, sink):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'claims.db'}")
    metadata.create_all(engine, tables=[deliveries])
    started = time.monotonic()
    _send(engine, PEOPLE[:6], rate=20)  # five mails (p03 has no address): four gaps of 50 ms at least
    assert time.monotonic() - started >= 4 * 0.05


def test_attachments_follow_the_text_and_its_html_alternative_byte_for_byte(sink):
    from lifecycle.mail import Attachment

    pdf = Attachment("incident-INC-1.pdf", "application/pdf", b"%PDF-1.4\n" + bytes(range(256)) * 40)
    data = Attachment("incident-INC-1.json", "application/json", '{"report": "事件"}'.encode())
    with Mailer("smtp_default", "privacy@example.com", 10_000) as mailer:
        for html in (None, "<p>Report attached</p>"):
            composed = mailer.compose(
                "reports@authority.example",
                Notice("Report", "Report attached", "en", html),
                key="regulator:INC-1:eu",
                attachments=[pdf, data],
            )
            assert mailer.deliver(composed).status == "sent"
    for message, html in zip(sink.wait_for(2, timeout=10), (None, "<p>Report attached</p>")):
        assert message.get_content_type() == "multipart/mixed"
        assert message.get_body(preferencelist=("plain",)).get_content().strip() == "Report attached"
        body = message.get_body(preferencelist=("html",))
        assert (body.get_content().strip() if body is not None and html else None) == html
        files = {part.get_filename(): part for part in message.iter_attachments()}
        assert set(files) == {"incident-INC-1.pdf", "incident-INC-1.json"}
        assert files["incident-INC-1.pdf"].get_content_type() == "application/pdf"
        assert files["incident-INC-1.pdf"].get_payload(decode=True) == pdf.data
        assert files["incident-INC-1.json"].get_payload(decode=True) == data.data
