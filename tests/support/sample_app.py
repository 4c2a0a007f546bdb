"""The app tables of the sample configuration (tests/config/sample.py), shared
by the lifecycle tests: a person, their access logs, conversations with
two-hop chat messages, and orders.  The contact columns beyond e-mail and
name are nullable; tests that do not use them leave them empty."""

from __future__ import annotations

import sqlalchemy as sa

meta = sa.MetaData()
users = sa.Table(
    "users",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(255)),
    sa.Column("name", sa.String(100)),
    sa.Column("phone", sa.String(40)),
    sa.Column("address", sa.String(200)),
    sa.Column("country", sa.String(2)),
    sa.Column("locale", sa.String(16)),
    sa.Column("password_hash", sa.String(128)),
    sa.Column("tier", sa.String(20)),
    sa.Column("created_at", sa.DateTime),
)
access_logs = sa.Table(
    "access_logs",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),
    sa.Column("ip", sa.String(45)),
    sa.Column("path", sa.String(200)),
    sa.Column("logged_at", sa.DateTime),
)
conversations = sa.Table(
    "conversations",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),
    sa.Column("created_at", sa.DateTime),
)
chat_messages = sa.Table(
    "chat_messages",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("conversation_id", sa.Integer, sa.ForeignKey("conversations.id")),
    sa.Column("body", sa.Text),
    sa.Column("sent_at", sa.DateTime),
)
orders = sa.Table(
    "orders",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),
    sa.Column("address", sa.String(200)),
    sa.Column("amount", sa.Integer),
    sa.Column("created_at", sa.DateTime),
)
