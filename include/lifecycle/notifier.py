"""One way a notice reaches people: each person at most once, resumable after a kill.

Erasure notices and incident notices differ only in their claim table (a
``ClaimBook``), their template and their context.  The ``Notifier`` owns what
is common: rows an interrupted run left ``sending`` become ``uncertain`` and
are never resent; the rest are claimed, mailed and given their outcome
(``mail.send_claimed``); then one ledger entry backs the outcomes not yet
backed.  All the connections mailing for one run share its rate
(``state.rates``), so that batches may be sent side by side.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lifecycle.errors import LifecycleError
from lifecycle.mail import Composed, Mailer, send_claimed
from lifecycle.state.claims import Claims
from lifecycle.state.rates import SendRates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """What a claim table already holds for one person."""

    status: str  # sending | sent | undeliverable | deferred | skipped | uncertain
    backed: bool  # a ledger entry backs the outcome


class ClaimBook(Protocol):
    """The claim rows of one notice: a template's, an incident batch's."""

    name: str  # for the log

    def recorded(self, subjects: Sequence[str]) -> dict[str, Recorded]: ...

    def claims(self) -> Claims: ...

    def summarize(self, subjects: Sequence[str], run_id: str | None) -> None:
        """One ledger entry for the outcomes of ``subjects`` no entry backs yet."""


@dataclass(frozen=True)
class Delivered:
    outcomes: Counter  # of this call: sent, undeliverable, deferred, no_address, taken (by another process)
    uncertain: int  # left 'sending' by an interrupted run: recorded uncertain now, not sent
    already: int  # had an outcome before this call


class Notifier:
    def __init__(
        self,
        settings,
        mailer: Callable[[], Mailer] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        *,
        rates: SendRates | None = None,
        rate_scope: str = "mail",
    ):
        """``settings``: notifications.yaml (connection, sender, rate, retries).  With ``rates``
        every connection sending for one run shares one rate (``email.max_per_second``), kept
        under ``<rate_scope>:<run id>``: a run id is unique within its DAG only, so each DAG
        that mails names its own scope."""
        self.settings, self._sleep, self.rates, self.rate_scope = settings, sleep, rates, rate_scope
        self._mailer = mailer or self._default_mailer

    def _default_mailer(self) -> Mailer:
        if self.settings is None:  # validation refuses notices without mail settings; a model built in code may not
            raise LifecycleError("notices need notifications.yaml: email (conn_id, from)")
        email = self.settings.email
        return Mailer(email.conn_id, email.from_, email.max_per_second)

    def deliver(
        self,
        book: ClaimBook,
        subjects: Sequence[str],
        prepare: Callable[[Sequence[str], Mailer], Callable[[str], Composed | None]],
        *,
        run_id: str | None = None,
    ) -> Delivered:
        """Mail each of ``subjects`` the claim table has no row for.  ``prepare(todo, mailer)``
        is called once, with the people to mail and the connection (to read their addresses
        in one query), and returns what composes one person's message (None: no address)."""
        recorded = book.recorded(subjects)
        interrupted = sorted(s for s, r in recorded.items() if r.status == "sending")
        if interrupted:
            book.claims().mark_uncertain(interrupted)
            log.warning(
                "%s: %d notice(s) left 'sending' by an interrupted run are recorded uncertain and not sent again",
                book.name,
                len(interrupted),
            )
        todo = [s for s in subjects if s not in recorded]
        outcomes: Counter = Counter()
        if todo:
            email = self.settings.email if self.settings else None
            retries = {"attempts": email.retry_attempts, "backoff": email.retry_backoff.seconds} if email else {}
            mailer = self._mailer()
            if self.rates is not None and run_id is not None:
                mailer.share_rate(self.rates, f"{self.rate_scope}:{run_id}")
            with mailer:
                compose = prepare(todo, mailer)
                outcomes = send_claimed(mailer, todo, book.claims(), prepare=compose, sleep=self._sleep, **retries)
        unbacked = [s for s, r in recorded.items() if not r.backed] + todo
        if unbacked:
            book.summarize(unbacked, run_id)
        return Delivered(outcomes, len(interrupted), len(subjects) - len(todo) - len(interrupted))
