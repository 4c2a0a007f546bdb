"""Failures are classified once, per store: transient ones retry, everything else fails at once.

Each case provokes the failure for real — a lock another connection holds, a
port nobody listens on, a bucket that does not exist, an S3 endpoint that
answers 503 SlowDown, an SMTP server that refuses — and checks the kind of
error the store raises and what its message names.
"""

from __future__ import annotations

import http.server
import json
import smtplib
import socket
import socketserver
import threading
from contextlib import contextmanager
from datetime import datetime

import pytest
import sqlalchemy as sa

from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.errors import LifecycleError, TerminalStoreError, TransientError, TransientStoreError
from lifecycle.failures import describe, retryable
from lifecycle.stores.contract import KeyRange, Selection
from lifecycle.stores.s3 import S3Store
from lifecycle.stores.sql import SqlStore

CATALOG = Catalog(
    CatalogFile.model_validate(
        {
            "systems": {
                "app": {"type": "sql", "conn_id": "app"},
                "state": {"type": "sql", "conn_id": "state"},
                "media": {"type": "s3", "conn_id": "media", "bucket": "t-media"},
            },
            "categories": {"records": {"title": "Records"}},
            "subject": {"dataset": "people", "key": "id"},
            "datasets": {
                "people": {
                    "system": "app",
                    "table": "people",
                    "primary_key": "id",
                    "created": "created_at",
                    "fields": {"name": {"category": "records", "anonymize": "redact"}},
                },
                "photos": {
                    "system": "media",
                    "prefix": "photos/{subject}/",
                    "created": "last_modified",
                    "category": "records",
                },
            },
        }
    )
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _people(engine) -> sa.Table:
    meta = sa.MetaData()
    people = sa.Table(
        "people",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(40)),
        sa.Column("created_at", sa.DateTime),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            people.insert(), [{"id": i, "name": f"P{i}", "created_at": datetime(2020, 1, 1)} for i in range(1, 4)]
        )
    return people


def _impatient(engine) -> sa.Engine:
    """An engine to the same database that gives up on a lock after a moment."""
    backend = engine.dialect.name
    if backend == "sqlite":
        return sa.create_engine(engine.url, connect_args={"timeout": 0.2})
    if backend == "postgresql":
        return sa.create_engine(engine.url, connect_args={"options": "-c lock_timeout=200"})
    return sa.create_engine(engine.url, connect_args={"init_command": "SET innodb_lock_wait_timeout=1"})


def test_a_lock_held_elsewhere_is_transient(engine):
    people = _people(engine)
    impatient = _impatient(engine)
    store = SqlStore(impatient, CATALOG, "app")
    holder = engine.connect()
    try:
        transaction = holder.begin()
        holder.execute(people.update().where(people.c.id == 1).values(name="x"))  # a row (SQLite: file) lock
        with pytest.raises(TransientStoreError, match="system 'app', dataset 'people': delete rows: ") as caught:
            store.delete("people", Selection(subjects=("1",)))
        assert retryable(caught.value)
        transaction.rollback()
    finally:
        holder.close()
        impatient.dispose()


def test_a_refused_connection_is_transient_and_a_missing_table_terminal(engine):
    people = _people(engine)
    nowhere = sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{_free_port()}/x")
    with pytest.raises(
        TransientStoreError, match="system 'app', dataset 'people': reflect the table: OperationalError"
    ):
        SqlStore(nowhere, CATALOG, "app").count("people")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE people"))
    with pytest.raises(
        TerminalStoreError, match="system 'app', dataset 'people': reflect the table: table 'people' does not exist"
    ):
        SqlStore(engine, CATALOG, "app").count("people")
    del people


def test_a_sql_error_is_terminal_and_its_message_has_no_statement_or_values(engine):
    _people(engine)
    store = SqlStore(engine, CATALOG, "app")
    store.table("people")  # reflected while the column is there
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE people DROP COLUMN name"))
    with pytest.raises(TerminalStoreError) as caught:
        store.anonymize("people", Selection(subjects=("2",)), CATALOG.personal_fields("people"))
    message = str(caught.value)
    assert message.startswith("system 'app', dataset 'people': anonymize rows: ")
    assert "UPDATE" not in message.upper() and "[redacted]" not in message and not retryable(caught.value)


