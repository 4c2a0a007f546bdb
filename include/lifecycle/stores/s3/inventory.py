"""Object datasets planned from S3 Inventory instead of listing the bucket.

An inventory configuration that lists every object version writes, once a
day, ``<destination prefix>/<source bucket>/<configuration id>/<YYYY-MM-DDTHH-MMZ>/manifest.json``
(with ``manifest.checksum``, its MD5) naming gzipped CSV files whose columns
``fileSchema`` lists (``Bucket, Key, VersionId, IsLatest, IsDeleteMarker,
Size, LastModifiedDate, …``; keys URL-encoded), or Parquet files (the same
columns in snake case, values typed, keys as they are).  The newest manifest not
older than ``max_age`` is read: a few requests for the whole dataset, where
listing costs one request per 1,000 versions and the server's time per entry.

An inventory is a day old: what it says is a candidate only.  Before a key
is deleted its versions are listed again, that key alone (``confirm``), and
the selection is judged on what S3 says now; verification lists the bucket.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import re
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import NamedTuple

from lifecycle.connections import s3_client
from lifecycle.errors import TerminalStoreError
from lifecycle.stores.s3.versions import ObjectVersion

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "LastModifiedDate")
CONFIRM_THREADS = 8


class InventoryReading:
    """``S3Store``'s reading of an object dataset's inventory, and the confirmation of candidates."""

    requests_made = 0  # requests to S3 for inventories and confirmations (for the benchmark's count)

    def _inventory_spec(self, dataset: str | None):
        if dataset is None or self.catalog is None:
            return None
        return self.catalog.dataset(dataset).inventory

    def _from_inventory(self, dataset: str, now: datetime) -> dict[str, list[ObjectVersion]] | None:
        """The dataset's versions by key from its newest usable inventory; None: none is (list instead)."""
        spec = self._inventory_spec(dataset)
        system = self.catalog.systems[spec.system]
        client = s3_client(system.conn_id)
        with self._failures(dataset, f"read the S3 Inventory under s3://{system.bucket}/{spec.prefix}"):
            manifest = self._newest_manifest(client, system.bucket, dataset, spec, now)
            if manifest is None:
                return None
            return self._inventory_versions(client, system.bucket, dataset, manifest)

    def _newest_manifest(self, client, bucket: str, dataset: str, spec, now: datetime) -> dict | None:
        """The newest dated folder's manifest, its checksum checked; None when there is none younger than max_age."""
        folders = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=spec.prefix, Delimiter="/"):
            self.requests_made += 1
            folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        dated = sorted((f for f in folders if _folder_time(f) is not None), key=_folder_time, reverse=True)
        if not dated or _folder_time(dated[0]) < spec.max_age.before(now):
            log.warning(
                "no S3 Inventory younger than %s under s3://%s/%s: listing the bucket instead",
                spec.max_age,
                bucket,
                spec.prefix,
            )
            return None
        folder = dated[0]
        body = client.get_object(Bucket=bucket, Key=f"{folder}manifest.json")["Body"].read()
        checksum = client.get_object(Bucket=bucket, Key=f"{folder}manifest.checksum")["Body"].read()
        self.requests_made += 2
        if hashlib.md5(body).hexdigest() != checksum.decode().strip().lower():
            raise refuse(
                self.system, dataset, f"s3://{bucket}/{folder}manifest.json does not match its manifest.checksum"
            )
        manifest = json.loads(body)
        if manifest.get("sourceBucket") != self.bucket:
            raise refuse(
                self.system,
                dataset,
                f"s3://{bucket}/{folder}manifest.json lists bucket {manifest.get('sourceBucket')!r}, not {self.bucket!r}",
            )
        file_format = manifest.get("fileFormat")
        if file_format not in FORMATS:
            raise refuse(
                self.system,
                dataset,
                f"s3://{bucket}/{folder}: inventory format {file_format!r}; {' and '.join(FORMATS)} are read",
            )
        schema = _columns(file_format, manifest.get("fileSchema", ""))
        missing = [c for c in REQUIRED_COLUMNS if c not in schema]
        if missing:
            raise refuse(
                self.system,
                dataset,
                f"s3://{bucket}/{folder}: the inventory lacks {missing}; configure it with every object version",
            )
        log.info("S3 Inventory %s: %d file(s)", folder, len(manifest.get("files", [])))
        return {**manifest, "columns": schema}

    def _inventory_versions(self, client, bucket: str, dataset: str, manifest: dict) -> dict[str, list[ObjectVersion]]:
        prefix = self.catalog.static_prefix(dataset)
        read = _parquet_rows if manifest["fileFormat"] == "Parquet" else _csv_rows
        groups: dict[str, list[ObjectVersion]] = {}
        for file in manifest.get("files", []):
            self.requests_made += 1
            body = client.get_object(Bucket=bucket, Key=file["key"])["Body"]
            for row in read(body, manifest["columns"]):
                if row.bucket != self.bucket or not row.key.startswith(prefix):
                    continue
                groups.setdefault(row.key, []).append(
                    ObjectVersion(
                        key=row.key,
                        version_id=row.version_id or "null",
                        last_modified=row.last_modified,
                        is_delete_marker=row.is_delete_marker,
                        is_latest=row.is_latest,
                        size=row.size or 0,
                    )
                )
        return groups

    def confirm(self, dataset: str, listed: dict[str, list[ObjectVersion]]) -> dict[str, list[ObjectVersion]]:
        """What S3 holds now for the keys an inventory ``listed``, one request a key, side by side:
        ``HeadObject`` where the inventory says the newest is a version — the same version id still
        newest confirms the inventory's versions; anything else (a newer version, a delete marker,
        nothing) and that key's versions are listed alone.  A key with nothing left is absent."""

        def now_of(key: str) -> list[ObjectVersion]:
            versions = listed[key]
            newest = max(versions, key=lambda v: v.last_modified)
            if not newest.is_delete_marker and self._newest_version_id(key, dataset) == newest.version_id:
                return versions
            self.requests_made += 1
            return [v for v in self.list_versions(key, dataset=dataset, last=key) if v.key == key]

        keys = sorted(listed)
        with ThreadPoolExecutor(CONFIRM_THREADS, thread_name_prefix="s3-confirm") as pool:
            found = dict(zip(keys, pool.map(now_of, keys), strict=True))
        return {key: versions for key, versions in found.items() if versions}

    def _newest_version_id(self, key: str, dataset: str) -> str | None:
        """The id of the key's current version (None: its newest is a delete marker, or it is gone)."""
        from botocore.exceptions import ClientError

        self.requests_made += 1
        with self._failures(dataset, "read an object's current version"):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=key).get("VersionId") or "null"
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "405"):
                    return None
                raise


