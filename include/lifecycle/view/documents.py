"""The documents of the reports destination (local folder or S3), by kind and run, and the
delivery manifests of the sharing register with their signature check.

A key that comes from a URL is checked twice before anything is read: its
form (relative, no ``..``, no empty or dot segment, no backslash, no scheme)
and its presence in the destination's own listing under the folders this
view shows.  Nothing outside the reports destination can be named.
"""

from __future__ import annotations

from dataclasses import dataclass

from lifecycle.view.incidents import is_contact_list

#: top-level folders of the reports destination and what they hold
KINDS = {
    "retention": "Retention reports",
    "cancellation": "Cancellation reports",
    "certificates": "Erasure certificates",
    "requests": "Subject requests",
    "incidents": "Incidents: previews, regulator reports, lists",
    "sharing": "Sharing register exports",
}
MAX_KEY = 1024
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "zip": "application/zip",
}
INLINE = {"html", "json", "txt"}  # shown in the browser; everything else is a download


class BadKey(ValueError):
    """A document key from a URL that the view refuses to look up; the message says why."""


def checked_form(key: object) -> str:
    """``key`` if it is a plain relative key of a kind this view shows, else ``BadKey``."""
    if not isinstance(key, str) or not key:
        raise BadKey("no document key given")
    if len(key) > MAX_KEY:
        raise BadKey(f"document key longer than {MAX_KEY} characters")
    if "\\" in key or "\x00" in key or "://" in key or key.startswith("/"):
        raise BadKey("a document key is a relative path with forward slashes")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BadKey("a document key has no empty, '.' or '..' segment")
    if parts[0] not in KINDS or len(parts) < 2:
        raise BadKey(f"documents are under {', '.join(k + '/' for k in KINDS)}")
    return key


def existing(sink, key: object) -> str:
    """``key`` checked in form and found in the destination's listing, else ``BadKey``."""
    key = checked_form(key)
    folder = key.rsplit("/", 1)[0] + "/"
    if key not in sink.keys(folder):
        raise BadKey("no such document in the reports destination")
    return key


def extension(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def content_type(key: str) -> str:
    return CONTENT_TYPES.get(extension(key), "application/octet-stream")


@dataclass(frozen=True)
class Folder:
    """One run's documents (or one flat kind's): its folder and the file keys in it."""

    folder: str
    keys: list[str]


def folders(sink, kind: str, *, contact_lists: bool, limit: int = 50) -> list[Folder]:
    """A kind's documents grouped by folder, newest folder first (folders name dates and runs).

    ``contact_lists``: whether the letter and telephone lists are listed at all."""
    if kind not in KINDS:
        raise BadKey(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    grouped: dict[str, list[str]] = {}
    for key in sink.keys(kind + "/"):
        if is_contact_list(key) and not contact_lists:
            continue
        grouped.setdefault(key.rsplit("/", 1)[0], []).append(key)
    ordered = sorted(grouped.items(), key=lambda item: item[0], reverse=True)
    return [Folder(folder, keys) for folder, keys in ordered[:limit]]


@dataclass(frozen=True)
class ManifestRow:
    register_id: int
    recipient: str
    interval_end: str
    outcome: str
    records: int
    location: str | None
    check: str  # "valid" | the problems | "no manifest"


def manifests(config, state, open_store, signing_key: bytes | None, limit: int = 20) -> list[ManifestRow]:
    """The latest register entries with their manifest's signature and file-hash check."""
    from lifecycle.sharing.verify import verify_manifest

    rows = state.sharing.ending_within()[-limit:]
    systems = {r.id: r.delivery.system for r in config.recipients.recipients}
    out = []
    for row in reversed(rows):
        location = row.get("manifest")
        if not location:
            check = "no manifest"
        elif signing_key is None or row["recipient_id"] not in systems:
            check = "not checked: no signing key or recipient not configured"
        else:
            key = location.split("/", 3)[3] if location.startswith("s3://") else location
            try:
                problems = verify_manifest(open_store(systems[row["recipient_id"]]), key, signing_key)
            except Exception as exc:  # a bucket not reachable: said, the rest of the page stands
                problems = [f"could not check: {type(exc).__name__}"]
            check = "valid" if not problems else "; ".join(problems)
        out.append(
            ManifestRow(
                register_id=row["id"],
                recipient=row["recipient_id"],
                interval_end=row["interval_end"],
                outcome=row["outcome"],
                records=int(row["records"]),
                location=location,
                check=check,
            )
        )
    return out
