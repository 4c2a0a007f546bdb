"""Lake systems of catalog.yaml: ``iceberg`` and ``delta`` tables (SPEC §3, issue 27).

A lake dataset is declared as a SQL table is (``table``, ``primary_key``,
``subject``, ``created``, ``fields``); what differs is the system: where the
table's metadata and files live, and ``purge_after``, how long after the
commit that deleted or anonymized rows the files and snapshots still holding
them are removed for good.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from lifecycle.durations import Duration
from lifecycle.shapes import exactly_one

DEFAULT_PURGE_AFTER = Duration.parse("7d")


def _purge_duration(value):
    """``0`` (at once) or a duration."""
    if value in (0, "0"):
        return Duration("0", seconds=0)
    return Duration.parse(value)


PurgeAfter = Annotated[Duration, BeforeValidator(_purge_duration), PlainSerializer(str)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_s3(location: str) -> bool:
    return location.startswith(("s3://", "s3a://"))


class IcebergCatalog(_Model):
    """The SQL catalog holding the tables' metadata pointers: an Airflow connection to a SQL
    database (``conn_id``: SQLite or PostgreSQL), or a SQLite file (``path``, e.g. under var/)."""

    conn_id: str | None = None
    path: str | None = None
    name: str = "lifecycle"  # the catalog name its rows carry (one database may hold several)

    @model_validator(mode="after")
    def _one_place(self):
        message = "catalog needs either conn_id (a SQL connection) or path (a SQLite file), not both"
        return exactly_one(self, "conn_id", "path", message)


class _LakeSystem(_Model):
    conn_id: str | None = None  # an aws connection (endpoint_url, region_name in its extra): S3 locations
    purge_after: PurgeAfter = DEFAULT_PURGE_AFTER
    pool_slots: Annotated[int, Field(gt=0, le=128)] = 4
    description: str | None = None

    def _needs_connection(self, key: str, location: str):
        if is_s3(location) and not self.conn_id:
            raise ValueError(f"{key} {location!r} is on S3: name its aws connection in conn_id")
        return self


class IcebergSystem(_LakeSystem):
    """Apache Iceberg tables (pyiceberg): ``table`` of a dataset is ``namespace.table``."""

    type: Literal["iceberg"]
    catalog: IcebergCatalog
    warehouse: str  # s3://bucket/prefix or a local folder: where new tables' files go

    @model_validator(mode="after")
    def _warehouse(self):
        return self._needs_connection("warehouse", self.warehouse)


class DeltaSystem(_LakeSystem):
    """Delta Lake tables (deltalake, delta-rs): ``table`` of a dataset is a path under ``location``."""

    type: Literal["delta"]
    location: str  # s3://bucket/prefix or a local folder

    @model_validator(mode="after")
    def _location(self):
        return self._needs_connection("location", self.location)


LAKE_TYPES = ("iceberg", "delta")
