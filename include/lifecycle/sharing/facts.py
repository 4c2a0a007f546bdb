"""What one sharing step hands the next, and the one place it becomes an XCom value.

Tasks pass plain dicts through XCom (keys, counts and hashes; never rows);
these classes are those dicts with names, converted here and nowhere else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Extracted:
    """What an extract wrote: one dataset's file at the recipient's location."""

    dataset: str
    key: str
    size: int  # bytes
    sha256: str
    records: int
    excluded_cancellation: int  # rows left out: their subject has a cancellation open
    parts: int  # 0: one PutObject

    def to_xcom(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_xcom(cls, value: dict) -> Extracted:
        return cls(**value)


@dataclass(frozen=True)
class SignedManifest:
    """Where the signed manifest and its page went, and what the register records of them."""

    location: str  # s3://bucket/key of manifest.json
    sha256: str
    page: str  # s3://bucket/key of manifest.html
    records: int

    def to_xcom(self) -> dict:
        return {"manifest": self.location, "sha256": self.sha256, "html": self.page, "records": self.records}

    @classmethod
    def from_xcom(cls, value: dict) -> SignedManifest:
        return cls(location=value["manifest"], sha256=value["sha256"], page=value["html"], records=value["records"])
