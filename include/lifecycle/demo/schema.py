"""The demo app's database: "MIC (for Buyer)" of the seed privacy policy.

SQLAlchemy Core, portable to SQLite, PostgreSQL 15 and MariaDB 10.11: bounded
``String`` lengths, integer autoincrement keys, naive-UTC ``DateTime``.
Children reference their parents with real foreign keys (no ``ON DELETE``
actions: the lifecycle engine decides what goes first); foreign-key and
timestamp columns are indexed.

Columns that an anonymization strategy may rewrite are nullable and long
enough for it (an HMAC is 64 hex characters).  ``orders.user_id`` is nullable
so that an anonymized order can outlive its buyer (kept for the statutory
period, no longer linked to a person).

The engine never imports this module: it learns the schema from the catalog.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# MariaDB: InnoDB for foreign keys, utf8mb4 for Chinese names and addresses.
_TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

# BIGINT keys on PostgreSQL and MariaDB; SQLite autoincrements only INTEGER.
Key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _pk() -> sa.Column:
    return sa.Column("id", Key, primary_key=True, autoincrement=True)


def _user_fk(nullable: bool = False) -> sa.Column:
    return sa.Column("user_id", Key, sa.ForeignKey("users.id"), nullable=nullable, index=True)


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=False), nullable=nullable, index=True)


users = sa.Table(
    "users",
    metadata,
    _pk(),
    sa.Column("account", sa.String(64), nullable=False, unique=True),
    sa.Column("email", sa.String(254)),
    sa.Column("name", sa.String(128)),
    sa.Column("company", sa.String(128)),
    sa.Column("industry", sa.String(64)),
    sa.Column("gender", sa.String(16)),
    sa.Column("website", sa.String(255)),
    sa.Column("address", sa.String(255)),
    sa.Column("phone", sa.String(32)),
    sa.Column("fax", sa.String(32)),
    sa.Column("locale", sa.String(16), nullable=False),
    sa.Column("country", sa.String(2)),
    sa.Column("password_hash", sa.String(128)),
    sa.Column("security_answer_hash", sa.String(128)),
    sa.Column("tier", sa.String(16), nullable=False),
    _when("created_at"),
    sa.Column("last_login_ip", sa.String(45)),
    **_TABLE_ARGS,
)

devices = sa.Table(
    "devices",
    metadata,
    _pk(),
    _user_fk(),
    sa.Column("hardware_model", sa.String(64)),
    sa.Column("mac_address", sa.String(17)),
    sa.Column("os", sa.String(32)),
    sa.Column("device_id_type", sa.String(16), nullable=False),  # IMEI, ANDROID_ID, IDFA, OPENUDID, GUID
    sa.Column("device_id", sa.String(64)),
    sa.Column("push_token", sa.String(255)),
    _when("created_at"),
    _when("last_seen_at", nullable=True),
    **_TABLE_ARGS,
)

access_logs = sa.Table(
    "access_logs",
    metadata,
    _pk(),
    _user_fk(),
    sa.Column("ip", sa.String(45)),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("path", sa.String(255)),
    sa.Column("user_agent", sa.String(255)),
    _when("logged_at"),
    **_TABLE_ARGS,
)

favorites = sa.Table(
    "favorites",
    metadata,
    _pk(),
    _user_fk(),
    sa.Column("product_id", sa.BigInteger, nullable=False),
    _when("created_at"),
    **_TABLE_ARGS,
)

inquiries = sa.Table(
    "inquiries",
    metadata,
    _pk(),
    _user_fk(),
    sa.Column("supplier_id", sa.BigInteger, nullable=False),
    sa.Column("subject", sa.String(200)),
    sa.Column("body", sa.Text),
    sa.Column("has_photo", sa.Boolean, nullable=False, default=False),
    _when("created_at"),
    **_TABLE_ARGS,
)

conversations = sa.Table(
    "conversations",
    metadata,
    _pk(),
    _user_fk(),
    sa.Column("supplier_id", sa.BigInteger, nullable=False),
    _when("created_at"),
    **_TABLE_ARGS,
)

chat_messages = sa.Table(
    "chat_messages",
    metadata,
    _pk(),
    # Two hops to the person: chat_messages -> conversations -> users.
    sa.Column("conversation_id", Key, sa.ForeignKey("conversations.id"), nullable=False, index=True),
    sa.Column("sender", sa.String(16), nullable=False),  # buyer | supplier
    sa.Column("body", sa.Text),
    sa.Column("has_attachment", sa.Boolean, nullable=False, default=False),
    _when("sent_at"),
    **_TABLE_ARGS,
)

purchase_demands = sa.Table(
    "purchase_demands",
    metadata,
    _pk(),
    _user_fk(),
    sa.Column("product", sa.String(200), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("needed_by", sa.Date),
    _when("created_at"),
    **_TABLE_ARGS,
)

orders = sa.Table(
    "orders",
    metadata,
    _pk(),
    _user_fk(nullable=True),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("shipping_address", sa.String(255)),
    sa.Column("status", sa.String(16), nullable=False),
    _when("created_at"),
    **_TABLE_ARGS,
)

consents = sa.Table(
    "consents",
    metadata,
    _pk(),
    _user_fk(),
    sa.Column("purpose", sa.String(64), nullable=False),
    _when("granted_at"),
    _when("withdrawn_at", nullable=True),
    **_TABLE_ARGS,
)

account_cancellations = sa.Table(
    "account_cancellations",
    metadata,
    _pk(),
    _user_fk(),
    _when("requested_at"),
    _when("withdrawn_at", nullable=True),
    **_TABLE_ARGS,
)

privacy_requests = sa.Table(
    "privacy_requests",
    metadata,
    _pk(),
    _user_fk(),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("categories", sa.String(255)),
    sa.Column("purpose", sa.String(64)),
    _when("requested_at"),
    **_TABLE_ARGS,
)

# Parents before children: the order to insert in (reverse it to delete).
TABLES: tuple[sa.Table, ...] = tuple(metadata.sorted_tables)


def create_all(engine: sa.Engine) -> None:
    metadata.create_all(engine, checkfirst=True)


def drop_all(engine: sa.Engine) -> None:
    metadata.drop_all(engine, checkfirst=True)
