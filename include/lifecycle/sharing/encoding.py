"""A delivery file's bytes: chunks of rows as ``jsonl`` or ``csv``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal

#: delivery format -> (file extension, content type)
FILE_FORMATS = {"jsonl": ("jsonl", "application/x-ndjson"), "csv": ("csv", "text/csv; charset=utf-8")}


def _text(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return value


def encode(rows: Iterable[list], names: list[str], fmt: str) -> Iterator[bytes]:
    """Chunks of rows -> chunks of bytes in ``jsonl`` (one object a line) or ``csv`` (with a header).

    Values arrive JSON-ready from the store (``Rows.stream``); anything else is turned into text as a last resort."""
    if fmt == "jsonl":
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_text).encode
        for chunk in rows:
            yield "".join(dumps(dict(zip(names, row))) + "\n" for row in chunk).encode("utf-8")
        return
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(names)
    for chunk in rows:
        writer.writerows(chunk)
        yield text.getvalue().encode("utf-8")
        text.seek(0)
        text.truncate()
    if text.tell():
        yield text.getvalue().encode("utf-8")
