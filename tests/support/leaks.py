"""Find seeded subjects' personal information where it must not be.

The needles are every e-mail address, name and phone number of the demo
app's users, read before any DAG runs.  A hit names the place and the kind of
value and the subject's id, never the value itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa


@dataclass(frozen=True)
class Hit:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


class Needles:
    def __init__(self, values: dict[str, str]):
        self.values = values  # value (lower case) -> "email of users.id=17"
        self._pattern = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)), re.IGNORECASE)

    @classmethod
    def from_app(cls, engine: sa.Engine) -> Needles:
        values: dict[str, str] = {}
        with engine.connect() as conn:
            for row in conn.execute(sa.text("SELECT id, email, name, phone FROM users")):
                for kind in ("email", "name", "phone"):
                    value = getattr(row, kind)
                    if value and len(value.strip()) >= 2:
                        values[value.strip().lower()] = f"{kind} of users.id={row.id}"
        return cls(values)

    def find(self, text: str) -> list[str]:
        return sorted({self.values[m.group(0).lower()] for m in self._pattern.finditer(text)})


def scan_files(root: Path, needles: Needles, *, label: str, skip=lambda path: False) -> list[Hit]:
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not skip(p)):
        text = path.read_bytes().decode("utf-8", errors="replace")
        hits += [Hit(f"{label}/{path.relative_to(root)}", what) for what in needles.find(text)]
    return hits


def scan_database(engine: sa.Engine, needles: Needles, *, label: str) -> list[Hit]:
    """Every row of every table, as PostgreSQL's text form of the row."""
    hits = []
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for (text,) in conn.execute(sa.text(f'SELECT t::text FROM "{table}" t')):
                hits += [Hit(f"{label} table {table}", what) for what in needles.find(text or "")]
    return sorted(set(hits), key=str)


def scan_bucket(s3, bucket: str, needles: Needles, *, skip=lambda key: False) -> list[Hit]:
    hits = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if skip(obj["Key"]):
                continue
            text = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("utf-8", errors="replace")
            hits += [Hit(f"s3://{bucket}/{obj['Key']}", what) for what in needles.find(text)]
    return hits
