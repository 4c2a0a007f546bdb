"""Migration 4: the incident register in four tables (frozen as written;
``lifecycle_incident_deliveries`` went in migration 6)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

incidents = sa.Table(
    "lifecycle_incidents",
    metadata,
    sa.Column("incident_id", sa.String(64), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("discovered_at", sa.String(32), nullable=False),
    sa.Column("first_run", sa.String(250), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

incident_runs = sa.Table(
    "lifecycle_incident_runs",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("incident_id", sa.String(64), nullable=False, index=True),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("as_of", sa.String(32), nullable=False),
    sa.Column("facts", sa.Text, nullable=False),
    sa.Column("scope", sa.Text),
    sa.Column("obligations", sa.Text),
    sa.Column("approval", sa.Text),
    sa.Column("figures", sa.Text),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

incident_subjects = sa.Table(
    "lifecycle_incident_subjects",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("subject_id", sa.String(255), primary_key=True),
    sa.Column("incident_id", sa.String(64), nullable=False),
    sa.Column("new", sa.Boolean, nullable=False),
    sa.Column("reach", sa.String(8), nullable=False),
    sa.Column("country", sa.String(8)),
    sa.Column("locale", sa.String(16)),
    sa.Column("batch", sa.Integer, nullable=False),
    sa.Index("ix_lifecycle_incident_subjects_batch", "run_id", "batch"),
    sa.Index("ix_lifecycle_incident_subjects_incident", "incident_id", "subject_id"),
)

incident_deliveries = sa.Table(
    "lifecycle_incident_deliveries",
    metadata,
    sa.Column("incident_id", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(255), primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("batch", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("code", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("message_id", sa.String(255)),
    sa.Index("ix_lifecycle_incident_deliveries_run", "run_id", "batch"),
)


def upgrade(conn: sa.Connection, now: str) -> None:
    metadata.create_all(conn, checkfirst=True)
