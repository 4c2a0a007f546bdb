"""The state store's migrations: numbered steps, each frozen as it was written.

A step states its own tables as data, in its changelog ``vNN_<what>.yaml``
(columns and indexes, carried out by the one applier ``changelog``), never by
reading the current ones of ``lifecycle.state.schema``, so that editing a table
today changes no store built by an old step.  A step that also moves rows has a
module of the same name whose ``upgrade(conn, now)`` applies its changelog
and moves them.  ``migrate`` runs the steps not yet recorded in
``lifecycle_schema_versions`` and is safe to call from every process.  A new
step is a new changelog (and module, where rows move), appended as one line at
the end of ``MIGRATIONS``; the current definitions in ``schema.py`` change with
it (``tests/state/test_migrations.py`` replays every step and compares the
result with them).
"""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle.state.migrations import v06_one_claim_table, v07_regulator_deliveries
from lifecycle.state.migrations.changelog import step

#: the record of applied steps (created by ``migrate`` itself, before any step)
versions = sa.Table(
    "lifecycle_schema_versions",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.String(32), nullable=False),
)

#: (version, step) in order; a deployed store's record names these versions: never renumber
MIGRATIONS = [
    (1, step("v01_initial")),
    (2, step("v02_erasures")),
    (3, step("v03_sharing_register")),
    (4, step("v04_incidents")),
    (5, step("v05_notices")),
    (6, v06_one_claim_table.upgrade),
    (7, v07_regulator_deliveries.upgrade),
    (8, step("v08_subject_requests")),
    (9, step("v09_send_rates")),
    (10, step("v10_owed_notices")),
]


def migrate(engine: sa.Engine, *, now: str, until: int | None = None) -> list[int]:
    """Apply the steps not yet recorded (up to version ``until``, all by default); return
    the versions applied.  Each step commits with its record; a step whose record
    another process wrote meanwhile is idempotent and counts as theirs."""
    applied: list[int] = []
    versions.create(engine, checkfirst=True)
    for version, upgrade in MIGRATIONS:
        if until is not None and version > until:
            break
        with engine.begin() as conn:
            done = conn.execute(sa.select(versions.c.version).where(versions.c.version == version)).first()
            if done:
                continue
            upgrade(conn, now)
            try:
                with conn.begin_nested():
                    conn.execute(versions.insert().values(version=version, applied_at=now))
            except sa.exc.IntegrityError:
                continue  # another process applied it meanwhile; the step itself is idempotent
            applied.append(version)
    return applied
