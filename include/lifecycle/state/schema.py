"""The state store's tables and their idempotent migration.

The state store is the lifecycle's own SQL system (SQLite by default,
PostgreSQL in production).  Migrations are numbered steps; ``migrate`` runs
the ones not yet recorded and is safe to call from every process.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

schema_versions = sa.Table(
    "lifecycle_schema_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.String(32), nullable=False),
)

ledger_entries = sa.Table(
    "lifecycle_ledger",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),   # ISO text: exact on every backend
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("idempotency_key", sa.String(255), unique=True),
    sa.Column("payload", sa.Text, nullable=False),              # canonical JSON
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)

ledger_head = sa.Table(
    "lifecycle_ledger_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)

legal_holds = sa.Table(
    "lifecycle_legal_holds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subject_id", sa.String(255), nullable=False, index=True),
    sa.Column("datasets", sa.Text),                              # JSON list; NULL = every dataset
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("until", sa.Date),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("removed_at", sa.String(32)),
)

erasures = sa.Table(
    "lifecycle_erasures",
    metadata,
    sa.Column("subject_id", sa.String(255), primary_key=True),
    sa.Column("request_ids", sa.Text, nullable=False),          # JSON list of request primary keys
    sa.Column("requested_at", sa.String(32), nullable=False),   # ISO UTC of the request that counts
    sa.Column("grace_end", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.Text),
    sa.Column("batch", sa.String(255), index=True),
    sa.Column("first_seen", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("completed_at", sa.String(32)),
    sa.Column("certificate", sa.Text),
)

GENESIS = "0" * 64


def _v1_initial(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[ledger_entries, ledger_head, legal_holds], checkfirst=True)
    if conn.execute(sa.select(ledger_head.c.id)).first() is None:
        conn.execute(ledger_head.insert().values(id=1, seq=0, entry_hash=GENESIS))


def _v2_erasures(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[erasures], checkfirst=True)


MIGRATIONS = [(1, _v1_initial), (2, _v2_erasures)]


def migrate(engine: sa.Engine, *, now: str) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied."""
    applied: list[int] = []
    schema_versions.create(engine, checkfirst=True)
    for version, step in MIGRATIONS:
        with engine.begin() as conn:
            done = conn.execute(sa.select(schema_versions.c.version).where(schema_versions.c.version == version)).first()
            if done:
                continue
            step(conn)
            try:
                with conn.begin_nested():
                    conn.execute(schema_versions.insert().values(version=version, applied_at=now))
            except sa.exc.IntegrityError:
                continue    # another process applied it meanwhile; the step itself is idempotent
            applied.append(version)
    return applied
