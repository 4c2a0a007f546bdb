"""E-mail notices: rendered from templates in the person's locale, sent over
one SMTP connection from an Airflow ``smtp`` connection, at a bounded rate
(a run's connections share one: ``SharedSpacing``).

Templates live in ``include/lifecycle/templates/mail/<name>.<locale>.txt.j2``; the
first line is ``Subject: …``.  A locale falls back to its language, then to
the first configured locale.  ``send_claimed`` is the one way notices go
out: each person's claim is committed before their mail is sent (the claim
table, ``state.claims``), with the Message-ID the mail carries, so a rerun
never sends a notice twice.  ``lifecycle.notifier`` drives it.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import heapq
import html
import itertools
import json
import logging
import re
import smtplib
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, make_msgid, parseaddr

from lifecycle import reports
from lifecycle.batching import chunks
from lifecycle.errors import LifecycleError, TransientError
from lifecycle.state.claims import Claims, Outcome
from lifecycle.state.rates import SendRates, Starts

log = logging.getLogger(__name__)

NAME = "\u2063name\u2063"  # stands for the person's name in a notice rendered once for many people


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
    html: str | None = None  # an HTML alternative, when the template has one


@dataclass(frozen=True)
class Attachment:
    """A file sent with a notice (a regulator's report as PDF and JSON)."""

    filename: str  # plain ASCII: letters, digits, ``._-``
    content_type: str
    data: bytes


def _attachment(file: Attachment) -> bytes:
    body = base64.encodebytes(file.data).replace(b"\n", b"\r\n")
    return (
        f'Content-Type: {file.content_type}; name="{file.filename}"\r\n'
        f'Content-Disposition: attachment; filename="{file.filename}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + body


def _multipart(subtype: str, boundary: bytes, parts: Sequence[bytes]) -> bytes:
    """A ``multipart/<subtype>`` entity (its Content-Type line, then each part and the closing boundary)."""
    head = b"Content-Type: multipart/" + subtype.encode() + b'; boundary="' + boundary + b'"\r\n\r\n'
    return b"".join([head, *(b"--" + boundary + b"\r\n" + part for part in parts), b"--", boundary, b"--\r\n"])


@dataclass(frozen=True)
class Composed:
    """A message ready for the wire."""

    to: str
    message_id: str
    data: bytes
    locale: str | None = None


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
    raise LifecycleError(
        f"no template mail/{name}.<locale>.txt.j2 for {locale!r} or {fallback!r} in {reports.TEMPLATES}"
    )


def render_notice(template: str, locale: str | None, fallback: str = "en", **context) -> Notice:
    chosen = template_locale(template, locale, fallback)
    text = reports.render(f"mail/{template}.{chosen}.txt.j2", **context)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise LifecycleError(f"template mail/{template}.{chosen}.txt.j2 must start with a 'Subject:' line")
    markup = None
    if (reports.TEMPLATES / "mail" / f"{template}.{chosen}.html.j2").exists():
        markup = reports.render(
            f"mail/{template}.{chosen}.html.j2", subject=first.removeprefix("Subject:").strip(), **context
        )
    return Notice(first.removeprefix("Subject:").strip(), body.lstrip("\n"), chosen, markup)


def personal_notices(template: str, fallback: str, **shared) -> Callable[..., Notice]:
    """``notice(locale, name, **context)``: each (language, context) is rendered once,
    then the person's name is filled in (escaped in the HTML part).  The same text
    as rendering per person, at a fraction of the cost."""
    rendered: dict[tuple, Notice] = {}

    def notice(locale: str | None, name: str | None, **context) -> Notice:
        key = (locale, bool(name), json.dumps(context, sort_keys=True, default=str))
        base = rendered.get(key)
        if base is None:
            base = rendered[key] = render_notice(
                template, locale, fallback, name=NAME if name else None, **shared, **context
            )
        if not name:
            return base
        return Notice(
            base.subject.replace(NAME, name),
            base.text.replace(NAME, name),
            base.locale,
            base.html.replace(NAME, html.escape(name)) if base.html is not None else None,
        )

    return notice


def transient(exc: BaseException) -> bool:
    """Whether an SMTP failure may pass on retry: a lost, refused or timed-out connection, or a
    4xx reply; a 5xx reply (authentication refused, a policy) would be refused again."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError))


class Spacing:
    """Mail starts on one connection ``interval`` apart: never bunched after a slow mail, so
    the rate is the configured one, not that less the time each mail takes."""

    def __init__(self, interval: float):
        self.interval = interval
        self._next = 0.0  # the earliest start of the next mail (monotonic clock)

    def wait(self) -> None:
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval

    def close(self) -> None:
        pass


class SharedSpacing:
    """Mail starts drawn from the state store (``state.rates``) so that all the connections of a
    run keep one rate together.

    A connection draws its starts when it is ready to send, in blocks of ``BLOCK_SECONDS`` of
    the rate (at most ``BLOCK_MOST``; one start at a time below 200 mails a second), so the
    store is asked once per block, not once per mail, and no start is held by a connection
    still busy with an earlier mail.  A start is never taken early, and never late by more
    than ``LATE_MOST``: a connection that fell behind its block (a reconnect, a slow reply)
    lets the rest go and draws anew rather than send beside the connections on time.  With the
    starts ``1 + LATE_MOST`` intervals apart, no one-second window holds more than
    ``max_per_second`` starts, not only on average.
    """

    BLOCK_SECONDS = 0.01
    BLOCK_MOST = 64
    LATE_MOST = 0.05  # seconds

    def __init__(self, rates: SendRates, scope: str, interval: float):
        interval *= 1 + self.LATE_MOST
        self._open = lambda: rates.open(scope, interval)
        self._block = max(1, min(self.BLOCK_MOST, int(self.BLOCK_SECONDS / interval)))
        self._starts: Starts | None = None  # opened with the first mail
        self._reserved: deque[float] = deque()
        self.passed = 0  # starts let go because this connection came to them too late

    def _next(self) -> float:
        """The next drawn start not past by more than ``LATE_MOST`` (those are let go).  A block
        drawn again is asked ``lead`` ahead, so that a store slower to answer than
        ``LATE_MOST`` still hands out starts this connection can keep."""
        lead = 0.0
        while True:
            while self._reserved:
                start = self._reserved.popleft()
                if start >= time.time() - self.LATE_MOST:
                    return start
                self.passed += 1
            self._reserved.extend(self._starts.take(time.time() + lead, self._block))
            lead = min(2 * lead or self.LATE_MOST, 1.0)

    def wait(self) -> float:
        """Sleep until this connection's next start; returns that start (Unix time)."""
        if self._starts is None:
            self._starts = self._open()
        start = self._next()
        delay = start - time.time()
        if delay > 0:
            time.sleep(delay)
        return start

    def close(self) -> None:
        if self._starts is not None:
            self._starts.close()
        if self.passed:
            log.info("%d mail start(s) let go: the connection came to them late", self.passed)


class Mailer:
    """One SMTP session for many notices (``with Mailer(...) as m: m.send(...)``)."""

    def __init__(self, conn_id: str, sender: str, max_per_second: float = 50):
        self.conn_id, self.sender = conn_id, sender
        self.interval = 1.0 / max_per_second
        self._smtp: smtplib.SMTP | None = None
        self.spacing: Spacing | SharedSpacing = Spacing(self.interval)

    def share_rate(self, rates: SendRates, scope: str) -> None:
        """Take mail starts from ``rates`` under ``scope``: every connection of the run together
        keeps this mailer's ``max_per_second``, not each on its own."""
        self.spacing.close()
        self.spacing = SharedSpacing(rates, scope, self.interval)

    def __enter__(self) -> Mailer:
        self._connect()
        return self

    def _connect(self) -> None:
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
            self._smtp.ehlo_or_helo_if_needed()
        except OSError as exc:
            kind = TransientError if transient(exc) else LifecycleError
            raise kind(f"SMTP connection {self.conn_id!r} ({conn.host}:{conn.port}) failed: {exc}") from exc

    def __exit__(self, *exc) -> None:
        self.spacing.close()
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except smtplib.SMTPException:
                pass

    def compose(self, to: str, notice: Notice, *, key: str, attachments: Sequence[Attachment] = ()) -> Composed:
        """The message as bytes for the wire; the Message-ID derives from ``key`` (the claim's key).

        Written out directly (RFC 5322 headers, MIME parts in UTF-8 and
        base64, CRLF): an order of magnitude cheaper than building it with
        ``email.message``, which matters at hundreds of mails a second.
        Needs no SMTP session, so it may run ahead of the sending.  With
        ``attachments`` the text (and its HTML alternative) is the first part
        of a ``multipart/mixed`` message and each file follows it.
        """
        message_id = make_msgid(idstring=key.replace(":", ".")[:60], domain="privacy-lifecycle")
        head = (
            f"From: {_header(self.sender)}\r\nTo: {to}\r\nSubject: {_header(notice.subject)}\r\n"
            f"Message-ID: {message_id}\r\nContent-Language: {notice.locale}\r\nMIME-Version: 1.0\r\n"
        )
        if notice.html is None:
            body = _part("plain", notice.text)
        else:
            body = _multipart(
                "alternative",
                f"=_{message_id[1:21]}_alt".encode(),
                [_part("plain", notice.text), _part("html", notice.html)],
            )
        if attachments:
            files = [_attachment(file) for file in attachments]
            body = _multipart("mixed", f"=_{message_id[1:21]}_mix".encode(), [body, *files])
        return Composed(to, message_id, head.encode() + body, notice.locale)

    def transmit(self, composed: Composed) -> str:
        """Send one composed message at the configured rate (``spacing``); returns its Message-ID.

        Where the server offers PIPELINING (RFC 2920), as relays do, the envelope (MAIL, RCPT,
        DATA) goes out in one write and its three replies are read together: two round trips
        a mail instead of four.  Refusals raise smtplib's exceptions either way."""
        if self._smtp is not None and self._smtp.sock is None:
            self._connect()  # the server closed the session with a 421 (smtplib closes then): no mail was in flight
        self.spacing.wait()  # after a reconnect, not before it: the start is the MAIL command's
        sender = parseaddr(self.sender)[1] or self.sender
        try:
            if self._smtp.has_extn("pipelining"):
                _send_pipelined(self._smtp, sender, composed.to, composed.data)
            else:
                self._smtp.sendmail(sender, [composed.to], composed.data)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException):
            raise  # the server's verdict on this mail (smtplib's errors are OSErrors too)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise TransientError(f"SMTP send failed: {exc}") from exc
        return composed.message_id

    def deliver(self, composed: Composed, *, attempts: int = 3, backoff: float = 2.0, sleep=time.sleep) -> Delivery:
        """Send with the SMTP server's verdict as the outcome, never an exception for a refusal.

        A 4xx reply (greylisting, a full mailbox, rate limits) is tried again
        after ``backoff`` seconds, doubling each time, up to ``attempts``
        tries; a 5xx reply is final (``undeliverable``).  A lost connection
        still raises ``TransientError``: whether the server took the mail is
        then unknown.
        """
        for attempt in range(1, attempts + 1):
            delivery = self.try_once(composed, attempt)
            if delivery.status != "deferred" or attempt == attempts:
                return delivery
            sleep(backoff * 2 ** (attempt - 1))
        raise AssertionError("attempts must be at least 1")

    def try_once(self, composed: Composed, attempt: int = 1) -> Delivery:
        """One try: ``sent``, ``undeliverable`` (a 5xx reply) or ``deferred`` (a 4xx reply: may pass later)."""
        try:
            return Delivery("sent", attempt, self.transmit(composed))
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (550, b""))
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            code, reply = exc.smtp_code, exc.smtp_error
        reply = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        return Delivery("deferred" if 400 <= code < 500 else "undeliverable", attempt, code=code, reply=reply[:200])


