"""E-mail notices: rendered from templates in the person's locale, sent over
one SMTP connection from an Airflow ``smtp`` connection, at a bounded rate.

Templates live in ``include/templates/mail/<name>.<locale>.txt.j2``; the
first line is ``Subject: …``.  A locale falls back to its language, then to
the first configured locale.  Callers claim each notice durably before it is
sent (``lifecycle_notices`` for erasure notices, ``lifecycle_incident_deliveries``
for incident notices) under a key that also makes its Message-ID, so a rerun
never sends a notice twice.
"""

from __future__ import annotations

import base64
import functools
import smtplib
import time
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, make_msgid, parseaddr

from lifecycle import reports
from lifecycle.errors import LifecycleError, TransientError


@functools.lru_cache(maxsize=256)
def _header(value: str) -> str:
    """A header value as RFC 2047 words where it is not plain ASCII."""
    if value.isascii() and len(value) < 900:
        return value
    name, address = parseaddr(value)
    if address and "@" in address and value.strip().endswith(">"):
        return formataddr((name, address), charset="utf-8")
    return Header(value, "utf-8").encode(linesep="\r\n")


def _part(subtype: str, text: str) -> bytes:
    body = base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")
    return f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'.encode() + body


@dataclass(frozen=True)
class Notice:
    subject: str
    text: str
    locale: str
    html: str | None = None        # an HTML alternative, when the template has one


@dataclass(frozen=True)
class Composed:
    """A message ready for the wire."""

    to: str
    message_id: str
    data: bytes


@dataclass(frozen=True)
class Delivery:
    """What became of one address: ``sent``, ``undeliverable`` (5xx) or ``deferred`` (4xx after every try)."""

    status: str
    attempts: int
    message_id: str | None = None
    code: int | None = None
    reply: str | None = None


def template_locale(name: str, locale: str | None, fallback: str = "en") -> str:
    """The locale whose template exists: exact, then language, then ``fallback``."""
    candidates = [locale, (locale or "").split("-")[0], fallback]
    for candidate in candidates:
        if candidate and (reports.TEMPLATES / "mail" / f"{name}.{candidate}.txt.j2").exists():
            return candidate
    raise LifecycleError(f"no template mail/{name}.<locale>.txt.j2 for {locale!r} or {fallback!r} in {reports.TEMPLATES}")


def render_notice(template: str, locale: str | None, fallback: str = "en", **context) -> Notice:
    chosen = template_locale(template, locale, fallback)
    text = reports.render(f"mail/{template}.{chosen}.txt.j2", **context)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise LifecycleError(f"template mail/{template}.{chosen}.txt.j2 must start with a 'Subject:' line")
    html = None
    if (reports.TEMPLATES / "mail" / f"{template}.{chosen}.html.j2").exists():
        html = reports.render(f"mail/{template}.{chosen}.html.j2", subject=first.removeprefix("Subject:").strip(), **context)
    return Notice(first.removeprefix("Subject:").strip(), body.lstrip("\n"), chosen, html)


class Mailer:
    """One SMTP session for many notices (``with Mailer(...) as m: m.send(...)``)."""

    def __init__(self, conn_id: str, sender: str, max_per_second: float = 50):
        self.conn_id, self.sender = conn_id, sender
        self.interval = 1.0 / max_per_second
        self._smtp: smtplib.SMTP | None = None
        self._last = 0.0

    def __enter__(self) -> "Mailer":
        from lifecycle.connections import get_connection

        conn = get_connection(self.conn_id)
        extra = conn.extra_dejson
        use_ssl = not extra.get("disable_ssl", False)
        try:
            if use_ssl:
                self._smtp = smtplib.SMTP_SSL(conn.host, conn.port or 465, timeout=extra.get("timeout", 30))
            else:
                self._smtp = smtplib.SMTP(conn.host, conn.port or 25, timeout=extra.get("timeout", 30))
                if not extra.get("disable_tls", False):
                    self._smtp.starttls()
            if conn.login:
                self._smtp.login(conn.login, conn.password or "")
        except OSError as exc:
            raise TransientError(f"SMTP connection {self.conn_id!r} ({conn.host}:{conn.port}) failed: {exc}") from exc
        return self

    def __exit__(self, *exc) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except smtplib.SMTPException:
                pass

    def compose(self, to: str, notice: Notice, *, key: str) -> Composed:
        """The message as bytes for the wire; the Message-ID derives from ``key`` (the claim's key).

        Written out directly (RFC 5322 headers, MIME parts in UTF-8 and
        base64, CRLF): an order of magnitude cheaper than building it with
        ``email.message``, which matters at hundreds of mails a second.
        Needs no SMTP session, so it may run ahead of the sending.
        """
        message_id = make_msgid(idstring=key.replace(":", ".")[:60], domain="privacy-lifecycle")
        head = (f"From: {_header(self.sender)}\r\nTo: {to}\r\nSubject: {_header(notice.subject)}\r\n"
                f"Message-ID: {message_id}\r\nContent-Language: {notice.locale}\r\nMIME-Version: 1.0\r\n")
        if notice.html is None:
            data = head.encode() + _part("plain", notice.text)
        else:
            boundary = f"=_{message_id[1:21]}_alt".encode()
            data = b"".join([
                head.encode(), b'Content-Type: multipart/alternative; boundary="', boundary, b'"\r\n\r\n',
                b"--", boundary, b"\r\n", _part("plain", notice.text), b"--", boundary, b"\r\n",
                _part("html", notice.html), b"--", boundary, b"--\r\n"])
        return Composed(to, message_id, data)

    def transmit(self, composed: Composed) -> str:
        """Send one composed message at the configured rate; returns its Message-ID."""
        wait = self._last + self.interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            self._smtp.sendmail(parseaddr(self.sender)[1] or self.sender, [composed.to], composed.data)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException):
            self._last = time.monotonic()
            raise                   # the server's verdict on this mail (smtplib's errors are OSErrors too)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise TransientError(f"SMTP send failed: {exc}") from exc
        self._last = time.monotonic()
        return composed.message_id

    def send(self, to: str, notice: Notice, *, key: str) -> str:
        """Send one notice; the Message-ID derives from ``key`` (the claim's key)."""
        return self.transmit(self.compose(to, notice, key=key))

    def deliver(self, composed: Composed, *, attempts: int = 3, backoff: float = 2.0, sleep=time.sleep) -> Delivery:
        """Send with the SMTP server's verdict as the outcome, never an exception for a refusal.

        A 4xx reply (greylisting, a full mailbox, rate limits) is tried again
        after ``backoff`` seconds, doubling each time, up to ``attempts``
        tries; a 5xx reply is final (``undeliverable``).  A lost connection
        still raises ``TransientError``: whether the server took the mail is
        then unknown.
        """
        for attempt in range(1, attempts + 1):
            try:
                return Delivery("sent", attempt, self.transmit(composed))
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()), (550, b""))
            except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
                code, reply = exc.smtp_code, exc.smtp_error
            reply = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
            if not 400 <= code < 500:
                return Delivery("undeliverable", attempt, code=code, reply=reply[:200])
            if attempt < attempts:
                sleep(backoff * 2 ** (attempt - 1))
        return Delivery("deferred", attempts, code=code, reply=reply[:200])
