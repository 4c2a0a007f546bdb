"""A local SMTP sink that keeps every mail it receives.

A real SMTP server (aiosmtpd) for the demo and the tests: nothing is relayed,
every message is kept

* in memory, as :class:`ReceivedMessage` (an ``email.message.EmailMessage``
  parsed with ``email.policy.default``, plus the SMTP envelope in
  ``envelope_from`` / ``envelope_to``), in the order received, and
* when a folder is given, as ``<folder>/<UTC timestamp>-<n>.eml``: the message
  exactly as received, preceded by two trace headers ``X-Envelope-From`` and
  ``X-Envelope-To`` (the envelope is the only record of Bcc recipients).
  Files are written atomically (temp file + rename), so a reader never sees a
  half-written mail.

In-process (tests)::

    with MailSink() as sink:                # port=0: a free port is picked
        smtplib.SMTP("127.0.0.1", sink.port).send_message(msg)
        [got] = sink.wait_for(1, timeout=5)

Standalone (``make demo`` / ``make up`` through ``lifecycle.devenv``)::

    python -m lifecycle.mailsink --port 1025 --folder var/mail

No TLS and no AUTH: the sink listens on loopback only by default.
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import email.policy
import itertools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)

#: Larger than aiosmtpd's 32 MiB default: regulator reports may carry attachments.
DATA_SIZE_LIMIT = 64 * 1024 * 1024


class ReceivedMessage(EmailMessage):
    """An ``EmailMessage`` as the sink received it, with its SMTP envelope."""

    envelope_from: str = ""
    envelope_to: list[str] = []  # noqa: RUF012  (set per instance by the sink)
    #: Where the .eml was written (None when the sink has no folder).
    path: Path | None = None
    #: Arrival time (UTC).
    received_at: datetime | None = None
    #: Sequence number in this sink, from 1.
    seq: int = 0

    @property
    def text(self) -> str:
        """The plain-text body (or the HTML body if there is no text part)."""
        part = self.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part is not None else ""


_PARSER = email.parser.BytesParser(_class=ReceivedMessage, policy=email.policy.default)


class _Handler:
    """aiosmtpd handler: parse, store, write, notify."""

    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses) -> list[str]:
        """aiosmtpd's EHLO reply, offering PIPELINING as relays do: aiosmtpd reads a client's
        commands in order from what it has buffered, so a pipelined envelope (RFC 2920) works."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    def _fault(self, server, stage: str, address: str) -> str | None:
        """The fault hook's reply for this command, if any; after a ``421`` the connection is closed."""
        reply = self.sink.faults(stage, address) if self.sink.faults else None
        if reply and reply.startswith("421"):
            asyncio.get_running_loop().call_soon(server.transport.close)  # once the reply is written
        return reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options) -> str:
        fault = self._fault(server, "MAIL", address)
        if fault:
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        refusal = self._fault(server, "RCPT", address)
        refusal = refusal or (self.sink.rcpt_policy(address) if self.sink.rcpt_policy else None)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        fault = self._fault(server, "DATA", ",".join(envelope.rcpt_tos))
        if fault:
            return fault
        raw: bytes = envelope.original_content or envelope.content
        if isinstance(raw, str):  # only with decode_data=True, which we do not use
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            self.sink._store(raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        except Exception:  # never lose the connection over a bad message
            log.exception("mail sink: could not store a message")
            return "451 Requested action aborted: error in processing"
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's threaded Controller, made to work with ``port=0``.

    ``Controller.start`` connects to ``(hostname, port)`` once the server is
    bound, which fails for port 0; learn the real port from the bound socket
    first.
    """

    def _trigger_server(self):
        if not self.port and self.server is not None and self.server.sockets:
            self.port = self.server.sockets[0].getsockname()[1]
        return super()._trigger_server()


class MailSink:
    """An SMTP server on ``hostname:port`` that keeps every message.

    ``port=0`` picks a free port (read it back from ``.port`` once started).
    ``folder``: write each message there as ``<timestamp>-<n>.eml``.
    ``keep=False``: do not keep messages in memory (long-running standalone
    sink that only writes files); ``wait_for`` still counts them.
    ``rcpt_policy``: called with each RCPT TO address; a reply it returns
    (``"450 4.2.1 try later"``, ``"550 5.1.1 no such user"``) refuses that
    recipient, ``None`` accepts it (tests of temporary and permanent refusals).
    ``faults``: called as ``faults(stage, address)`` at ``MAIL`` (the sender), ``RCPT`` (the
    recipient) and ``DATA`` (after the content; the recipients, comma-separated); a reply it
    returns answers that command instead (``"421 …"`` then closes the connection, as a server
    going away does; a refused ``DATA`` keeps nothing).  Fault tests and benchmarks
    (``tests/support/faults.SmtpFaults``).
    """

    def __init__(
        self,
        hostname: str = "127.0.0.1",
        port: int = 0,
        folder: str | os.PathLike | None = None,
        *,
        keep: bool = True,
        ready_timeout: float = 10.0,
        rcpt_policy: Callable[[str], str | None] | None = None,
        faults: Callable[[str, str], str | None] | None = None,
    ) -> None:
        self.hostname = hostname
        self.rcpt_policy, self.faults = rcpt_policy, faults
        self._requested_port = int(port)
        self.folder = Path(folder) if folder is not None else None
        self.keep = keep
        self.ready_timeout = ready_timeout
        self._messages: list[ReceivedMessage] = []
        self._count = 0
        self._seq = itertools.count(1)
        self._cond = threading.Condition()
        self._controller: _Controller | None = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> MailSink:
        if self._controller is not None:
            raise RuntimeError("mail sink already started")
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        # aiosmtpd logs every SMTP command at INFO; a sink needs only its problems
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        controller = _Controller(
            _Handler(self),
            hostname=self.hostname,
            port=self._requested_port,
            ready_timeout=self.ready_timeout,
            # a fixed name: aiosmtpd would otherwise call getfqdn() (a DNS lookup)
            server_hostname="mailsink.localhost",
            ident="lifecycle mail sink",
            data_size_limit=DATA_SIZE_LIMIT,
            enable_SMTPUTF8=True,
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on (the picked one when started with 0)."""
        if self._controller is not None:
            return self._controller.port
        return self._requested_port

    @property
    def running(self) -> bool:
        return self._controller is not None

    # -- received mail -------------------------------------------------------
    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of the messages received so far, oldest first."""
        with self._cond:
            return list(self._messages)

    @property
    def count(self) -> int:
        """How many messages were received (also when ``keep=False``)."""
        with self._cond:
            return self._count

    def clear(self) -> None:
        """Forget the in-memory messages (files stay)."""
        with self._cond:
            self._messages.clear()
            self._count = 0

    def wait_for(self, n: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Block until at least ``n`` messages arrived; return the snapshot.

        Raises ``TimeoutError`` naming how many did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._count < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"mail sink: expected {n} message(s) within {timeout}s, got {self._count}")
                self._cond.wait(left)
            return list(self._messages)

    def _store(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> None:
        now = datetime.now(UTC)
        with self._cond:
            seq = next(self._seq)
        path = self._write(raw, mail_from, rcpt_tos, now, seq) if self.folder is not None else None
        msg = None
        if self.keep:  # parsed only to be kept: a sink that writes files or counts is as cheap as a relay
            # parse with Python's own line endings (as BytesParser.parse of a file does)
            msg = _PARSER.parsebytes(raw.replace(b"\r\n", b"\n"))
            msg.envelope_from = mail_from
            msg.envelope_to = rcpt_tos
            msg.received_at, msg.seq, msg.path = now, seq, path
        with self._cond:
            if msg is not None:
                self._messages.append(msg)
            self._count += 1
            self._cond.notify_all()

    def _write(self, raw: bytes, mail_from: str, rcpt_tos: list[str], now: datetime, seq: int) -> Path:
        assert self.folder is not None
        name = f"{now:%Y%m%dT%H%M%S}.{now.microsecond:06d}Z-{seq:06d}.eml"
        path = self.folder / name
        trace = (
            f"X-Envelope-From: <{mail_from}>\r\nX-Envelope-To: {', '.join(f'<{r}>' for r in rcpt_tos)}\r\n"
        ).encode()
        tmp = path.with_name(f".{name}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(trace)
            fh.write(raw)
        os.replace(tmp, path)
        return path


def read_eml(path: str | os.PathLike) -> ReceivedMessage:
    """Parse a .eml written by the sink (envelope from the trace headers)."""
    with open(path, "rb") as fh:
        msg = _PARSER.parse(fh)
    msg.envelope_from = (msg.get("X-Envelope-From") or "").strip().strip("<>")
    msg.envelope_to = [r.strip().strip("<>") for r in (msg.get("X-Envelope-To") or "").split(",") if r.strip()]
    msg.path = Path(path)
    return msg


# -- standalone process -------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lifecycle.mailsink",
        description="Local SMTP sink: accepts every mail, relays nothing, writes each as <folder>/<timestamp>-<n>.eml.",
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=1025, help="port (default 1025; 0 = any free)")
    ap.add_argument("--folder", default="var/mail", help="where .eml files go (default var/mail)")
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per session
    stop = threading.Event()

    def _on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    sink = MailSink(args.host, args.port, args.folder, keep=False)
    sink.start()
    print(
        f"mail sink listening on {args.host}:{sink.port}, writing to {Path(args.folder).resolve()}",
        flush=True,
    )
    try:
        last = 0
        while not stop.wait(1.0):
            n = sink.count
            if n != last:
                log.info("%d message(s) received so far", n)
                last = n
    finally:
        sink.stop()
        print(f"mail sink stopped after {sink.count} message(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
