"""The records an evidence pack holds, each a ``Section``: a name, a JSON-able dict, its HTML
(rendered through ``lifecycle.reports``), and files that go with it (copied as stored).

A record is one function of the configuration, the state store and the period; each
is deterministic for the same state.  Another record is one more line in ``sections``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lifecycle import checkpoints, reports
from lifecycle.erasure.certificates import FOLDER as CERTIFICATES
from lifecycle.erasure.certificates import LEAVES, ROOT
from lifecycle.errors import TerminalStoreError
from lifecycle.registers import breaches, processing, requests
from lifecycle.sharing.register import SharingRegister
from lifecycle.sharing.register_export import register_csv

if TYPE_CHECKING:
    from lifecycle.config import Config
    from lifecycle.packs.period import Period
    from lifecycle.state import StateStore


@dataclass(frozen=True)
class Section:
    name: str  # the file stem: records/<name>.json and .html
    title: str
    data: dict
    html: str
    files: dict[str, bytes] = field(default_factory=dict)  # pack path -> bytes, as stored


def sections(config: Config, state: StateStore, period: Period) -> list[Section]:
    """Every record of the period, in the order the pack presents them."""
    return [
        record(
            "record_of_processing",
            "Record of processing activities",
            processing.record_of_processing(config),
            processing.render,
        ),
        record(
            "request_statistics",
            "Requests and erasures",
            requests.request_statistics(config, state, period.begins, period.until),
            requests.render,
        ),
        record(
            "breach_register",
            "Breach register",
            breaches.breach_register(config, state, period.begins, period.until),
            breaches.render,
        ),
        sharing_register(config, state, period),
        batch_roots(config, period),
        ledger_checkpoints(config, period),
    ]


def record(name: str, title: str, data: dict, render: Callable[[dict], str]) -> Section:
    """A record built in ``lifecycle.registers``: its data, and its HTML as its module renders it."""
    return Section(name, title, data, render(data))


def sharing_register(config: Config, state: StateStore, period: Period) -> Section:
    """Every disclosure to a third party, and every one refused, whose data interval ended in the period."""
    rows = SharingRegister(state).entries(period.start, period.end)
    csv = register_csv(rows)
    html = reports.render(
        "sharing_register.html.j2",
        rows=rows,
        start=period.start.isoformat(),
        end=period.end.isoformat(),
        csv_sha256=hashlib.sha256(csv).hexdigest(),
    )
    data = {"record": "sharing register", "period": period.to_json(), "entries": rows}
    return Section("sharing_register", "Sharing register", data, html, {"records/sharing_register.csv": csv})


def batch_roots(config: Config, period: Period) -> Section:
    """The signed Merkle root (and the leaves) of every erasure and request batch completed in the period."""
    sink = reports.ReportSink(config.catalog)
    rows, files = [], {}
    for key in sink.keys(f"{CERTIFICATES}/"):
        if not key.endswith(f"/{ROOT}.json"):
            continue
        raw = sink.read(key)
        root = json.loads(raw)
        if not period.includes(root.get("completed_at")):
            continue
        folder = key.removesuffix(f"{ROOT}.json").replace(f"{CERTIFICATES}/", "batches/", 1)
        files[f"{folder}{ROOT}.json"] = raw
        try:
            files[f"{folder}{LEAVES}"] = sink.read(key.removesuffix(f"{ROOT}.json") + LEAVES)
        except (OSError, TerminalStoreError):
            pass  # the root alone still proves what it signs; the verifier says the leaves are not beside it
        rows.append(
            {
                "batch": root.get("batch"),
                "completed_at": root.get("completed_at"),
                "subjects": root.get("subjects"),
                "merkle_root": (root.get("merkle") or {}).get("root"),
                "file": f"{folder}{ROOT}.json",
                "sha256": hashlib.sha256(raw).hexdigest(),
            }
        )
    rows.sort(key=lambda r: (r["completed_at"] or "", r["file"]))
    data = {"record": "erasure batch certificates (signed Merkle roots)", "period": period.to_json(), "batches": rows}
    html = _listing("Erasure batch certificates", period, rows, BATCH_COLUMNS, BATCH_NOTE)
    return Section("batch_roots", "Erasure batch certificates", data, html, files)


def ledger_checkpoints(config: Config, period: Period) -> Section:
    """Every signed ledger checkpoint published in the period, copied as published."""
    sink = checkpoints.sink(config.catalog)
    rows, files = [], {}
    for key in sink.keys(checkpoints.FOLDER):
        if not key.endswith(".json"):
            continue
        raw = sink.read(key)
        document = json.loads(raw)
        if not period.includes(document.get("time")):
            continue
        files[key] = raw
        rows.append(
            {
                "checkpoint": key,
                "time": document.get("time"),
                "entries": document.get("entries"),
                "head_hash": document.get("head_hash"),
                "file": key,
                "sha256": hashlib.sha256(raw).hexdigest(),
            }
        )
    data = {"record": "signed ledger checkpoints", "period": period.to_json(), "checkpoints": rows}
    html = _listing("Ledger checkpoints", period, rows, CHECKPOINT_COLUMNS, CHECKPOINT_NOTE)
    return Section("ledger_checkpoints", "Ledger checkpoints", data, html, files)


BATCH_COLUMNS = ("batch", "completed_at", "subjects", "merkle_root", "file")
BATCH_NOTE = (
    "One signed document per erasure batch: a Merkle root over one leaf per person (named by a keyed hash, "
    "never by id or address). The leaves file beside each root gives the same root; a person's certificate "
    "is their leaf, its inclusion proof and this root."
)
CHECKPOINT_COLUMNS = ("checkpoint", "time", "entries", "head_hash")
CHECKPOINT_NOTE = (
    "The ledger's head, signed when a run appended to it. Each names the one before it; "
    "`python -m lifecycle ledger verify --checkpoints` proves the ledger still extends every one."
)


def _listing(title: str, period: Period, rows: list[dict], columns, note: str) -> str:
    return reports.render(
        "evidence_listing.html.j2", title=title, period=period.to_json(), rows=rows, columns=columns, note=note
    )