def test_a_duplicate_value_is_named_by_its_constraint_not_its_value(engine):
    people = _people(engine)
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        conn.execute(people.insert().values(id=1, name="secret@example.com"))
    text = describe(caught.value)
    assert "secret" not in text and ("Integrity" in text or "UniqueViolation 23505" in text), text


# ------------------------------------------------------------------------- S3


def test_s3_a_missing_bucket_is_terminal_and_a_refused_endpoint_transient(s3_conn_id):
    missing = S3Store.from_connection(s3_conn_id, "t-no-such-bucket", CATALOG, "media")
    with pytest.raises(
        TerminalStoreError,
        match="system 'media', dataset 'photos': list object versions under 'photos/' "
        "in s3://t-no-such-bucket: NoSuchBucket",
    ):
        missing.count("photos")
    client = _client(f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(TransientStoreError, match="EndpointConnectionError") as caught:
        S3Store(client, "t-media", CATALOG, "media").count("photos")
    assert retryable(caught.value)


def test_s3_a_key_range_is_listed_from_its_common_prefix_and_a_failure_names_the_dataset(s3_conn_id):
    missing = S3Store.from_connection(s3_conn_id, "t-no-such-bucket", CATALOG, "media")
    with pytest.raises(
        TerminalStoreError, match="system 'media', dataset 'photos': list object versions under 'photos/1/'"
    ):
        missing.count("photos", Selection(within=KeyRange("photos/1/a.jpg", "photos/1/b.jpg", 2)))


class _SlowDown(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that is overloaded: every request gets 503 SlowDown, as S3 sends it."""

    def _refuse(self):
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>"
        )
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _refuse

    def log_message(self, *args):
        pass


@contextmanager
def _endpoint(handler):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )


def test_s3_slowdown_and_5xx_are_transient():
    with _endpoint(_SlowDown) as endpoint:
        store = S3Store(_client(endpoint), "t-media", CATALOG, "media")
        with pytest.raises(TransientStoreError, match="SlowDown"):
            store.count("photos")
        with pytest.raises(TransientStoreError, match="SlowDown"):
            store.put_bytes("reports/x.json", b"{}", content_type="application/json")


# ----------------------------------------------------------------------- SMTP


@contextmanager
def _smtp_greeting(reply: bytes):
    """An SMTP server whose greeting is ``reply`` (421: busy, try later; 554: no service for you)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.sendall(reply + b"\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.mark.parametrize(
    "reply, kind", [(b"421 4.3.2 busy, try later", TransientError), (b"554 5.7.1 no service for you", LifecycleError)]
)
def test_smtp_a_4xx_greeting_is_transient_and_a_5xx_terminal(monkeypatch, reply, kind):
    from lifecycle.mail import Mailer

    with _smtp_greeting(reply) as port:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_TEST",
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": port,
                    "extra": {"disable_ssl": True, "disable_tls": True},
                }
            ),
        )
        with pytest.raises(LifecycleError) as caught, Mailer("smtp_test", "privacy@example.com"):
            pass
    assert type(caught.value) is kind and retryable(caught.value) == (kind is TransientError)
    assert isinstance(caught.value.__cause__, smtplib.SMTPConnectError)


def test_smtp_a_refused_connection_is_transient(monkeypatch):
    from lifecycle.mail import Mailer

    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_TEST",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": _free_port(),
                "extra": {"disable_ssl": True, "disable_tls": True},
            }
        ),
    )
    with pytest.raises(TransientError, match="SMTP connection 'smtp_test'"), Mailer("smtp_test", "privacy@example.com"):
        pass


# ------------------------------------------------------------------ the task


def test_a_task_retries_only_what_is_transient():
    from airflow.sdk.exceptions import AirflowFailException

    from lifecycle.runs import terminal_errors

    def failing(exc):
        @terminal_errors
        def task():
            raise exc

        return task

    for deterministic in (
        KeyError("dataset"),
        AttributeError("'NoneType' object has no attribute 'payload'"),
        TerminalStoreError("app", "people", "count rows", "ProgrammingError: no such column"),
    ):
        with pytest.raises(
            AirflowFailException,
            match=type(deterministic).__name__
            if not isinstance(deterministic, LifecycleError)
            else "system 'app', dataset 'people': count rows",
        ):
            failing(deterministic)()
    for passing in (
        TransientStoreError("app", "people", "count rows", "OperationalError: server closed"),
        TransientError("SMTP connection failed"),
        ConnectionRefusedError(111, "refused"),
    ):
        with pytest.raises(type(passing)):
            failing(passing)()
