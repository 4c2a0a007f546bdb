"""The Evidence page: every evidence pack (its period, when it was built, whom it was delivered
to, and what the verifier finds now) and every ledger checkpoint with its verification status."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from lifecycle import attestations, checkpoints, reports
from lifecycle.evidence import pack as pack_prefix
from lifecycle.packs import Period, read_pack
from lifecycle.packs.build import FOLDER, MANIFEST
from lifecycle.packs.delivery import deliveries


@dataclass(frozen=True)
class PackRow:
    period: Period
    location: str
    built: str | None  # when the ledger recorded the pack as it is now
    delivered: dict[str, dict[str, str]]  # recipient -> channel -> status
    problems: list[str]


@dataclass(frozen=True)
class CheckpointRow:
    key: str
    time: str | None
    entries: int | None
    head_hash: str | None
    problems: list[str]


@dataclass(frozen=True)
class EvidenceView:
    key_id: str
    packs: list[PackRow] = field(default_factory=list)
    checkpoints: list[CheckpointRow] = field(default_factory=list)
    ledger_problems: list[str] = field(default_factory=list)  # checkpoint problems not tied to one file


def build(config, state) -> EvidenceView:
    keys = reports.public_keys(config.catalog)
    return EvidenceView(
        reports.signer(config.catalog).key_id, _packs(config, state, keys), *_checkpoints(config, state, keys)
    )


def _packs(config, state, keys) -> list[PackRow]:
    sink = reports.ReportSink(config.catalog, config.catalog.model.evidence.packs.destination)
    rows = []
    for key in sink.keys(FOLDER):
        if not key.endswith(f"/{MANIFEST}") or key.count("/") != 2:
            continue
        try:
            period = Period.parse(key.split("/")[1])
        except ValueError:
            continue
        raw, read = read_pack(config, period)
        checked = attestations.check(raw, keys, read=read)
        sha = hashlib.sha256(raw).hexdigest()
        built = [
            e
            for e in state.ledger.entries_with_prefix(pack_prefix(period.key) + "built:")
            if e.payload.get("manifest_sha256") == sha
        ]
        location = key.removesuffix(MANIFEST)
        rows.append(
            PackRow(
                period, location, built[-1].recorded_at if built else None, deliveries(state, period), checked.problems
            )
        )
    return sorted(rows, key=lambda r: (r.period.start, r.period.end), reverse=True)


def _checkpoints(config, state, keys) -> tuple[list[CheckpointRow], list[str]]:
    _count, problems = checkpoints.check(config.catalog, state.ledger, keys)
    sink = checkpoints.sink(config.catalog)
    rows, named = [], set()
    for key in sink.keys(checkpoints.FOLDER):
        if not key.endswith(".json"):
            continue
        mine = [p for p in problems if p.startswith(f"{key}:")]
        named.update(mine)
        try:
            document = json.loads(sink.read(key))
        except ValueError:
            document = {}
        rows.append(CheckpointRow(key, document.get("time"), document.get("entries"), document.get("head_hash"), mine))
    return sorted(rows, key=lambda r: r.key, reverse=True), [p for p in problems if p not in named]
