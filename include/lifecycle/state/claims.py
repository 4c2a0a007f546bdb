"""The claim table: one row per notice and person, committed before the mail goes out.

A row is claimed ``sending`` with the Message-ID the mail will carry, then
set to its outcome; the table's key makes a second claim of the same person
fail, so nobody is mailed twice.  A row a killed process left ``sending``
becomes ``uncertain`` and is never sent again.  Erasure notices
(``notice:<template>``) and incident notices (``incident:<id>``) share the
table (``lifecycle_deliveries``); ``mail.send_claimed`` is the loop that uses it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from lifecycle.batching import chunks
from lifecycle.clock import iso_utc
from lifecycle.state.schema import deliveries


@dataclass(frozen=True)
class Outcome:
    """What became of one person's mail: ``sent``, ``undeliverable`` or ``deferred``,
    after ``attempts`` tries, with the SMTP reply code of a refusal."""

    subject: str
    status: str
    attempts: int
    code: int | None = None


def _now() -> str:
    return iso_utc(datetime.now(UTC))


class Claims:
    """The claim rows of one notice, claimed under ``scope`` (an erasure batch or run, an
    incident run) and ``batch`` (an incident run's send batch).  A person without an address
    gets a final row at once: ``no_address`` (``skipped`` for erasure notices; incident
    notices count them ``undeliverable``).

    ``with claims:`` keeps one connection for the calls inside (a sending
    loop: one transaction per person, not a checkout and a ping as well);
    outside it, each call takes a connection of its own.
    """

    def __init__(
        self, engine: sa.Engine, notice: str, scope: str, *, batch: int | None = None, no_address: str = "skipped"
    ):
        self.engine, self.notice, self.scope, self.batch, self.no_address = engine, notice, scope, batch, no_address
        table = deliveries
        self._sending = sa.and_(table.c.notice == notice, table.c.status == "sending")
        one = sa.and_(self._sending, table.c.subject_id == sa.bindparam("_subject"))
        self._insert, self._outcome, self._release = (
            table.insert(),
            table.update().where(one),
            table.delete().where(one),
        )
        self._conn: sa.Connection | None = None

    def __enter__(self) -> Claims:
        self._conn = self.engine.connect()
        return self

    def __exit__(self, *exc) -> None:
        conn, self._conn = self._conn, None
        conn.close()

    @contextlib.contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        if self._conn is None:
            with self.engine.begin() as conn:
                yield conn
        else:
            with self._conn.begin():
                yield self._conn

    def _row(self, subject: str, message_id: str | None, locale: str | None) -> dict:
        """A claim: ``sending`` with the Message-ID, or (``message_id`` None: no address) final."""
        now = _now()
        row = {
            "notice": self.notice,
            "subject_id": subject,
            "scope": self.scope,
            "batch": self.batch,
            "attempts": 0,
            "locale": locale,
            "claimed_at": now,
            "updated_at": now,
        }
        if message_id is None:
            return {**row, "status": self.no_address, "reason": "no e-mail address", "message_id": None}
        return {**row, "status": "sending", "reason": None, "message_id": message_id}

    def claim(
        self, subject: str, message_id: str | None, locale: str | None = None, *, outcomes: Sequence[Outcome] = ()
    ) -> bool:
        """Commit the person's claim together with ``outcomes`` (the mails before);
        False when the person was claimed already (by another process), the
        outcomes then committed alone."""
        try:
            with self._begin() as conn:
                self._record(conn, outcomes)
                conn.execute(self._insert, self._row(subject, message_id, locale))
        except sa.exc.IntegrityError:
            self.record(outcomes)
            return False
        return True

    def claim_group(
        self, entries: Sequence[tuple[str, str | None, str | None]], *, outcomes: Sequence[Outcome] = ()
    ) -> set[str]:
        """Commit the claims of ``entries`` (subject, Message-ID, locale) together with
        ``outcomes``, in one transaction; returns the subjects claimed already (by another
        process), which are then not claimed, while the others are, one by one."""
        try:
            with self._begin() as conn:
                self._record(conn, outcomes)
                conn.execute(self._insert, [self._row(*entry) for entry in entries])
        except sa.exc.IntegrityError:
            self.record(outcomes)
            return {entry[0] for entry in entries if not self.claim(*entry)}
        return set()

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Set each row still ``sending`` to its outcome (again: the same values)."""
        if outcomes:
            with self._begin() as conn:
                self._record(conn, outcomes)

    def _record(self, conn: sa.Connection, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        now = _now()
        statement = self._outcome.values(
            status=sa.bindparam("_status"),
            code=sa.bindparam("_code"),
            attempts=sa.bindparam("_attempts"),
            reason=sa.bindparam("_reason"),
            updated_at=now,
        )
        conn.execute(
            statement,
            [
                {
                    "_subject": o.subject,
                    "_status": o.status,
                    "_code": o.code,
                    "_attempts": o.attempts,
                    "_reason": f"SMTP {o.code}" if o.code else None,
                }
                for o in outcomes
            ],
        )

    def release(self, subjects: Sequence[str]) -> None:
        """Delete the ``sending`` rows whose mails never went out."""
        with self._begin() as conn:
            conn.execute(self._release, [{"_subject": subject} for subject in subjects])

    def put_off(self, subject: str) -> None:
        """Give up the claim of a mail a 4xx reply put off: nothing went out, so a process that
        ends before the retry leaves the person owed a notice, not in doubt.  On a connection
        of its own (the sending loop's may be in use by the thread claiming the next group)."""
        with self.engine.begin() as conn:
            conn.execute(self._release, {"_subject": subject})

    def resume(self, subject: str, message_id: str, locale: str | None) -> bool:
        """Claim a mail put off again, just before its retry (on a connection of its own);
        False when another run claimed the person meanwhile."""
        try:
            with self.engine.begin() as conn:
                conn.execute(self._insert, self._row(subject, message_id, locale))
        except sa.exc.IntegrityError:
            return False
        return True

    def mark_uncertain(self, subjects: Sequence[str]) -> None:
        """Rows a killed process left ``sending`` become ``uncertain``: whether the
        server took those mails is unknown, so they are never sent again."""
        with self._begin() as conn:
            for part in chunks(subjects, 1000):
                conn.execute(
                    deliveries.update()
                    .where(self._sending, deliveries.c.subject_id.in_(part))
                    .values(status="uncertain", updated_at=_now())
                )
