"""E-mail notices: rendered from templates in the person's locale, sent over
one SMTP connection from an Airflow ``smtp`` connection, at a bounded rate.

Templates live in ``include/templates/mail/<name>.<locale>.txt.j2``; the
first line is ``Subject: …``.  A locale falls back to its language, then to
the first configured locale.  Callers record each sent notice in the ledger
under a key, so a notice is never sent twice.
"""

from __future__ import annotations

import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from lifecycle import reports
from lifecycle.errors import LifecycleError, TransientError


@dataclass(frozen=True)
class Notice:
    subject: str
    text: str
    locale: str
    html: str | None = None        # an HTML alternative, when the template has one


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

    def send(self, to: str, notice: Notice, *, key: str) -> str:
        """Send one notice; the Message-ID derives from ``key`` (the ledger key)."""
        wait = self._last + self.interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, notice.subject
        message["Message-ID"] = make_msgid(idstring=key.replace(":", ".")[:60], domain="privacy-lifecycle")
        message.set_content(notice.text)
        if notice.html is not None:
            message.add_alternative(notice.html, subtype="html")
        message["Content-Language"] = notice.locale      # after the parts: making them moves Content-* headers down
        try:
            self._smtp.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException):
            raise                   # the server's verdict on this mail (smtplib's errors are OSErrors too)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise TransientError(f"SMTP send failed: {exc}") from exc
        self._last = time.monotonic()
        return message["Message-ID"]

    def deliver(self, to: str, notice: Notice, *, key: str, attempts: int = 3, backoff: float = 2.0,
                sleep=time.sleep) -> Delivery:
        """Send with the SMTP server's verdict as the outcome, never an exception for a refusal.

        A 4xx reply (greylisting, a full mailbox, rate limits) is tried again
        after ``backoff`` seconds, doubling each time, up to ``attempts``
        tries; a 5xx reply is final (``undeliverable``).  A lost connection
        still raises ``TransientError``: whether the server took the mail is
        then unknown.
        """
        for attempt in range(1, attempts + 1):
            try:
                return Delivery("sent", attempt, self.send(to, notice, key=key))
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()), (550, b""))
            except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
                code, reply = exc.smtp_code, exc.smtp_error
            self._last = time.monotonic()
            reply = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
            if not 400 <= code < 500:
                return Delivery("undeliverable", attempt, code=code, reply=reply[:200])
            if attempt < attempts:
                sleep(backoff * 2 ** (attempt - 1))
        return Delivery("deferred", attempts, code=code, reply=reply[:200])
