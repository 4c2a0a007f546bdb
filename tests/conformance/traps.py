"""Two traps another application's schema sets, as dimensions of the generator.

* **Time column types.**  Every time column of a world (``created``, the requests'
  ``requested_at`` / ``withdrawn_at``, the consents' ``granted_at`` / ``withdrawn_at``)
  has one kind: ``naive`` (timestamp without a zone), ``aware`` (PostgreSQL
  ``timestamptz``, MariaDB ``TIMESTAMP``), or epoch numbers (``epoch_seconds``,
  ``epoch_milliseconds``, declared in the catalog's ``times``).  The world keeps
  naive UTC datetimes; ``stored`` writes them as the column holds them and
  ``canonical`` reads them back, so the oracle never sees the difference.
* **A table the lifecycle does not erase** (``personal: false``, or not in the
  catalog) with a foreign key onto a personal table of an erasure world.  Without
  an ``ON DELETE`` that lets rows go, the preflight refuses and nothing changes;
  with ``CASCADE`` / ``SET NULL`` the database removes or unlinks its rows as the
  parent rows go.

Like the rest of the generator, nothing here imports the engine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

TIME_KINDS = ["naive", "aware", "epoch_seconds", "epoch_milliseconds"]
SCALE = {"epoch_seconds": 1, "epoch_milliseconds": 1000}
ON_DELETE = {"noaction": None, "cascade": "CASCADE", "setnull": "SET NULL"}


def time_kind(seed: int) -> str:
    """The world's time column kind (a generator of its own: the other choices stay as they were)."""
    return random.Random(f"time-kind-{seed}").choice(TIME_KINDS)


def time_type(kind: str, backend: str) -> sa.types.TypeEngine:
    if kind in SCALE:
        return sa.BigInteger()
    if kind == "aware" and backend == "postgresql":
        return postgresql.TIMESTAMP(timezone=True)
    if kind == "aware" and backend == "mariadb":
        return mysql.TIMESTAMP()
    return sa.DateTime()


def time_columns(t) -> list[str]:
    """The columns of a world table that hold instants."""
    found = [t.created] if t.created else []
    found += [f.column for f in t.fields if f.kind == "dt"]
    if t.role == "consents":
        found.append("withdrawn_at")
    return found


def stored(kind: str, value):
    """A world value (naive UTC datetime) as the column holds it."""
    if value is None or not isinstance(value, datetime):
        return value
    if kind in SCALE:
        return round(value.replace(tzinfo=UTC).timestamp() * SCALE[kind])
    if kind == "aware":
        return value.replace(tzinfo=UTC)
    return value


def canonical(kind: str, value):
    """A value read back from a time column as the world keeps it (naive UTC datetime)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if kind in SCALE:
        return datetime.fromtimestamp(int(value) / SCALE[kind], UTC).replace(tzinfo=None)
    return value


def shared(kind: str, backend: str, value):
    """A world value as a recipient receives it: as the column holds it (only PostgreSQL's keeps a zone)."""
    if kind == "aware" and backend != "postgresql":
        return value
    return stored(kind, value)


def partitions_allowed(kind: str, backend: str) -> bool:
    """Range partitions on ``created``: timestamps without a zone, or PostgreSQL's with one."""
    return kind == "naive" or (kind == "aware" and backend == "postgresql")


# ---------------------------------------------------------------- a table outside the lifecycle


@dataclass
class Outside:
    """A table the lifecycle does not erase, whose ``ref`` column points at ``parent``'s key."""

    table: str
    parent: str  # dataset
    on_delete: str  # noaction | cascade | setnull
    cataloged: bool  # personal: false in the catalog, else not named at all
    rows: list[dict] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.on_delete == "noaction"

    def dataset(self) -> dict:
        return {
            "system": "app",
            "table": self.table,
            "primary_key": "id",
            "personal": False,
            "fields": {"ref": {"personal": False}},
        }


def outside(world) -> Outside | None:
    """About half the worlds get one, onto the subject table or a personal chain table."""
    rng = random.Random(f"outside-{world.seed}")
    if rng.random() < 0.5:
        return None
    parents = [world.subject.dataset] + sorted(t.dataset for t in world.tables.values() if t.role == "chain")
    on_delete = rng.choice(["noaction", "cascade", "setnull"])
    name = rng.choice(["support_tickets", "AuditTrail", "referrals"])
    # a table the catalog does not name is refused anyway (scan lists it): only a refusal can be checked there
    cataloged = on_delete != "noaction" or rng.random() < 0.5
    return Outside(name, rng.choice(parents), on_delete, cataloged)


def outside_rows(world, out: Outside) -> None:
    rng = random.Random(f"outside-rows-{world.seed}")
    parent = world.tables[out.parent]
    keys = [r[parent.pk] for r in parent.rows]
    out.rows = [{"id": n, "ref": rng.choice(keys) if keys else None} for n in range(1, 9)]


def outside_table(out: Outside, meta: sa.MetaData, tables: dict, world, schema: str | None) -> sa.Table:
    parent = tables[out.parent]
    pk = world.tables[out.parent].pk
    return sa.Table(
        out.table,
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ref", parent.c[pk].type, nullable=True),
        sa.ForeignKeyConstraint(["ref"], [parent.c[pk]], ondelete=ON_DELETE[out.on_delete]),
        schema=schema,
    )


def expected_outside(out: Outside, remaining_parent_keys: set) -> dict:
    """The outside table's rows once the parent rows not in ``remaining_parent_keys`` are gone."""
    rows = {}
    for row in out.rows:
        if row["ref"] is None or row["ref"] in remaining_parent_keys:
            rows[row["id"]] = dict(row)
        elif out.on_delete == "setnull":
            rows[row["id"]] = {**row, "ref": None}
        elif out.on_delete == "noaction":
            rows[row["id"]] = dict(row)
    return rows
