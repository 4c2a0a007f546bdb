"""The base of ``S3Store``: one bucket through one client, its failures turned into store errors."""

from __future__ import annotations

from typing import Self

from botocore.exceptions import BotoCoreError, ClientError

from lifecycle.connections import s3_client
from lifecycle.errors import store_failures
from lifecycle.stores.s3.failures import describe, transient


class Bucket:
    """A bucket, its client, and the catalog that names its object datasets."""

    def __init__(self, client, bucket: str, catalog=None, system: str | None = None):
        self.client = client
        self.bucket = bucket
        self.catalog = catalog
        self.system = system or bucket

    @classmethod
    def from_connection(cls, conn_id: str, bucket: str, catalog=None, system: str | None = None) -> Self:
        """A store whose credentials and endpoint come from an Airflow connection."""
        return cls(s3_client(conn_id), bucket, catalog, system)

    def _failures(self, dataset: str | None, purpose: str):
        return store_failures(
            self.system,
            dataset,
            f"{purpose} in s3://{self.bucket}",
            catching=(ClientError, BotoCoreError, OSError),
            transient=transient,
            describe=describe,
        )
