"""The ``access`` kind: a signed, zipped copy of everything the lifecycle knows is the person's.

What belongs to a person.  A row belongs to the person its subject link chain
reaches (``catalog.path_to_subject``: every hop, e.g. ``chat_messages ->
conversations -> users``), and to nobody else: in a conversation owned by A,
every message is A's, even one another person wrote; B's package holds none
of them, whatever their text says.  An object belongs to the person its
key's prefix names (``prefix: "chats/{subject}/"``).  So the package holds

* ``data/<dataset>.jsonl``: every row of every table dataset that reaches the
  person, with every cataloged column (structural and fields, personal or
  not), one canonical JSON object a line, in key order;
* ``objects/<key>``: the current version of every object under the person's
  prefixes, byte for byte (not the earlier packages under
  ``requests.yaml: access.delivery``);
* ``index.html``: in the person's language, what each category is, why and
  how long it is kept (retention rules, statutory floors), who it was shared
  with (the sharing register's deliveries covering those datasets or
  categories);
* ``manifest.json``: every other file with its size and SHA-256, signed
  (``rights.package``).

Rows come from a server-side cursor and objects in chunks, into a zip in a
temporary file that is then uploaded in parts: memory does not grow with the
person's data.  The zip is deterministic (fixed entry times from the
request's receipt, fixed order), so a rebuild of the same data is the same
bytes.  Steps in the ledger (``evidence.request_event``): ``packaged`` once
the package and its manifest are uploaded (a rerun does not rebuild it),
``mailed`` once the link went to the address on file (``rights.notify``
mails once per request anyway).  The link is a bearer credential: it is in
the mail only, never in the ledger, the register or the task's result.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lifecycle import reports
from lifecycle.catalog import LinkError
from lifecycle.connections import connection_secret
from lifecycle.errors import LifecycleError
from lifecycle.evidence import request_event
from lifecycle.floors import statutory_floors
from lifecycle.rights.package import KIND, MANIFEST, PackageWriter, row_line
from lifecycle.stores.contract import Selection

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024  # object bytes read and written at a time
FETCH_ROWS = 5000  # rows a cursor fetch brings
PACKAGE = "package.zip"
MAX_LINK = timedelta(days=7)  # S3 signs links for at most seven days


def _access(rights):
    if rights.settings.access is None:
        raise LifecycleError("requests.yaml: access is not configured, so access requests are refused")
    return rights.settings.access


def table_sources(rights) -> list[str]:
    """Table datasets whose rows reach the subject (catalog order)."""
    found = []
    for name in rights.catalog.table_datasets:
        try:
            rights.catalog.path_to_subject(name)
        except LinkError:
            continue  # a table that reaches nobody holds nobody's rows
        found.append(name)
    return found


def object_sources(rights) -> list[str]:
    """Object datasets with a per-person prefix, earlier access packages apart (the delivery's own
    system and prefix)."""
    catalog, delivery = rights.catalog, _access(rights).delivery
    own = delivery.prefix.split("{", 1)[0]
    found = []
    for name in catalog.object_datasets:
        ds = catalog.dataset(name)
        if "subject" not in catalog.prefix_fields(ds.prefix):
            continue
        static = catalog.static_prefix(name)
        if ds.system == delivery.system and (static.startswith(own) or own.startswith(static)):
            continue
        found.append(name)
    return found


def columns_of(rights, dataset: str) -> list[str]:
    """Every column the catalog names for a table dataset: structural ones, consent columns, the
    subject's contacts, and fields, personal or not."""
    return sorted(rights.catalog.named_columns(dataset))


def plan(rights, request, as_of: datetime) -> dict:
    """What the package would hold, counts only: rows per dataset, objects and bytes per object dataset."""
    mine = Selection(subjects=(request.subject_id,))
    rows = {name: rights.stores.of(name).count(name, mine) for name in table_sources(rights)}
    objects, size = {}, 0
    for name in object_sources(rights):
        found = rights.stores.of(name).current_objects(name, mine)
        objects[name] = {"objects": len(found), "bytes": sum(o.size for o in found)}
        size += objects[name]["bytes"]
    return {
        "rows": rows,
        "objects": objects,
        "records": sum(rows.values()),
        "files": sum(o["objects"] for o in objects.values()),
        "bytes": size,
    }


def package_keys(rights, request) -> tuple[str, str]:
    """The package's key and its manifest's (``delivery.prefix`` with the request and the person)."""
    prefix = _access(rights).delivery.prefix.format(
        request_id=reports.safe_name(request.request_id), subject=request.subject_id
    )
    prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    return prefix + PACKAGE, prefix + MANIFEST


