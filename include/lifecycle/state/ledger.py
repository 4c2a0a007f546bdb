"""The append-only, hash-chained ledger of every destructive action and notice.

Entry n stores ``prev_hash`` (entry n-1's hash) and ``entry_hash`` =
SHA-256 over the canonical JSON of its own fields and ``prev_hash``.  A head
row holds the last sequence number and hash, so an edited, removed or
reordered entry, and a cut-off tail, are all detected by ``verify``.
Appends serialize on the head row (a row lock on PostgreSQL and MariaDB, the
write lock on SQLite); an append under an idempotency key already recorded
returns the recorded entry (the unique key decides, no read first).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from lifecycle.batching import chunks
from lifecycle.state.schema import GENESIS, ledger_entries, ledger_head


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(
    *,
    seq: int,
    recorded_at: str,
    kind: str,
    dag_id: str | None,
    run_id: str | None,
    idempotency_key: str | None,
    payload: str,
    prev_hash: str,
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "recorded_at": recorded_at,
            "kind": kind,
            "dag_id": dag_id,
            "run_id": run_id,
            "key": idempotency_key,
            "payload": payload,
            "prev": prev_hash,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    recorded_at: str
    kind: str
    dag_id: str | None
    run_id: str | None
    idempotency_key: str | None
    payload: dict
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True)
class Record:
    """An entry to append: what happened, its data, and the idempotency key that makes it once."""

    kind: str
    payload: dict
    key: str | None = None


@dataclass
class Verification:
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _entry(row) -> Entry:
    return Entry(
        row.seq,
        row.recorded_at,
        row.kind,
        row.dag_id,
        row.run_id,
        row.idempotency_key,
        json.loads(row.payload),
        row.prev_hash,
        row.entry_hash,
    )


class Ledger:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def append(
        self,
        kind: str,
        payload: dict,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        key: str | None = None,
        recorded_at: datetime | None = None,
    ) -> Entry:
        """Append one entry; with ``key``, an entry already recorded under it is returned instead."""
        return self.append_many([Record(kind, payload, key)], dag_id=dag_id, run_id=run_id, recorded_at=recorded_at)[0]

    def append_many(
        self,
        records: list[Record],
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        recorded_at: datetime | None = None,
    ) -> list[Entry]:
        """Append ``records`` in order, in one transaction: one wait for the head, one commit.

        Where one of their keys is recorded already, they are appended one by
        one instead, and each key recorded before returns its recorded entry.
        """
        when = (recorded_at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
        bodies = [canonical_json(record.payload) for record in records]
        try:
            with self.engine.begin() as conn:
                head = self._lock_head(conn)
                seq, prev, rows = head.seq, head.entry_hash, []
                for record, body in zip(records, bodies):
                    seq += 1
                    values = dict(
                        seq=seq,
                        recorded_at=when,
                        kind=record.kind,
                        dag_id=dag_id,
                        run_id=run_id,
                        idempotency_key=record.key,
                        payload=body,
                        prev_hash=prev,
                    )
                    values["entry_hash"] = prev = entry_hash(**values)
                    rows.append(values)
                conn.execute(ledger_entries.insert(), rows)
                conn.execute(ledger_head.update().where(ledger_head.c.id == 1).values(seq=seq, entry_hash=prev))
        except sa.exc.IntegrityError:
            if len(records) > 1:
                return [
                    self.append_many([record], dag_id=dag_id, run_id=run_id, recorded_at=recorded_at)[0]
                    for record in records
                ]
            existing = self.find(records[0].key) if records[0].key is not None else None
            if existing is None:
                raise
            return [existing]  # recorded before under this key: appending is idempotent
        return [Entry(**{**values, "payload": json.loads(body)}) for values, body in zip(rows, bodies)]

    def _lock_head(self, conn: sa.Connection):
        """Read the head under a lock, so concurrent appenders queue here: a row
        lock where the database has one, the database write lock on SQLite."""
        query = sa.select(ledger_head.c.seq, ledger_head.c.entry_hash).where(ledger_head.c.id == 1)
        if conn.dialect.name == "sqlite":
            conn.execute(ledger_head.update().where(ledger_head.c.id == 1).values(seq=ledger_head.c.seq))
            return conn.execute(query).one()
        return conn.execute(query.with_for_update()).one()

    def head(self) -> tuple[int, str | None]:
        """How many entries the chain holds (its head's number) and when the last was recorded."""
        with self.engine.connect() as conn:
            seq = conn.execute(sa.select(ledger_head.c.seq).where(ledger_head.c.id == 1)).scalar() or 0
            last = conn.execute(sa.select(ledger_entries.c.recorded_at).where(ledger_entries.c.seq == seq)).scalar()
        return int(seq), last

    def hashes(self, first: int, last: int) -> dict[int, str]:
        """``{seq: entry_hash}`` of the entries numbered ``first`` to ``last`` that the table holds
        (what a checkpoint publishes, and what its check compares)."""
        query = (
            sa.select(ledger_entries.c.seq, ledger_entries.c.entry_hash)
            .where(ledger_entries.c.seq.between(first, last))
            .order_by(ledger_entries.c.seq)
        )
        with self.engine.connect() as conn:
            return {int(seq): value for seq, value in conn.execute(query)}

    def find(self, key: str) -> Entry | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(ledger_entries).where(ledger_entries.c.idempotency_key == key)).first()
        return _entry(row) if row else None

    @staticmethod
    def _under(prefix: str):
        escaped = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        return ledger_entries.c.idempotency_key.like(escaped + "%", escape="!")

    def keys_with_prefix(self, prefix: str) -> set[str]:
        """Idempotency keys recorded under ``prefix`` (what a resumed task already did)."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(ledger_entries.c.idempotency_key).where(self._under(prefix))).scalars())

    def keys_among(self, keys: list[str], *, chunk: int = 1000) -> set[str]:
        """Which of ``keys`` are recorded (lookups on the unique key index, in chunks)."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            for part in chunks(keys, chunk):
                found.update(
                    conn.execute(
                        sa.select(ledger_entries.c.idempotency_key).where(ledger_entries.c.idempotency_key.in_(part))
                    ).scalars()
                )
        return found

    def entries_with_prefix(self, prefix: str) -> list[Entry]:
        """The entries recorded under idempotency keys starting with ``prefix``, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(ledger_entries).where(self._under(prefix)).order_by(ledger_entries.c.seq)
            ).all()
        return [_entry(row) for row in rows]

    def entries(self, *, kind: str | None = None, run_id: str | None = None, chunk: int = 5000) -> Iterator[Entry]:
        """Entries in order, read in chunks so the ledger may grow without bound."""
        last = 0
        while True:
            query = sa.select(ledger_entries).where(ledger_entries.c.seq > last)
            if kind:
                query = query.where(ledger_entries.c.kind == kind)
            if run_id:
                query = query.where(ledger_entries.c.run_id == run_id)
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(ledger_entries.c.seq).limit(chunk)).all()
            if not rows:
                return
            for row in rows:
                yield _entry(row)
            last = rows[-1].seq

    def verify(self) -> Verification:
        result = Verification()
        expected_seq, prev = 1, GENESIS
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(ledger_entries)
                    .where(ledger_entries.c.seq > last)
                    .order_by(ledger_entries.c.seq)
                    .limit(5000)
                ).all()
            if not rows:
                break
            for row in rows:
                if row.seq != expected_seq:
                    result.problems.append(f"entry {expected_seq} is missing (next is {row.seq})")
                if row.prev_hash != prev:
                    result.problems.append(
                        f"entry {row.seq}: prev_hash does not match entry {row.seq - 1} (removed, reordered or edited)"
                    )
                recomputed = entry_hash(
                    seq=row.seq,
                    recorded_at=row.recorded_at,
                    kind=row.kind,
                    dag_id=row.dag_id,
                    run_id=row.run_id,
                    idempotency_key=row.idempotency_key,
                    payload=row.payload,
                    prev_hash=row.prev_hash,
                )
                if recomputed != row.entry_hash:
                    result.problems.append(f"entry {row.seq}: content does not match its hash (edited)")
                result.entries += 1
                expected_seq, prev = row.seq + 1, row.entry_hash
            last = rows[-1].seq
        with self.engine.connect() as conn:
            head = conn.execute(
                sa.select(ledger_head.c.seq, ledger_head.c.entry_hash).where(ledger_head.c.id == 1)
            ).one()
        if (head.seq, head.entry_hash) != (expected_seq - 1, prev):
            result.problems.append(
                f"the head records entry {head.seq} but the chain ends at entry {expected_seq - 1} (entries removed from the end, or the head edited)"
            )
        return result
