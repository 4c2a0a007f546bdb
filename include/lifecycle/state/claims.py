"""Claim tables: one row per person and notice, committed before the mail goes out.

A row is claimed ``sending`` with the Message-ID the mail will carry, then
set to its outcome; the table's unique key makes a second claim of the same
person fail, so nobody is mailed twice.  A row a killed process left
``sending`` becomes ``uncertain`` and is never sent again.  ``Notices`` and
``Incidents`` each have one kind of claim (``NoticeClaims``,
``DeliveryClaims``); ``mail.send_claimed`` is the loop that uses them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from lifecycle.batching import chunks


@dataclass(frozen=True)
class Outcome:
    """What became of one person's mail: ``sent``, ``undeliverable`` or ``deferred``,
    after ``attempts`` tries, with the SMTP reply code of a refusal."""

    subject: str
    status: str
    attempts: int
    code: int | None = None


class Claims:
    """The claim rows of one kind of notice: one row per person in ``table``
    (columns ``subject_id`` and ``status``) among the rows matching ``key``.
    Subclasses say what a claim row and an outcome hold.

    ``with claims:`` keeps one connection for the calls inside (a sending
    loop: one transaction per person, not a checkout and a ping as well);
    outside it, each call takes a connection of its own.
    """

    def __init__(self, engine: sa.Engine, table: sa.Table, **key):
        self.engine, self.table, self.key = engine, table, key
        self._sending = sa.and_(
            *(table.c[column] == value for column, value in key.items()), table.c.status == "sending"
        )
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

    def _row(self, message_id: str | None, locale: str | None) -> dict:
        """A claim's columns: ``status`` ``sending`` and the Message-ID, or
        (``message_id`` None: no address) a final status."""
        raise NotImplementedError

    def _outcome_row(self, outcome: Outcome) -> dict:
        """The columns an outcome sets."""
        raise NotImplementedError

    def _uncertain_row(self) -> dict:
        """What else a row turned ``uncertain`` records."""
        return {}

    def claim(
        self, subject: str, message_id: str | None, locale: str | None = None, *, outcomes: Sequence[Outcome] = ()
    ) -> bool:
        """Commit the person's claim together with ``outcomes`` (the mails before);
        False when the person was claimed already (by another process), the
        outcomes then committed alone."""
        try:
            with self._begin() as conn:
                self._record(conn, outcomes)
                conn.execute(self._insert, {**self.key, "subject_id": subject, **self._row(message_id, locale)})
        except sa.exc.IntegrityError:
            self.record(outcomes)
            return False
        return True

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Set each row still ``sending`` to its outcome (again: the same values)."""
        if outcomes:
            with self._begin() as conn:
                self._record(conn, outcomes)

    def _record(self, conn: sa.Connection, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        values = [self._outcome_row(o) for o in outcomes]
        statement = self._outcome.values({column: sa.bindparam(f"_set_{column}") for column in values[0]})
        conn.execute(
            statement,
            [{"_subject": o.subject, **{f"_set_{c}": v for c, v in row.items()}} for o, row in zip(outcomes, values)],
        )

    def release(self, subject: str) -> None:
        """Delete a ``sending`` row whose mail never went out."""
        with self._begin() as conn:
            conn.execute(self._release, {"_subject": subject})

    def mark_uncertain(self, subjects: Sequence[str]) -> None:
        """Rows a killed process left ``sending`` become ``uncertain``: whether the
        server took those mails is unknown, so they are never sent again."""
        with self._begin() as conn:
            for part in chunks(subjects, 1000):
                conn.execute(
                    self.table.update()
                    .where(self._sending, self.table.c.subject_id.in_(part))
                    .values(status="uncertain", **self._uncertain_row())
                )