def carry_out(rights, request, run_id: str, as_of: datetime) -> dict:
    """Build and upload the package unless the ledger has it, then mail the link unless the
    ledger has that; returns counts, keys and hashes (never a person's values)."""
    access = _access(rights)
    ledger = rights.state.ledger
    packaged = ledger.find(request_event(request.request_id, "packaged"))
    if packaged is None:
        facts = _package(rights, request)
        packaged = ledger.append(
            "request.packaged",
            {"request_id": request.request_id, **facts},
            run_id=run_id,
            key=request_event(request.request_id, "packaged"),
        )
    facts = packaged.payload
    mailed = ledger.find(request_event(request.request_id, "mailed"))
    if mailed is None:
        store = rights.stores(access.delivery.system)
        lifetime = min(timedelta(seconds=access.link_expires.seconds, days=30 * access.link_expires.months), MAX_LINK)
        # the link is signed now and S3 counts its lifetime from now, so the date it stops is the wall clock's
        expires_on = (datetime.now(UTC) + lifetime).date().isoformat()
        link = store.presigned_get(facts["package"]["key"], int(lifetime.total_seconds()))
        notice = rights.notify(
            request, rights.settings.notify.access_ready, {"link": link, "expires_on": expires_on}, run_id
        )
        mailed = ledger.append(
            "request.mailed",
            {"request_id": request.request_id, "expires_on": expires_on, "notice": notice},
            run_id=run_id,
            key=request_event(request.request_id, "mailed"),
        )
    bucket = facts["package"]["bucket"]
    return {
        "rows": sum(facts["rows"].values()),
        "objects": sum(o["objects"] for o in facts["objects"].values()),
        "rows_by_dataset": facts["rows"],
        "objects_by_dataset": facts["objects"],
        "package": f"s3://{bucket}/{facts['package']['key']}",
        "package_key": facts["package"]["key"],
        "size": facts["package"]["size"],
        "sha256": facts["package"]["sha256"],
        "manifest_key": facts["manifest"]["key"],
        "manifest_sha256": facts["manifest"]["sha256"],
        "link_expires_on": mailed.payload.get("expires_on"),
        "notice": mailed.payload.get("notice"),
    }


def _package(rights, request) -> dict:
    """Build the zip in a temporary file and upload it and a copy of its manifest (SSE)."""
    access = _access(rights)
    delivery = access.delivery
    store = rights.stores(delivery.system)
    package_key, manifest_key = package_keys(rights, request)
    signing = rights.config.recipients.signing.conn_id
    with tempfile.TemporaryFile(prefix="access-") as file:
        writer = PackageWriter(file, request.received_at)
        rows = _write_rows(rights, request, writer)
        objects, shown = _write_objects(rights, request, writer)
        page = _index(rights, request, rows, shown)
        writer.write("index.html", [page.encode("utf-8")])
        document = {
            "manifest": "a person's copy of their personal information (access request)",
            "kind": KIND,
            "request_id": request.request_id,
            "subject": str(request.subject_id),
            "requested_at": request.received_at,
            "package": {"bucket": store.bucket, "key": package_key, "encryption": delivery.encryption},
            "datasets": {**{n: {"records": c} for n, c in rows.items()}, **objects},
        }
        raw = writer.finish(
            document, connection_secret(signing), f"Airflow connection {signing}", reports.signer(rights.catalog)
        )
        file.flush()
        size = file.tell()
        file.seek(0)
        options = {
            "encryption": delivery.encryption,
            "kms_key_id": delivery.kms_key_id,
            "part_size": delivery.part_size_mb * 1024 * 1024,
        }
        uploaded = store.upload(
            package_key, iter(lambda: file.read(CHUNK), b""), content_type="application/zip", **options
        )
        manifest = store.upload(manifest_key, [raw], content_type="application/json", **options)
    log.info(
        "request %s: package of %d row(s), %d object(s), %d bytes",
        request.request_id,
        sum(rows.values()),
        sum(o["objects"] for o in objects.values()),
        size,
    )
    return {
        "rows": rows,
        "objects": objects,
        "package": {"key": uploaded.key, "size": uploaded.size, "sha256": uploaded.sha256, "bucket": store.bucket},
        "manifest": {"key": manifest.key, "size": manifest.size, "sha256": manifest.sha256},
    }


def _write_rows(rights, request, writer: PackageWriter) -> dict[str, int]:
    """``data/<dataset>.jsonl`` for each table dataset holding the person's rows; rows per dataset."""
    mine = Selection(subjects=(request.subject_id,))
    counts = {}
    for name in sorted(table_sources(rights)):
        columns = columns_of(rights, name)
        chunks = rights.stores.of(name).stream(name, columns, selection=mine, fetch_rows=FETCH_ROWS)
        first = next(chunks, [])
        if not first:
            chunks.close()
            counts[name] = 0
            continue
        tally = [0]
        lines = _lines(itertools.chain([first], chunks), columns, tally)
        packed = writer.write(f"data/{name}.jsonl", lines, dataset=name)
        writer.files[-1] = dataclasses.replace(packed, records=tally[0])
        counts[name] = tally[0]
    return counts


def _lines(chunks: Iterator[list], columns: list[str], tally: list[int]) -> Iterator[bytes]:
    """Each fetched list of ``(subject, *columns)`` as canonical JSON lines; ``tally[0]`` counts rows."""
    for chunk in chunks:
        tally[0] += len(chunk)
        yield b"".join(row_line(dict(zip(columns, row[1:], strict=True))) for row in chunk)


