"""Migration 10: ``lifecycle_incident_subjects.owed`` (frozen as written): a person an earlier
approved run found and did not reach, carried into the run that sends to them (false for
every row written before)."""

from __future__ import annotations

import sqlalchemy as sa

TABLE = "lifecycle_incident_subjects"


def upgrade(conn: sa.Connection, now: str) -> None:
    present = {c["name"] for c in sa.inspect(conn).get_columns(TABLE)}
    if "owed" in present:
        return  # the table was created with it
    column = sa.Column("owed", sa.Boolean, nullable=False, server_default=sa.false())
    ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE {TABLE} ADD COLUMN {ddl}"))
