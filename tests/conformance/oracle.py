"""The oracle: expected end states from the generator's model, actual ones by plain SQL and boto3.

Nothing here imports the engine.  The rules are the product's, as
docs/configuration.md and SPEC.md state them:

* retention: a row expires when ``created`` is strictly older than the
  effective cutoff (the earlier of the rule's and every covering floor's);
  NULL never expires; held rows (their subject, following the links, has an
  active hold covering the dataset) stay; a row that a row which stays reaches
  its person through (its subject link, whatever the foreign key declares or
  without one) is kept, a fixpoint: deleting it would leave that row reaching
  nobody; anonymized fields get NULL, the redaction text or the HMAC-SHA256 hex
  of the UTF-8 value; objects go key by key when the newest version or marker
  is older than the cutoff, except locked versions;
* erasure: due subjects lose every row reachable from them and their objects,
  or, where the dataset's action is anonymize (anonymized.py), keep them with
  every personal field rewritten, the link NULL where cleared; no row that
  still reaches them holds a value one of their rows held before;
* incidents: subjects with a row created inside the window;
* sharing: the records of the shared dataset, minus open cancellations and
  subjects without consent in force.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import Counter
from datetime import datetime

import sqlalchemy as sa

from tests.conformance import traps
from tests.conformance.timeutil import Dur, naive

REDACTED = "[redacted]"


# ------------------------------------------------------------------ ownership


class Owners:
    """Who each row belongs to, following the subject links through the initial rows."""

    def __init__(self, world, rows: dict[str, dict] | None = None):
        """``rows``: {dataset: {pk: row}} to follow instead of the initial rows (an actual state)."""
        self.world = world
        self.by_pk = rows or {name: {r[t.pk]: r for r in t.rows} for name, t in world.tables.items()}
        self.subjects = {r[world.subject.pk] for r in world.subject.rows}

    def owner(self, dataset: str, row: dict):
        t = self.world.tables[dataset]
        if t.role == "subject":
            return row[t.pk]
        if t.link is None:
            return None
        value = row[t.link.column]
        if value is None:
            return None
        parent = self.world.tables[t.link.parent]
        if parent.role == "subject":
            return value
        parent_row = self.by_pk[parent.dataset].get(value)
        return None if parent_row is None else self.owner(parent.dataset, parent_row)


def held(world, dataset: str, subject) -> bool:
    if subject is None:
        return False
    return any(h.subject == str(subject) and (h.datasets is None or dataset in h.datasets) for h in world.holds)


def hmac_hex(key: str, value) -> str | None:
    if value is None:
        return None
    return hmac.new(key.encode("utf-8"), str(value).encode("utf-8"), hashlib.sha256).hexdigest()


def rewritten(world, table, row: dict, fields) -> dict:
    out = dict(row)
    for f in fields:
        if f.strategy == "null":
            out[f.column] = None
        elif f.strategy == "redact":
            out[f.column] = None if row[f.column] is None else (f.text if f.text is not None else REDACTED)
        elif f.strategy == "hmac":
            out[f.column] = hmac_hex(world.hmac_key, row[f.column])
    return out


# ------------------------------------------------------------------ retention


def _expiry(world):
    """(rows to delete before the fixpoint, rows to anonymize) as {(dataset, pk)}, {(dataset, pk): fields}."""
    owners = Owners(world)
    delete, anonymize = set(), {}
    for rule in world.rules:
        for dataset in world.rule_targets(rule):
            t = world.tables.get(dataset)
            if t is None:
                continue  # an object dataset
            _, effective = world.cutoffs(dataset, world.as_of)
            cutoff = naive(effective)
            for row in t.rows:
                created = row[t.created]
                if created is None or not created < cutoff:
                    continue
                if held(world, dataset, owners.owner(dataset, row)):
                    continue
                if rule.action == "delete":
                    delete.add((dataset, row[t.pk]))
                else:
                    anonymize[(dataset, row[t.pk])] = [f for f in t.fields if f.personal and f.strategy]
    return delete, anonymize


def _fixpoint(world, delete: set) -> set:
    """Remove from ``delete`` every row that a row which stays links to (its subject link)."""
    delete = set(delete)
    protecting = [t for t in world.tables.values() if t.link]
    changed = True
    while changed:
        changed = False
        for child in protecting:
            parent = child.link.parent
            for row in child.rows:
                value = row[child.link.column]
                if value is None or (child.dataset, row[child.pk]) in delete:
                    continue
                if (parent, value) in delete:
                    delete.discard((parent, value))
                    changed = True
    return delete


def retention_blocked(world) -> set:
    """Expired, unheld rows of delete rules that rows which stay link to (for the generator's tidy worlds)."""
    delete, _ = _expiry(world)
    return delete - _fixpoint(world, delete)


def expected_retention_rows(world) -> dict[str, dict]:
    delete, anonymize = _expiry(world)
    delete = _fixpoint(world, delete)
    out: dict[str, dict] = {}
    for name, t in world.tables.items():
        rows = {}
        for row in t.rows:
            key = (name, row[t.pk])
            if key in delete:
                continue
            if key in anonymize:
                row = rewritten(world, t, row, anonymize[key])
            rows[row[t.pk]] = row
        out[name] = rows
    return out


def subject_of_key(prefix: str, key: str):
    """The {subject} part of an object key (the template's text around it must match)."""
    before, _, after = prefix.partition("{subject}")
    if not key.startswith(before):
        return None
    rest = key[len(before) :]
    if after:
        at = rest.find(after)
        return rest[:at] if at > 0 else None
    return rest or None


def expected_retention_objects(world, versions: list[dict], now: datetime) -> set[tuple[str, str]]:
    """``versions``: every version and marker as uploaded ({key, version_id, marker, last_modified, lock})."""
    keep = {(v["key"], v["version_id"]) for v in versions}
    by_key: dict[str, list[dict]] = {}
    for v in versions:
        by_key.setdefault(v["key"], []).append(v)
    for o in world.objects:
        rule = world.rule_of(o.name)
        if rule is None:
            continue
        cutoff = Dur.parse(rule.keep).before(world.as_of)
        static = o.prefix.split("{", 1)[0]
        for key, group in by_key.items():
            if not key.startswith(static):
                continue
            newest = max(v["last_modified"] for v in group)
            if newest < cutoff and not held(world, o.name, subject_of_key(o.prefix, key)):
                keep -= {(v["key"], v["version_id"]) for v in group if not locked(v, now)}
    return keep


def locked(version: dict, now: datetime) -> bool:
    lock = version.get("lock")
    if version["marker"] or lock is None:
        return False
    if lock == "legal":
        return True
    return lock[1] > now


# ------------------------------------------------------------------ erasure


def requests_by_subject(world) -> dict:
    t = world.requests
    found: dict = {}
    for r in t.rows:
        found.setdefault(r[t.link.column], []).append(r)
    return found


def due_subjects(world) -> set:
    grace, now = Dur.parse(world.grace), naive(world.as_of)
    existing = {r[world.subject.pk] for r in world.subject.rows}
    held_any = {h.subject for h in world.holds}
    due = set()
    for subject, requests in requests_by_subject(world).items():
        if subject not in existing or str(subject) in held_any:
            continue
        for r in requests:
            end = grace.after(r["requested_at"])
            withdrawn = r["withdrawn_at"] is not None and r["withdrawn_at"] < end
            if end <= now and not withdrawn:
                due.add(subject)
    return due


def initial_rows(world) -> dict[str, dict]:
    """Every table as the world wrote it: what a refused run must leave."""
    return {name: {row[t.pk]: dict(row) for row in t.rows} for name, t in world.tables.items()}


def expected_erasure_rows(world) -> dict[str, dict]:
    """Due subjects' rows deleted, or anonymized (``world.anonymized``): every personal field with a
    strategy rewritten, the link set to NULL where cleared (the subject's own row keeps its key)."""
    owners, due, choices = Owners(world), due_subjects(world), world.anonymized
    out = {}
    for name, t in world.tables.items():
        rows = {}
        for row in t.rows:
            mine = t.personal and owners.owner(name, row) in due
            if mine and choices.anonymized(name):
                row = rewritten(world, t, row, [f for f in t.fields if f.personal and f.strategy])
                if choices.cleared(world, name):
                    row[t.link.column] = None
            elif mine:
                continue
            rows[row[t.pk]] = row
        out[name] = rows
    return out


def _originals(world) -> dict:
    """Every due subject -> the text values their rows' personal fields held before erasure."""
    owners, due, found = Owners(world), due_subjects(world), {}
    for name, t in world.tables.items():
        columns = [f.column for f in t.fields if f.personal]
        for row in t.rows:
            who = owners.owner(name, row)
            if who in due:
                found.setdefault(who, set()).update(row[c] for c in columns if isinstance(row[c], str))
    return found


def originals_left(world, actual: dict[str, dict]) -> list[str]:
    """No row that reaches a due subject (following the links as they now are) still holds a
    personal value one of their rows held before erasure."""
    originals, owners, problems = _originals(world), Owners(world, actual), []
    for name, rows in sorted(actual.items()):
        for key, row in rows.items():
            who = owners.owner(name, row)
            left = sorted(c for c, v in row.items() if isinstance(v, str) and v in originals.get(who, ()))
            if left:
                problems.append(
                    f"table {world.tables[name].table!r}: {world.tables[name].pk}={key!r} still reaches "
                    f"{who!r} with its original {left}"
                )
    return problems


def originals_in_files(world, paths) -> list[str]:
    """No file (the state store, reports) holds a due subject's original e-mail or name."""
    s = world.subject
    needles = {
        str(row[c]).encode("utf-8") for row in s.rows if row[s.pk] in due_subjects(world) for c in ("email", "name")
    }
    return [
        f"{path.name}: holds an erased person's original e-mail or name"
        for path in paths
        if any(n in path.read_bytes() for n in needles)
    ]


def expected_erasure_objects(world, versions: list[dict], now: datetime) -> set[tuple[str, str]]:
    due = {str(s) for s in due_subjects(world)}
    keep = set()
    for v in versions:
        gone = any(subject_of_key(o.prefix, v["key"]) in due for o in world.objects)
        if not gone or locked(v, now):
            keep.add((v["key"], v["version_id"]))
    return keep


# ------------------------------------------------------------------ access


def access_subject(world) -> str:
    """The person with the most rows across the world's tables (ties: the lowest key)."""
    owners, counts = Owners(world), Counter()
    for name, t in world.tables.items():
        for row in t.rows:
            who = owners.owner(name, row)
            if who is not None:
                counts[str(who)] += 1
    return min(counts, key=lambda s: (-counts[s], s)) if counts else str(world.subject.rows[0][world.subject.pk])


def expected_access_rows(world, subject: str) -> dict[str, set[str]]:
    """Primary keys (as text) of every row the person's subject links reach, per dataset."""
    owners, want = Owners(world), {}
    for name, t in world.tables.items():
        keys = {str(jsonable(row[t.pk])) for row in t.rows if str(owners.owner(name, row)) == subject}
        if keys:
            want[name] = keys
    return want


def expected_access_objects(world, versions: list[dict], subject: str) -> set[str]:
    """Keys under the person's prefixes whose newest version (the last written) is not a delete marker."""
    newest: dict[str, dict] = {}
    for v in versions:
        newest[v["key"]] = v
    return {
        key
        for key, v in newest.items()
        if not v["marker"] and any(subject_of_key(o.prefix, key) == subject for o in world.objects)
    }


# ------------------------------------------------------------------ incident and sharing


def expected_incident(world) -> set[str]:
    owners = Owners(world)
    start, end = world.incident["from"], world.incident["to"]
    found = set()
    for name in world.incident["datasets"]:
        t = world.tables[name]
        for row in t.rows:
            created = row[t.created]
            if created is not None and start <= created <= end:
                subject = owners.owner(name, row)
                if subject is not None and subject in owners.subjects:
                    found.add(str(subject))
    return found


def open_cancellations(world, end: datetime) -> set[str]:
    grace, end = Dur.parse(world.grace), naive(end)
    out = set()
    for r in world.requests.rows:
        if r["requested_at"] > end:
            continue
        w = r["withdrawn_at"]
        if w is None or w > end or w >= grace.after(r["requested_at"]):
            out.add(str(r[world.requests.link.column]))
    return out


def consenting(world, end: datetime) -> set[str]:
    t, end = world.consents, naive(end)
    latest: dict = {}
    for r in t.rows:
        if r["purpose"] == world.purpose and r["granted_at"] <= end:
            s = r[t.link.column]
            if s not in latest or r["granted_at"] > latest[s]["granted_at"]:
                latest[s] = r
    return {str(s) for s, r in latest.items() if r["withdrawn_at"] is None or r["withdrawn_at"] > end}


def jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def expected_sharing(world, backend: str) -> Counter:
    """Records as delivered: values as their columns hold them (time columns per ``traps.shared``)."""
    dataset, fields = world.share
    t, owners, end = world.tables[dataset], Owners(world), world.as_of
    times = set(traps.time_columns(t))

    def value(row, f):
        return jsonable(traps.shared(world.time_kind, backend, row[f]) if f in times else row[f])

    excluded = open_cancellations(world, end)
    allowed = consenting(world, end) if world.consent_recipient else None
    records = Counter()
    for row in t.rows:
        subject = owners.owner(dataset, row)
        assert subject is not None, f"seed {world.seed}: a shared row without subject (generator)"
        if str(subject) in excluded or (allowed is not None and str(subject) not in allowed):
            continue
        record = {"_subject": str(subject), **{f: value(row, f) for f in fields}}
        records[json.dumps(record, sort_keys=True, ensure_ascii=False)] += 1
    return records


# ------------------------------------------------------------------ the actual state


def canonical(value):
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return value


def actual_rows(engine: sa.Engine, tables: dict[str, sa.Table], world) -> dict[str, dict]:
    out = {}
    with engine.connect() as conn:
        for name, table in tables.items():
            pk, times = world.tables[name].pk, set(traps.time_columns(world.tables[name]))
            rows = {}
            for r in conn.execute(sa.select(table)):
                row = {
                    k: traps.canonical(world.time_kind, v) if k in times else canonical(v)
                    for k, v in r._mapping.items()
                }
                rows[row[pk]] = row
            out[name] = rows
    return out


def actual_objects(client, bucket: str) -> set[tuple[str, str]]:
    found = set()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            found.add((entry["Key"], entry["VersionId"]))
    return found


def compare_rows(expected: dict[str, dict], actual: dict[str, dict], world, limit: int = 6) -> list[str]:
    """Differences, one line per table and kind, naming keys and columns."""
    problems = []
    for name in sorted(expected):
        t = world.tables[name]
        want, got = expected[name], actual.get(name, {})
        missing = sorted(map(repr, set(want) - set(got)))
        extra = sorted(map(repr, set(got) - set(want)))
        if missing:
            problems.append(
                f"table {t.table!r} ({name}): {len(missing)} row(s) removed that should stay: "
                f"{t.pk} in {missing[:limit]}"
            )
        if extra:
            problems.append(
                f"table {t.table!r} ({name}): {len(extra)} row(s) left that should be gone: {t.pk} in {extra[:limit]}"
            )
        changed = []
        for key in set(want) & set(got):
            diff = {c: (want[key].get(c), got[key].get(c)) for c in want[key] if want[key].get(c) != got[key].get(c)}
            if diff:
                changed.append(
                    f"{t.pk}={key!r}: " + ", ".join(f"{c}: expected {e!r}, got {a!r}" for c, (e, a) in diff.items())
                )
        if changed:
            problems.append(
                f"table {t.table!r} ({name}): {len(changed)} row(s) differ: " + "; ".join(sorted(changed)[:limit])
            )
    return problems


def compare_objects(
    expected: set, actual: set, bucket: str, versions: list[dict] | None = None, context: str = "", limit: int = 6
) -> list[str]:
    """Differences by (key, version id); with ``versions``, each differing key's history."""
    problems = []
    gone = sorted(expected - actual)
    left = sorted(actual - expected)
    if gone:
        problems.append(f"bucket {bucket}: {len(gone)} version(s) removed that should stay: {gone[:limit]}")
    if left:
        problems.append(f"bucket {bucket}: {len(left)} version(s) left that should be gone: {left[:limit]}")
    if versions and (gone or left):
        keys = sorted({k for k, _ in gone + left})[:limit]
        for key in keys:
            history = [
                f"{'marker' if v['marker'] else 'version'} {v['version_id'][:8]} "
                f"{v['last_modified'].isoformat()} lock={v['lock']!r}"
                for v in versions
                if v["key"] == key
            ]
            problems.append(f"  {key}: " + "; ".join(history) + (f" ({context})" if context else ""))
    return problems