def _write_objects(rights, request, writer: PackageWriter) -> tuple[dict, dict[str, int]]:
    """``objects/<key>`` for the current version of each of the person's objects, streamed."""
    mine = Selection(subjects=(request.subject_id,))
    listed, owner = {}, {}
    for name in object_sources(rights):
        for found in rights.stores.of(name).current_objects(name, mine):
            if found.key in owner:
                raise LifecycleError(
                    f"request {request.request_id}: object key {found.key!r} is in both {owner[found.key]} and "
                    f"{name}; the package names objects by key"
                )
            owner[found.key] = name
            listed.setdefault(name, []).append(found)
    objects, shown = {}, {}
    for name in object_sources(rights):
        found = listed.get(name, [])
        objects[name] = {"objects": len(found), "bytes": sum(o.size for o in found)}
        shown[name] = len(found)
    entries = sorted((o.key, name, o) for name, items in listed.items() for o in items)
    for key, name, item in entries:
        store = rights.stores.of(name)
        body = store.chunks(key, version_id=item.version_id, chunk_size=CHUNK)
        writer.write(f"objects/{key}", body, compress=False, dataset=name)
    return objects, shown


# ------------------------------------------------------------------ index.html


def _index(rights, request, rows: dict[str, int], objects: dict[str, int]) -> str:
    """The person's page: what each kind of information is, why and how long it is kept,
    who received it.  Only datasets that hold something of theirs."""
    catalog = rights.catalog
    held = {n: c for n, c in rows.items() if c} | {n: c for n, c in objects.items() if c}
    titles = {name: (c.title or name) for name, c in catalog.model.categories.items()}
    shared = _shared_with(rights, held)
    sections = []
    for name in catalog.datasets:
        if name not in held:
            continue
        is_table = catalog.dataset(name).is_table
        categories = sorted(catalog.categories_of(name))
        sections.append(
            {
                "dataset": name,
                "description": catalog.dataset(name).description,
                "is_table": is_table,
                "count": held[name],
                "file": f"data/{name}.jsonl"
                if is_table
                else f"objects/{catalog.subject_prefix(name, request.subject_id)}",
                "categories": [titles.get(c, c) for c in categories],
                "rules": _rules(rights, name),
                "floors": _floors(rights, name),
                "recipients": sorted(r["name"] for r in shared if name in r["datasets"]),
            }
        )
    template = _template(rights, rights.locale_of(request.subject_id))
    return reports.render(
        template,
        request={"id": request.request_id, "received_on": request.received_at[:10]},
        sections=sections,
        recipients=shared,
        contact=rights.config.notifications.contact if rights.config.notifications else None,
    )


def _rules(rights, dataset: str) -> list[dict]:
    catalog, found = rights.catalog, []
    for rule in rights.config.retention.rules:
        if dataset in catalog.resolve(rule.applies_to.categories, rule.applies_to.datasets):
            found.append({"name": rule.name, "keep": str(rule.keep), "action": rule.action, "why": rule.description})
    return found


def _floors(rights, dataset: str) -> list[dict]:
    return [
        {"name": f.name, "minimum": str(f.minimum), "basis": f.basis} for f in statutory_floors(rights.config, dataset)
    ]


def _shared_with(rights, held: dict[str, int]) -> list[dict]:
    """Recipients whose delivered register entries covered a dataset or category of the person's."""
    catalog = rights.catalog
    categories = {c for name in held for c in catalog.categories_of(name)}
    by_recipient: dict[str, dict] = {}
    for entry in rights.state.sharing.ending_within():
        if entry["outcome"] != "delivered":
            continue
        datasets = sorted(set(entry["fields"]) & set(held))
        covered = sorted(set(entry["categories"]) & categories)
        if not datasets and not covered:
            continue
        found = by_recipient.setdefault(
            entry["recipient_id"],
            {
                "id": entry["recipient_id"],
                "name": entry["recipient_name"],
                "purpose": entry["purpose"],
                "legal_basis": entry["legal_basis"],
                "role": entry["role"],
                "datasets": set(),
                "categories": set(),
                "last_delivery": "",
            },
        )
        found["datasets"].update(datasets)
        found["categories"].update(covered)
        found["last_delivery"] = max(found["last_delivery"], str(entry["interval_end"])[:10])
    titles = {name: (c.title or name) for name, c in catalog.model.categories.items()}
    return [
        {**r, "datasets": sorted(r["datasets"]), "categories": sorted(titles.get(c, c) for c in r["categories"])}
        for _, r in sorted(by_recipient.items())
    ]


def _template(rights, locale: str | None) -> str:
    """``access_index.<locale>.html.j2``: the person's language, its base language, else the first configured."""
    notifications = rights.config.notifications
    fallback = notifications.locales[0] if notifications else "en"
    for candidate in (locale, (locale or "").split("-")[0], fallback, "en"):
        if candidate and (Path(reports.TEMPLATES) / f"access_index.{candidate}.html.j2").exists():
            return f"access_index.{candidate}.html.j2"
    raise LifecycleError(f"no template access_index.<locale>.html.j2 for {locale!r} or {fallback!r}")