_LEADING_PERIOD = re.compile(rb"(?m)^\.")


def _send_pipelined(smtp: smtplib.SMTP, sender: str, to: str, data: bytes) -> None:
    """One message over ``smtp`` with its envelope pipelined (RFC 2920): MAIL, RCPT and DATA in
    one write, their replies read in order, then the dot-stuffed content and its reply.  Raises
    as ``smtplib.SMTP.sendmail`` does; after a refused envelope the session is reset for the
    next message."""
    size = f" SIZE={len(data)}" if smtp.has_extn("size") else ""
    smtp.send(f"MAIL FROM:<{sender}>{size}\r\nRCPT TO:<{to}>\r\nDATA\r\n")
    mail = smtp.getreply()
    rcpt = smtp.getreply() if mail[0] != 421 else (503, b"")  # after a 421 the server closes the session
    start = smtp.getreply() if 421 not in (mail[0], rcpt[0]) else (503, b"")
    if start[0] == 354:  # content expected although the envelope failed: end it empty, then reset
        if mail[0] == 250 and rcpt[0] in (250, 251):
            smtp.send(_LEADING_PERIOD.sub(b"..", data) + (b"" if data.endswith(b"\r\n") else b"\r\n") + b".\r\n")
            code, reply = smtp.getreply()
            if code == 421:
                smtp.close()
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
            return
        smtp.send(b".\r\n")
        smtp.getreply()
    if 421 in (mail[0], rcpt[0], start[0]):
        smtp.close()
    else:
        smtp.rset()
    if mail[0] != 250:
        raise smtplib.SMTPSenderRefused(*mail, sender)
    if rcpt[0] not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({to: rcpt})
    raise smtplib.SMTPDataError(*start)


