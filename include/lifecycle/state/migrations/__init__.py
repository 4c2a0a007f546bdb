"""The state store's migrations: numbered steps, each frozen as it was written.

A step states its own tables (SQLAlchemy Core objects defined in its module,
never the current ones of ``lifecycle.state.schema``), so that editing a table
today changes no store built by an old step.  ``migrate`` runs the steps not yet
recorded in ``lifecycle_schema_versions`` and is safe to call from every
process.  A new step is a new module ``vNN_<what>.py`` with ``upgrade(conn,
now)``, appended as one line at the end of ``MIGRATIONS``; the current
definitions in ``schema.py`` change with it (``tests/state/test_migrations.py``
replays every step and compares the result with them).
"""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle.state.migrations import (
    v01_initial,
    v02_erasures,
    v03_sharing_register,
    v04_incidents,
    v05_notices,
    v06_one_claim_table,
    v07_regulator_deliveries,
    v08_subject_requests,
    v09_send_rates,
    v10_owed_notices,
)

#: the record of applied steps (created by ``migrate`` itself, before any step)
versions = sa.Table(
    "lifecycle_schema_versions",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.String(32), nullable=False),
)

#: (version, step) in order; a deployed store's record names these versions: never renumber
MIGRATIONS = [
    (1, v01_initial.upgrade),
    (2, v02_erasures.upgrade),
    (3, v03_sharing_register.upgrade),
    (4, v04_incidents.upgrade),
    (5, v05_notices.upgrade),
    (6, v06_one_claim_table.upgrade),
    (7, v07_regulator_deliveries.upgrade),
    (8, v08_subject_requests.upgrade),
    (9, v09_send_rates.upgrade),
    (10, v10_owed_notices.upgrade),
]


def migrate(engine: sa.Engine, *, now: str, until: int | None = None) -> list[int]:
    """Apply the steps not yet recorded (up to version ``until``, all by default); return
    the versions applied.  Each step commits with its record; a step whose record
    another process wrote meanwhile is idempotent and counts as theirs."""
    applied: list[int] = []
    versions.create(engine, checkfirst=True)
    for version, step in MIGRATIONS:
        if until is not None and version > until:
            break
        with engine.begin() as conn:
            done = conn.execute(sa.select(versions.c.version).where(versions.c.version == version)).first()
            if done:
                continue
            step(conn, now)
            try:
                with conn.begin_nested():
                    conn.execute(versions.insert().values(version=version, applied_at=now))
            except sa.exc.IntegrityError:
                continue  # another process applied it meanwhile; the step itself is idempotent
            applied.append(version)
    return applied
