"""Airflow connections -> SQLAlchemy engines and boto3 clients.

The one place that reads connections.  Credentials never come from the YAML:
a system names a ``conn_id`` and the connection (``AIRFLOW_CONN_<ID>`` in URI
or JSON form, or any Airflow secrets backend) supplies the rest.
"""

from __future__ import annotations

import functools
import threading
from datetime import datetime

import sqlalchemy as sa

from lifecycle.errors import LifecycleError

# Airflow conn_type -> SQLAlchemy dialect+driver used when the connection's
# type names no driver of its own.
_SQL_DRIVERS = {
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}


def get_connection(conn_id: str):
    """The Airflow connection ``conn_id`` (inside or outside a task)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise LifecycleError(
            f"connection {conn_id!r} is not defined: set AIRFLOW_CONN_{conn_id.upper()} or add it to Airflow "
            "(`python -m lifecycle.devenv env` prints the embedded defaults)"
        ) from None


def sqlalchemy_url(conn) -> sa.URL:
    """A SQLAlchemy URL for an Airflow connection of a SQL system.

    An explicit ``sqlalchemy_url`` in the extra wins; otherwise the URL is
    built from the connection's fields (``sqlite`` keeps its path in host).
    """
    extra = conn.extra_dejson
    if extra.get("sqlalchemy_url"):
        return sa.make_url(extra["sqlalchemy_url"])
    conn_type = (conn.conn_type or "").lower()
    drivername = conn_type if "+" in conn_type else _SQL_DRIVERS.get(conn_type)
    if drivername is None:
        raise ValueError(
            f"connection {conn.conn_id!r}: conn_type {conn.conn_type!r} is not a SQL "
            f"database; use one of {sorted(_SQL_DRIVERS)} or a 'dialect+driver' URI"
        )
    if drivername == "sqlite":
        return sa.URL.create("sqlite", database=conn.host or conn.schema or None)
    return sa.URL.create(
        drivername,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )


_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def sql_engine(conn_id: str) -> sa.Engine:
    """One pooled engine per connection id and process."""
    with _engines_lock:
        if conn_id not in _engines:
            _engines[conn_id] = engine_for(sqlalchemy_url(get_connection(conn_id)))
        return _engines[conn_id]


def forget() -> None:
    """Close every engine and drop every client made so far: the next use reads the
    connections again (a process whose connections changed; tests)."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()
    s3_client.cache_clear()


def engine_for(url: sa.URL) -> sa.Engine:
    """An engine as the lifecycle uses one.

    SQLite waits up to a minute for a lock another process holds and enforces
    foreign keys.  Elsewhere
    a pooled connection is checked before use (a long task outlives idle
    connections).  psycopg2 sends an UPDATE executemany in pages of 100
    statements (``execute_batch``), not one round trip per row.
    """
    kwargs: dict = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 60}
    else:
        kwargs["pool_pre_ping"] = True
    if url.get_driver_name() == "psycopg2":
        kwargs["executemany_mode"] = "values_plus_batch"
    engine = sa.create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_foreign_keys)
    if url.get_backend_name() in ("mysql", "mariadb"):
        sa.event.listen(engine, "connect", _mysql_utc)
    return engine


def _mysql_utc(dbapi_connection, _record) -> None:
    """MariaDB converts ``TIMESTAMP`` values to and from the session's time zone: make it UTC, as
    every instant the lifecycle reads or binds is (``stores.sql.times``)."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")


def _sqlite_foreign_keys(dbapi_connection, _record) -> None:
    """SQLite enforces declared foreign keys (and their ON DELETE) only when asked, per connection:
    ask, so a schema's cascades and SET NULLs happen as they do on the other databases."""
    dbapi_connection.execute("PRAGMA foreign_keys=ON")


@functools.cache
def s3_client(conn_id: str):
    """A boto3 S3 client for an ``aws`` connection; ``endpoint_url`` and
    ``region_name`` may come from the connection's extra."""
    from botocore.config import Config

    conn = get_connection(conn_id)
    extra = conn.extra_dejson
    with _client_lock:  # a boto3 session is not safe to make clients from in two threads at once
        return _boto3_session().client(
            "s3",
            aws_access_key_id=conn.login or None,
            aws_secret_access_key=conn.password or None,
            region_name=extra.get("region_name") or "us-east-1",
            endpoint_url=extra.get("endpoint_url") or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, signature_version="s3v4"),
        )


_client_lock = threading.Lock()


@functools.cache
def _boto3_session():
    """The session S3 clients are made from, its responses' timestamps parsed by the standard library."""
    import boto3
    import botocore.session

    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
    return boto3.Session(botocore_session=session)


def _timestamp(value) -> datetime:
    """A response timestamp: S3's ISO 8601 (``LastModified`` of every listed version) by
    ``datetime.fromisoformat`` (2.5 µs), anything else by botocore's own parser, which goes
    through dateutil (~100 µs; a listing parses one per version)."""
    from botocore.utils import parse_timestamp

    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    return parse_timestamp(value)


def secret(variable: str) -> bytes:
    """A key from the Airflow variable ``variable`` (``AIRFLOW_VAR_<NAME>`` or a
    secrets backend); never from the YAML."""
    from airflow.sdk import Variable

    try:
        value = Variable.get(variable)
    except Exception as exc:  # the SDK raises its own not-found types
        raise LifecycleError(f"Airflow variable {variable!r} is not set; it holds a key the lifecycle needs") from exc
    if not value or len(value) < 16:
        raise LifecycleError(f"Airflow variable {variable!r} is shorter than 16 characters; use a long random key")
    return value.encode("utf-8")


def hmac_key(catalog) -> bytes:
    """The key of every keyed hash of subject ids: the variable ``anonymization.hmac_key_variable``."""
    return secret(catalog.model.anonymization.hmac_key_variable)


def connection_secret(conn_id: str) -> bytes:
    """A key kept as the password of the Airflow connection ``conn_id``
    (``AIRFLOW_CONN_<ID>`` or a secrets backend); never from the YAML."""
    try:
        conn = get_connection(conn_id)
    except Exception as exc:  # the SDK raises its own not-found types
        raise LifecycleError(
            f"Airflow connection {conn_id!r} is not set; its password holds a key the lifecycle needs"
        ) from exc
    value = conn.password or ""
    if len(value) < 16:
        raise LifecycleError(
            f"Airflow connection {conn_id!r}: the password (the key) is shorter than 16 characters; use a long random key"
        )
    return value.encode("utf-8")