_TAKEN = object()


class _Retries:
    """The mails a 4xx reply put off (greylisting, a 421 closing the session), tried again
    ``backoff`` seconds later (doubling each time, up to ``attempts`` tries) while the others
    go on: a greylisted person costs the connection no wait.  Each try is one
    ``Mailer.deliver(attempts=1)``, at the connection's rate.

    A mail put off gives its claim up while it waits (nothing went out: a process killed
    meanwhile leaves the person owed a notice, not in doubt) and claims the person again just
    before its retry; one another run claimed meanwhile is ``taken``, not mailed."""

    def __init__(
        self, mailer: Mailer, claims: Claims, counts: Counter, attempts: int, backoff: float, sleep: Callable[..., None]
    ):
        self.mailer, self.claims, self.counts = mailer, claims, counts  # ``counts``: the loop's, for ``taken``
        self.attempts, self.backoff, self.sleep = attempts, backoff, sleep
        self._heap: list[tuple[float, int, str, Composed, int]] = []  # (due, order, subject, mail, next try)
        self._order = itertools.count()

    def _try(self, subject: str, composed: Composed, attempt: int) -> list[tuple[str, Delivery]]:
        delivery = dataclasses.replace(self.mailer.deliver(composed, attempts=1), attempts=attempt)
        if delivery.status == "deferred" and attempt < self.attempts:
            self.claims.put_off(subject)
            due = time.monotonic() + self.backoff * 2 ** (attempt - 1)
            heapq.heappush(self._heap, (due, next(self._order), subject, composed, attempt + 1))
            return []
        return [(subject, delivery)]

    def _retry(self) -> list[tuple[str, Delivery]]:
        _, _, subject, composed, attempt = heapq.heappop(self._heap)
        if not self.claims.resume(subject, composed.message_id, composed.locale):
            self.counts["taken"] += 1
            return []
        return self._try(subject, composed, attempt)

    def send(self, subject: str, composed: Composed) -> list[tuple[str, Delivery]]:
        """This person's first try, then the retries now due; the outcomes that are final."""
        done = self._try(subject, composed, 1)
        while self._heap and self._heap[0][0] <= time.monotonic():
            done += self._retry()
        return done

    def drain(self) -> list[tuple[str, Delivery]]:
        """The retries left, each when its time comes."""
        done = []
        while self._heap:
            wait = self._heap[0][0] - time.monotonic()
            if wait > 0:
                self.sleep(wait)
            done += self._retry()
        return done


