"""The local SMTP sink: a real SMTP server that keeps every mail."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest

from lifecycle.mailsink import MailSink, read_eml


def _message(i: int, subject: str, body: str, to: str = "alice@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "MIC Privacy <privacy@mic.example>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<test-{i}@mic.example>"
    msg.set_content(body)
    return msg


SUBJECTS = [
    "Plain subject",
    "Sécurité des données — avis d'incident",
    "个人信息安全事件告知",
]
BODIES = [
    "Hello,\nthis is the first message.\n",
    "Bonjour,\nvoici le deuxième message.\n",
    "您好：\n我们发现了一起个人信息安全事件，特此告知。\n此致\n",
]


def test_keeps_three_messages_in_order_and_writes_eml(tmp_path):
    folder = tmp_path / "mail"
    with MailSink(folder=folder) as sink:
        assert sink.port > 0
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:  # one connection
            for i, (subject, body) in enumerate(zip(SUBJECTS, BODIES)):
                smtp.send_message(
                    _message(i, subject, body),
                    from_addr="bounce@mic.example",
                    to_addrs=["alice@example.com", f"bcc{i}@example.com"],
                )
        got = sink.wait_for(3, timeout=10)

    assert [m["Subject"] for m in got] == SUBJECTS
    assert [m.text for m in got] == BODIES
    assert [m["Message-ID"] for m in got] == [f"<test-{i}@mic.example>" for i in range(3)]
    assert [m.seq for m in got] == [1, 2, 3]
    for i, m in enumerate(got):
        assert m.envelope_from == "bounce@mic.example"
        assert m.envelope_to == ["alice@example.com", f"bcc{i}@example.com"]

    files = sorted(folder.glob("*.eml"))
    assert [f.name for f in files] == [m.path.name for m in got]  # names sort in arrival order
    assert not list(folder.glob(".*.tmp"))
    for f, m in zip(files, got):
        assert f.name.endswith(f"-{m.seq:06d}.eml")
        again = read_eml(f)
        assert again["Subject"] == m["Subject"]
        assert again.text == m.text
        assert again.envelope_from == m.envelope_from
        assert again.envelope_to == m.envelope_to
    assert "个人信息安全事件" in read_eml(files[2]).text


def test_port_zero_picks_distinct_free_ports_and_releases_them():
    with MailSink() as a, MailSink() as b:
        assert a.port and b.port and a.port != b.port
        port = a.port
    # stopped: nothing listens any more
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_wait_for_times_out_with_a_count():
    with MailSink() as sink, pytest.raises(TimeoutError, match="expected 1 message"):
        sink.wait_for(1, timeout=0.2)


def test_memory_only_without_folder_and_smtputf8_addresses():
    with MailSink() as sink:
        msg = _message(0, "UTF-8 address", "body\n", to="用户@例子.example")
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
            smtp.send_message(msg)  # smtplib uses SMTPUTF8 for the non-ASCII address
        [got] = sink.wait_for(1, timeout=10)
    assert got.path is None
    assert got.envelope_to == ["用户@例子.example"]
    assert got["To"] == "用户@例子.example"


def test_standalone_process_writes_files(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path / "mail"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lifecycle.mailsink", "--port", str(port), "--folder", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        while not lines or "listening on" not in lines[-1]:
            lines.append(proc.stdout.readline())
            assert lines[-1], "".join(lines)  # EOF: the sink died
        assert f"listening on 127.0.0.1:{port}" in lines[-1], lines
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(_message(0, SUBJECTS[2], BODIES[2]))
        deadline = time.monotonic() + 10
        while not list(folder.glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.05)
        [eml] = folder.glob("*.eml")
        assert read_eml(eml)["Subject"] == SUBJECTS[2]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "stopped after 1 message(s)" in out
