"""Fixtures for the store adapters: one moto S3 server per session, a fresh
bucket per test, reached through an Airflow connection as in production."""

from __future__ import annotations

import uuid

import pytest

from lifecycle.stores.s3 import S3Store
from tests.support.s3 import aws_connection, moto_server


@pytest.fixture(scope="session")
def s3_endpoint():
    with moto_server() as endpoint_url:
        yield endpoint_url


@pytest.fixture
def s3_conn_id(s3_endpoint, monkeypatch):
    """A connection id of its own per test: lifecycle.connections caches one
    client per id, so no test sees another's client (or its event hooks)."""
    conn_id = f"s3_test_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", aws_connection(s3_endpoint))
    return conn_id


def _bucket_name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def s3_store(s3_conn_id):
    """A store over a new, empty, versioned bucket."""
    store = S3Store.from_connection(s3_conn_id, _bucket_name())
    store.client.create_bucket(Bucket=store.bucket)
    store.client.put_bucket_versioning(
        Bucket=store.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    return store


@pytest.fixture
def locked_s3_store(s3_conn_id):
    """A store over a new bucket with Object Lock enabled (hence versioned)."""
    store = S3Store.from_connection(s3_conn_id, _bucket_name())
    store.client.create_bucket(Bucket=store.bucket, ObjectLockEnabledForBucket=True)
    return store