GROUP_SECONDS = 0.02  # claims committed together: the mails of 20 ms at the connection's rate
GROUP_MOST = 16


def claim_group(mailer: Mailer) -> int:
    """How many people's claims one commit makes for ``mailer``: one at a time below 100 mails a
    second, then 20 ms of its rate, at most ``GROUP_MOST``."""
    return max(1, min(GROUP_MOST, int(GROUP_SECONDS / mailer.interval)))


def _prepare_and_claim(
    prepare: Callable[[str], Composed | None], claims: Claims, group: Sequence[str], outcomes: list[Outcome]
) -> dict[str, object]:
    """Each of ``group``'s mail prepared (None: no address) and their claims committed together,
    with ``outcomes`` (not yet recorded) in the same transaction; ``_TAKEN`` for a person
    another process claimed meanwhile."""
    composed = {subject: prepare(subject) for subject in group}
    taken = claims.claim_group(
        [(s, c.message_id if c else None, c.locale if c else None) for s, c in composed.items()], outcomes=outcomes
    )
    return {s: _TAKEN if s in taken else c for s, c in composed.items()}


def _claimed_by_us(prepared: dict[str, object], subjects: Sequence[str]) -> list[str]:
    """Of ``subjects``, those this process claimed for a mail (not taken, not without an address)."""
    return [s for s in subjects if prepared.get(s) not in (None, _TAKEN)]


