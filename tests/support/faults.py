"""Faults on the wire for the tests: a TCP proxy on loopback in front of a server, and SMTP replies.

``FaultProxy(port)`` listens on a free loopback port and forwards each
connection to ``127.0.0.1:<port>`` (PostgreSQL, MariaDB, the SMTP sink, moto's
S3 server).  Faults are armed while it runs, from the test's thread:

* ``reset_after_bytes(n)``: the next connection that carries ``n`` bytes
  from the client is reset (RST) before the rest goes on;
* ``reset_after_statements(n)``: the ``n``-th statement from now (a
  PostgreSQL ``Query``/``Execute`` message, a MariaDB ``COM_QUERY``/
  ``COM_STMT_EXECUTE`` packet, an HTTP request) resets its connection
  instead of reaching the server;
* ``refuse_for(t)``: the port is closed for ``t`` seconds (connections are
  refused, as while a server restarts), then opened again;
* ``delay(t)``: every chunk waits ``t`` seconds each way;
* ``http_error(status, code, times=)``: the next ``times`` HTTP requests
  are answered by the proxy itself with an S3 error document (``503
  SlowDown``, ``500 InternalError``, ``403 AccessDenied``), never reaching
  the server; ``match`` limits it to requests whose first line contains it.

The proxy is bounded: it stops by itself after ``lifetime`` seconds or once
``max_bytes`` have passed, whichever comes first, and always on ``stop()``
(a context manager).  Counters (``connections``, ``statements``,
``resets``, ``refused``, ``injected``) say what happened, for the test to
check the fault did fire.

``SmtpFaults`` is a fault hook for ``lifecycle.mailsink.MailSink(faults=)``:
``421`` to every ``close_every``-th message (the sink then closes the
connection, as a server going away does), ``451`` greylisting for chosen
recipients until their ``greylist_tries``-th attempt.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a server or a middlebox dropping a connection does
    (``shutdown`` first: a thread waiting in ``recv`` would keep the socket open otherwise)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _close_listener(listener: socket.socket | None) -> None:
    """Stop listening at once (``shutdown`` first: a thread waiting in ``accept`` keeps the socket
    open otherwise, and connections would still be taken)."""
    if listener is None:
        return
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()


class _Framer:
    """Splits what a client sends into the protocol's units; says which are statements."""

    def __init__(self, protocol: str):
        self.protocol, self.buf, self.started = protocol, b"", False
        self.body_left, self.expect_continue = 0, False  # HTTP: the body still to come of the last head

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """The complete units in ``data`` (what is left waits for more), each with whether it is a statement."""
        self.buf += data
        units = []
        while (unit := self._next()) is not None:
            units.append(unit)
        return units

    def _next(self) -> tuple[bytes, bool] | None:
        buf = self.buf
        if self.protocol == "postgresql":
            if not self.started:  # untyped: SSLRequest / GSSENCRequest, then the StartupMessage
                if len(buf) < 8:
                    return None
                size, code = struct.unpack("!ii", buf[:8])
                self.started = code == 196608
                return self._cut(size, False)
            if len(buf) < 5:
                return None
            return self._cut(1 + struct.unpack("!i", buf[1:5])[0], buf[:1] in (b"Q", b"E"))
        if self.protocol == "mysql":
            if len(buf) < 5:
                return None
            size = int.from_bytes(buf[:3], "little") + 4
            return self._cut(size, buf[3] == 0 and buf[4] in (0x03, 0x17))
        if self.protocol == "http":
            if self.body_left:  # the body of the request whose head went last: passed on as it comes
                unit, self.buf = buf[: self.body_left], buf[self.body_left :]
                self.body_left -= len(unit)
                return (unit, False) if unit else None
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                return None
            head = buf[:head_end].decode("latin-1").lower()
            length = next(
                (int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.startswith("content-length:")), 0
            )
            self.expect_continue = "\r\nexpect: 100-continue" in head
            unit = self._cut(head_end + 4, True)
            self.body_left = length
            return unit
        unit, self.buf = buf, b""  # anything else: no framing, no statements
        return (unit, False) if unit else None

    def _cut(self, size: int, statement: bool) -> tuple[bytes, bool] | None:
        if len(self.buf) < size:
            return None
        unit, self.buf = self.buf[:size], self.buf[size:]
        return unit, statement