class _Row(NamedTuple):
    """One version as an inventory file lists it, in either format."""

    bucket: str
    key: str
    version_id: str | None
    is_latest: bool
    is_delete_marker: bool
    size: int | None
    last_modified: datetime


# The manifest's Parquet schema names the columns in snake case; CSV's are these
PARQUET_COLUMNS = {
    "bucket": "Bucket",
    "key": "Key",
    "version_id": "VersionId",
    "is_latest": "IsLatest",
    "is_delete_marker": "IsDeleteMarker",
    "size": "Size",
    "last_modified_date": "LastModifiedDate",
}
FORMATS = ("CSV", "Parquet")


def _columns(file_format: str, schema: str) -> list[str]:
    """The columns a manifest's ``fileSchema`` names, as CSV spells them: ``Bucket, Key, …``
    for CSV; ``message s3.inventory { required binary bucket (UTF8); … }`` for Parquet."""
    if file_format == "CSV":
        return [c.strip() for c in schema.split(",")]
    names = re.findall(r"(?:required|optional)\s+\w+\s+(\w+)", schema)
    return [PARQUET_COLUMNS.get(name, name) for name in names]


def _csv_rows(body, columns: list[str]) -> Iterator[_Row]:
    """A gzipped CSV file's rows (keys URL-encoded, every value text)."""
    at = {name: columns.index(name) for name in (*REQUIRED_COLUMNS, "Size")}
    with gzip.GzipFile(fileobj=body) as unzipped:
        for row in csv.reader(io.TextIOWrapper(unzipped, encoding="utf-8", newline="")):
            yield _Row(
                bucket=row[at["Bucket"]],
                key=urllib.parse.unquote_plus(row[at["Key"]]),
                version_id=row[at["VersionId"]],
                is_latest=row[at["IsLatest"]].lower() == "true",
                is_delete_marker=row[at["IsDeleteMarker"]].lower() == "true",
                size=int(row[at["Size"]] or 0) if at["Size"] < len(row) else 0,
                last_modified=_instant(row[at["LastModifiedDate"]]),
            )


def _parquet_rows(body, columns: list[str]) -> Iterator[_Row]:
    """A Parquet file's rows (keys as they are, values typed), read a row group at a time."""
    import pyarrow.parquet as pq

    wanted = {snake: csv_name for snake, csv_name in PARQUET_COLUMNS.items() if csv_name in columns}
    parquet = pq.ParquetFile(io.BytesIO(body.read()))
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group, columns=list(wanted))
        for row in table.to_pylist():
            modified = row["last_modified_date"]
            yield _Row(
                bucket=row["bucket"],
                key=row["key"],
                version_id=row["version_id"],
                is_latest=bool(row["is_latest"]),
                is_delete_marker=bool(row["is_delete_marker"]),
                size=row.get("size"),
                last_modified=modified.replace(tzinfo=UTC) if modified.tzinfo is None else modified.astimezone(UTC),
            )


def _folder_time(folder: str) -> datetime | None:
    """The time a ``…/YYYY-MM-DDTHH-MMZ/`` folder is named after (None for other folders, e.g. ``data/``)."""
    name = folder.rstrip("/").rsplit("/", 1)[-1]
    try:
        return datetime.strptime(name, "%Y-%m-%dT%H-%MZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def refuse(system: str, dataset: str, reason: str) -> TerminalStoreError:
    return TerminalStoreError(system, dataset, "read the S3 Inventory", reason)