def _release_unsent(claims: Claims, subjects: list[str]) -> None:
    """Release the claims of ``subjects`` after an error, as their mails never went out."""
    try:
        claims.release(subjects)
    except Exception:  # their fate is unknown: at worst 'uncertain'
        log.warning("could not release %d claim(s) after an error; they will be reported uncertain", len(subjects))


def _mail_group(
    group: Sequence[str],
    prepared: dict[str, object],
    unsent: list[str],
    retries: _Retries,
    counts: Counter,
    settle: Callable[[list[tuple[str, Delivery]]], None],
) -> None:
    """Put ``group``'s mails on the wire, each outcome settled as it comes; people taken or without an address counted."""
    for subject in group:
        composed = prepared[subject]
        if composed is _TAKEN or composed is None:
            counts["taken" if composed is _TAKEN else "no_address"] += 1
            continue
        unsent.remove(subject)  # from here on, whether it went out is the server's to say
        settle(retries.send(subject, composed))


def _wind_up(
    claims: Claims, unsent: list[str], upcoming: Future | None, following: Sequence[str], outcomes: list[Outcome]
) -> None:
    """The end of ``send_claimed``, however it ends: claims whose mails never went out released (``unsent``: this
    process's; the next group's, if it was claimed), outcomes recorded."""
    if upcoming is not None:  # the next group may be claimed, but its mails never went out
        try:
            unsent = unsent + _claimed_by_us(upcoming.result(), following)
        except Exception:  # the claims were not made, or their fate is unknown: at worst 'uncertain'
            log.warning("could not learn which claims the last group made; they will be reported uncertain")
    if unsent:
        _release_unsent(claims, unsent)
    claims.record(outcomes)  # recording an outcome twice sets the same values


def send_claimed(
    mailer: Mailer,
    subjects: Sequence[str],
    claims: Claims,
    *,
    prepare: Callable[[str], Composed | None],
    attempts: int = 3,
    backoff: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Counter:
    """Mail ``subjects`` over ``mailer``'s session, nobody twice; counts by outcome
    (``sent``, ``undeliverable``, ``deferred``, ``no_address``, ``taken``).

    People are claimed in groups (``claim_group``: one at a time at the
    usual rates, up to 16 at hundreds a second): a group's claims are
    committed before any of its mails goes out, in the same transaction as
    the outcomes not yet recorded, on one connection of ``claims`` for the
    whole loop.  A helper thread prepares (renders, composes) and claims
    group n+1 while group n is on the wire, so the database's round trips
    overlap the server's.  A person another process claimed meanwhile is
    ``taken`` and not mailed.  Refusals are outcomes (``Mailer.deliver``),
    not errors; a 4xx reply puts that person's mail off (``_Retries``: its
    claim given up until the retry) while the others go on; a 421 that closed
    the session is followed by a new one.  On an error the claims whose mails
    never went out are released; killed outright, a process leaves at most
    two groups' rows ``sending`` (the group on the wire and the next one: two
    rows at the usual rates), which the caller reports *uncertain* and never
    resends: their Message-IDs can be looked up in the mail server's log.
    """
    counts: Counter = Counter()
    if not subjects:
        return counts
    groups = list(chunks(subjects, claim_group(mailer)))
    retries = _Retries(mailer, claims, counts, attempts, backoff, sleep)

    def settle(done: list[tuple[str, Delivery]]) -> None:
        for subject, delivery in done:
            pending.append(Outcome(subject, delivery.status, delivery.attempts, delivery.code))
            counts[delivery.status] += 1

    pending: list[Outcome] = []  # outcomes not yet recorded
    handed: list[Outcome] = []  # outcomes given to the helper with the next group's claims
    unsent: list[str] = []  # claimed by this process, not yet on the wire
    with claims, ThreadPoolExecutor(1) as helper:
        upcoming, following = helper.submit(_prepare_and_claim, prepare, claims, groups[0], []), groups[0]
        try:
            for n, group in enumerate(groups):
                prepared = upcoming.result()  # this group's claims are committed
                upcoming, unsent = None, _claimed_by_us(prepared, group)
                if n + 1 < len(groups):
                    following, handed, pending = groups[n + 1], pending, []
                    upcoming = helper.submit(_prepare_and_claim, prepare, claims, following, handed)
                _mail_group(group, prepared, unsent, retries, counts, settle)
            claims.record(pending)  # before the retries' wait: what went out is not left in doubt meanwhile
            pending = []
            settle(retries.drain())
        finally:
            _wind_up(claims, unsent, upcoming, following, handed + pending)
    return counts
