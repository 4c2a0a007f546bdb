"""Migration 9: the next start a mail may take under one rate, per scope (frozen as written)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

send_rates = sa.Table(
    "lifecycle_send_rates",
    metadata,
    sa.Column("scope", sa.String(255), primary_key=True),
    sa.Column("next_start_us", sa.BigInteger, nullable=False),
)


def upgrade(conn: sa.Connection, now: str) -> None:
    metadata.create_all(conn, checkfirst=True)
