"""Where a lake system's files live: S3 through an Airflow ``aws`` connection, or a local
folder.  One ``Storage`` per system gives pyarrow a filesystem, pyiceberg its FileIO
properties and delta-rs its storage options, all from the same connection."""

from __future__ import annotations

import functools
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from lifecycle.catalog.lake import is_s3


@dataclass(frozen=True)
class StoredFile:
    path: str  # the filesystem's own path: bucket/key on S3, absolute on a local disk
    size: int
    modified: datetime  # tz-aware UTC


@dataclass(frozen=True)
class Storage:
    """A lake system's file storage.  ``endpoint``, ``region``, ``key`` and ``secret`` come from
    the system's aws connection (None for a local folder)."""

    endpoint: str | None = None
    region: str = "us-east-1"
    key: str | None = None
    secret: str | None = None
    s3: bool = False

    @classmethod
    def for_location(cls, location: str, conn_id: str | None) -> Storage:
        if not is_s3(location):
            return cls()
        from lifecycle.connections import get_connection

        conn = get_connection(conn_id)
        extra = conn.extra_dejson
        return cls(
            endpoint=extra.get("endpoint_url") or None,
            region=extra.get("region_name") or "us-east-1",
            key=conn.login or None,
            secret=conn.password or None,
            s3=True,
        )

    # ------------------------------------------------------------- libraries

    def filesystem(self) -> pafs.FileSystem:
        """One filesystem per storage and process (an S3 filesystem is costly to make)."""
        return _filesystem(self)

    def _make_filesystem(self) -> pafs.FileSystem:
        if not self.s3:
            return pafs.LocalFileSystem()
        scheme, _, host = (self.endpoint or "").partition("://")
        return pafs.S3FileSystem(
            access_key=self.key,
            secret_key=self.secret,
            region=self.region,
            endpoint_override=host or None,
            scheme=scheme or "https",
        )

    def iceberg_properties(self) -> dict[str, str]:
        if not self.s3:
            return {}
        props = {"s3.region": self.region}
        for name, value in (("s3.endpoint", self.endpoint), ("s3.access-key-id", self.key)):
            if value:
                props[name] = value
        if self.secret:
            props["s3.secret-access-key"] = self.secret
        return props

    def delta_options(self) -> dict[str, str]:
        """delta-rs storage options.  Without a locking provider a rename on S3 is unsafe with
        two writers; delta-rs's conflict check still refuses a commit on a stale version."""
        if not self.s3:
            return {}
        options = {"AWS_REGION": self.region, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
        if self.endpoint:
            options["AWS_ENDPOINT_URL"] = self.endpoint
            options["AWS_ALLOW_HTTP"] = "true" if self.endpoint.startswith("http://") else "false"
        if self.key:
            options["AWS_ACCESS_KEY_ID"] = self.key
        if self.secret:
            options["AWS_SECRET_ACCESS_KEY"] = self.secret
        return options

    # ----------------------------------------------------------------- files

    @staticmethod
    def path(uri: str) -> str:
        """A URI as the filesystem names it: ``s3://b/k`` -> ``b/k``, ``file:///x`` -> ``/x``."""
        for scheme in ("s3://", "s3a://", "file://"):
            if uri.startswith(scheme):
                return uri[len(scheme) :]
        return str(Path(uri).resolve()) if not uri.startswith("/") else uri

    def files(self, location: str) -> list[StoredFile]:
        """Every file under ``location`` (recursively); none if the folder does not exist."""
        fs, root = self.filesystem(), self.path(location).rstrip("/")
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        return [
            StoredFile(info.path, info.size or 0, _utc(info.mtime)) for info in infos if info.type == pafs.FileType.File
        ]

    def remove(self, paths: list[str]) -> None:
        fs = self.filesystem()
        for path in paths:
            try:
                fs.delete_file(path)
            except FileNotFoundError:  # removed by an earlier, interrupted purge
                pass

    def read_columns(self, path: str, columns: tuple[str, ...]) -> pa.Table | None:
        """The columns a Parquet file has of ``columns``; None if it lacks the first."""
        fs = self.filesystem()
        with fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            names = parquet.schema_arrow.names
            if columns[0] not in names:
                return None
            return parquet.read(columns=[c for c in dict.fromkeys(columns) if c in names])


@functools.lru_cache(maxsize=16)
def _filesystem(storage: Storage) -> pafs.FileSystem:
    return storage._make_filesystem()


def _utc(value) -> datetime:
    if value is None:
        return datetime.min.replace(tzinfo=UTC)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def under(root: str, name: str) -> str:
    return posixpath.join(root.rstrip("/"), name)