S3_ERRORS = {503: "Please reduce your request rate.", 500: "We encountered an internal error. Please try again."}


def s3_error(status: int, code: str) -> bytes:
    """An S3 error response as the service sends it."""
    message = S3_ERRORS.get(status, "Access Denied")
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>FAULT</RequestId></Error>"
    ).encode()
    reason = {503: "Slow Down", 500: "Internal Server Error", 403: "Forbidden"}.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
        "x-amz-request-id: FAULT\r\n\r\n"
    )
    return head.encode() + body


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``127.0.0.1:<target_port>``; see the module's doc."""

    def __init__(
        self,
        target_port: int,
        protocol: str = "tcp",
        *,
        target_host: str = "127.0.0.1",
        lifetime: float = 120.0,
        max_bytes: int = 256 * 1024 * 1024,
    ):
        if protocol not in ("tcp", "postgresql", "mysql", "http"):
            raise ValueError(f"protocol {protocol!r}: one of tcp, postgresql, mysql, http")
        self.target = (target_host, target_port)
        self.protocol, self.lifetime, self.max_bytes = protocol, lifetime, max_bytes
        self.port = 0
        self.counts: Counter = Counter()  # connections, statements, resets, refused, injected, bytes
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._reset_bytes: int | None = None
        self._reset_statement: int | None = None
        self._refuse_until = 0.0
        self._delay = 0.0
        self._errors: list[tuple[int, str, str | None]] = []

    # -- faults ---------------------------------------------------------------------
    def reset_after_bytes(self, n: int) -> None:
        with self._lock:
            self._reset_bytes = n

    def reset_after_statements(self, n: int) -> None:
        """The ``n``-th statement from now (1: the next) resets its connection instead of running."""
        with self._lock:
            self._reset_statement = self.counts["statements"] + n

    def refuse_for(self, seconds: float) -> None:
        with self._lock:
            self._refuse_until = time.monotonic() + seconds
            listener, self._listener = self._listener, None
        for conn in list(self._sockets):  # a restarting server drops what it had, too
            _reset(conn)
        _close_listener(listener)

    def delay(self, seconds: float) -> None:
        with self._lock:
            self._delay = seconds

    def http_error(self, status: int, code: str, *, times: int = 1, match: str | None = None) -> None:
        with self._lock:
            self._errors += [(status, code, match)] * times

    def clear(self) -> None:
        """No fault armed any more (the counters stay)."""
        with self._lock:
            self._reset_bytes = self._reset_statement = None
            self._refuse_until, self._delay, self._errors = 0.0, 0.0, []

    # -- running ----------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._started = time.monotonic()
        threading.Thread(target=self._accept_loop, name=f"fault-proxy-{self.port}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            listener, self._listener = self._listener, None
        _close_listener(listener)
        for conn in list(self._sockets):
            _reset(conn)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.settimeout(0.05)
        return listener

    def _over(self) -> bool:
        return (
            self._stopped.is_set()
            or time.monotonic() - self._started > self.lifetime
            or self.counts["bytes"] > self.max_bytes
        )

    def _accept_loop(self) -> None:
        while not self._over():
            with self._lock:
                listener, refusing = self._listener, time.monotonic() < self._refuse_until
            if listener is None:
                if refusing:  # the port is closed: the kernel refuses connections
                    time.sleep(0.02)
                    continue
                with self._lock:
                    self._listener = listener = self._listen(self.port)
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                continue
            self.counts["connections"] += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()
        self.stop()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            _reset(client)
            return
        client.settimeout(None)
        upstream.settimeout(None)
        self._sockets |= {client, upstream}
        pair = _Pair(self, client, upstream)
        threading.Thread(target=pair.down, daemon=True).start()
        pair.up()

    # decisions, under the lock
    def _decide(self, unit: bytes, statement: bool, sent: int) -> tuple[str, bytes | None]:
        """What to do with one unit from the client: ``pass``, ``reset`` or ``answer`` (with the bytes)."""
        with self._lock:
            self.counts["bytes"] += len(unit)
            if self._reset_bytes is not None and sent + len(unit) >= self._reset_bytes:
                self._reset_bytes = None
                self.counts["resets"] += 1
                return "reset", None
            if not statement:
                return "pass", None
            self.counts["statements"] += 1
            if self._reset_statement is not None and self.counts["statements"] >= self._reset_statement:
                self._reset_statement = None
                self.counts["resets"] += 1
                return "reset", None
            if self._errors:
                first = unit.split(b"\r\n", 1)[0].decode("latin-1")
                for n, (status, code, match) in enumerate(self._errors):
                    if match is None or match in first:
                        del self._errors[n]
                        self.counts["injected"] += 1
                        return "answer", s3_error(status, code)
            return "pass", None


@dataclass
class _Pair:
    """One proxied connection: the client's bytes up (framed, faults applied), the server's down."""

    proxy: FaultProxy
    client: socket.socket
    upstream: socket.socket
    sent: int = 0
    answered: bool = False  # the last request was answered by the proxy
    framer: _Framer = field(init=False)

    def __post_init__(self):
        self.framer = _Framer(self.proxy.protocol)

    def _close(self) -> None:
        _reset(self.client)
        _reset(self.upstream)
        self.proxy._sockets -= {self.client, self.upstream}

    def up(self) -> None:
        try:
            while not self.proxy._over() and (data := self.client.recv(CHUNK)):
                for unit, statement in self.framer.feed(data):
                    if self.answered and not statement:
                        continue  # the body of a request the proxy answered itself
                    action, answer = self.proxy._decide(unit, statement, self.sent)
                    if action == "reset":
                        return
                    self.answered = action == "answer"
                    if self.answered:
                        if self.framer.expect_continue:  # answered before the body: the client keeps it
                            self.framer.body_left = 0
                        self.client.sendall(answer)
                        continue
                    if self.proxy._delay:
                        time.sleep(self.proxy._delay)
                    self.upstream.sendall(unit)
                    self.sent += len(unit)
        except OSError:
            pass
        finally:
            self._close()

    def down(self) -> None:
        try:
            while not self.proxy._over() and (data := self.upstream.recv(CHUNK)):
                if self.proxy._delay:
                    time.sleep(self.proxy._delay)
                self.client.sendall(data)
        except OSError:
            pass
        finally:
            self._close()


class SmtpFaults:
    """A ``MailSink(faults=)`` hook: ``421`` (then the connection closed) to every ``close_every``-th
    message; ``451`` greylisting for the recipients ``greylisted(address)`` names until their
    ``greylist_tries``-th attempt.  Thread-safe; counts what it did in ``closed`` and ``greylisted``."""

    def __init__(
        self,
        close_every: int | None = None,
        greylisted: Callable[[str], bool] = lambda address: False,
        greylist_tries: int = 2,
    ):
        self.close_every, self.is_grey, self.tries = close_every, greylisted, greylist_tries
        self._lock = threading.Lock()
        self.messages = 0
        self.closed = 0
        self.greylisted = 0
        self.attempts: Counter = Counter()

    def __call__(self, stage: str, address: str) -> str | None:
        with self._lock:
            if stage == "MAIL":
                self.messages += 1
                if self.close_every and self.messages % self.close_every == 0:
                    self.closed += 1
                    return "421 4.7.0 mailsink.localhost closing connection, try again later"
            elif stage == "RCPT" and self.is_grey(address):
                self.attempts[address] += 1
                if self.attempts[address] < self.tries:
                    self.greylisted += 1
                    return "451 4.7.1 greylisted, try again later"
        return None
