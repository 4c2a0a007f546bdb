"""The files ``init --from`` writes beside catalog.yaml: every other file of the folder, its
defaults and, in comments, what to edit (templates ``include/lifecycle/templates/init/<file>.j2``).

What the scaffolded catalog shows fills them in: the table of account cancellations
(cancellation.yaml's ``requests``), the app's table of privacy requests (requests.yaml's
``intake``, not read until it has a schedule), a dataset for the examples.  Nothing switches a
deletion on: cancellation erasure has no schedule, retention no rule, sharing no recipient.
Without a table of cancellations there is no cancellation.yaml (its ``requests`` has nothing to
name); ``skipped`` says why."""

from __future__ import annotations

import re
from pathlib import Path

from lifecycle import reports

FILES = (
    "retention.yaml",
    "cancellation.yaml",
    "requests.yaml",
    "recipients.yaml",
    "incidents.yaml",
    "notifications.yaml",
    "deadlines.yaml",
)
CANCELLATIONS = re.compile(r"cancel|deactivat|closure|deletion_req")
PRIVACY_REQUESTS = re.compile(r"privacy_req|subject_req|dsar|rights_req|data_req")
WITHDRAWN = re.compile(r"withdr|revoked|retracted")
REQUEST_COLUMNS = {  # requests.yaml intake key: column names that hold it
    "kind": re.compile(r"^(kind|type|request_type|request_kind)$"),
    "categories": re.compile(r"^categor"),
    "purpose": re.compile(r"^purpose$"),
}


def contexts(catalog: dict) -> dict[str, dict | None]:
    """Each file's template context (None: the file is not written)."""
    linked = _linked(catalog)
    cancellations = _cancellations(catalog, linked)
    return {
        "retention.yaml": {"example": _retention_example(catalog, linked)},
        "cancellation.yaml": (
            {"subject": catalog["subject"]["dataset"], "requests": cancellations} if cancellations else None
        ),
        "requests.yaml": {"intake": _intake(catalog, linked, cancellations)},
        "recipients.yaml": {
            "share": _share_example(catalog, linked),
            "purpose": next(iter(catalog.get("purposes") or {}), "<purpose>"),
        },
        "incidents.yaml": {},
        "notifications.yaml": {},
        "deadlines.yaml": {},
    }


def skipped(catalog: dict) -> dict[str, str]:
    """The files not written, and why."""
    return {
        name: "no table of account cancellations found (a dataset named for cancellations, linked to the subject, "
        "with a created column): add the file when there is one (docs/configuration.md, cancellation.yaml)"
        for name, context in contexts(catalog).items()
        if context is None
    }


def write_files(catalog: dict, folder: Path) -> list[Path]:
    """Every file but catalog.yaml that the catalog lets us write, rendered into ``folder``."""
    written = []
    for name, context in contexts(catalog).items():
        if context is None:
            continue
        path = folder / name
        path.write_text(reports.render(f"init/{name}.j2", **context).rstrip("\n") + "\n", encoding="utf-8")
        written.append(path)
    return written


def _linked(catalog: dict) -> dict[str, dict]:
    """Datasets linked straight to the subject, with a created column: ``{name: spec}``."""
    subject = catalog["subject"]["dataset"]
    return {
        name: spec
        for name, spec in catalog["datasets"].items()
        if spec.get("created") and str(spec.get("subject", "")).partition("->")[2].strip().startswith(f"{subject}.")
    }


def _link_column(spec: dict) -> str:
    return str(spec["subject"]).partition("->")[0].strip()


def _cancellations(catalog: dict, linked: dict[str, dict]) -> dict | None:
    name = next((n for n in sorted(linked) if CANCELLATIONS.search(n)), None)
    if name is None:
        return None
    spec = linked[name]
    withdrawn = next((c for c in spec.get("fields", {}) if WITHDRAWN.search(c.lower())), None)
    return {
        "dataset": name,
        "subject": _link_column(spec),
        "requested_at": spec["created"],
        "withdrawn_at": withdrawn,
    }


def _intake(catalog: dict, linked: dict[str, dict], cancellations: dict | None) -> dict | None:
    """The app's table of privacy requests, when one has every column intake needs."""
    taken = cancellations["dataset"] if cancellations else None
    for name in sorted(linked):
        spec = linked[name]
        if name == taken or not PRIVACY_REQUESTS.search(name) or not spec.get("primary_key"):
            continue
        columns = {
            key: next((c for c in spec.get("fields", {}) if words.match(c.lower())), None)
            for key, words in REQUEST_COLUMNS.items()
        }
        if columns["kind"] is None:
            continue
        found = {"dataset": name, "id": spec["primary_key"], "subject": _link_column(spec)}
        found |= {"kind": columns["kind"], "requested_at": spec["created"]}
        return found | {k: v for k, v in columns.items() if v and k != "kind"}
    return None


def _retention_example(catalog: dict, linked: dict[str, dict]) -> dict:
    name = next((n for n in sorted(linked) if re.search(r"log|visit|session|click", n)), None)
    name = name or next(iter(sorted(linked)), "<dataset>")
    return {"name": f"{name}-1y".replace("_", "-"), "dataset": name, "keep": "1y"}


def _share_example(catalog: dict, linked: dict[str, dict]) -> dict:
    """A linked dataset and up to two of its shareable personal columns, for recipients.yaml's example."""
    unshareable = {n for n, c in catalog["categories"].items() if c.get("shareable") is False}
    for name in sorted(linked):
        fields = linked[name].get("fields", {})
        columns = [c for c, f in fields.items() if f.get("personal", True) and f.get("category") not in unshareable]
        if columns:
            return {"dataset": name, "columns": columns[:2]}
    return {"dataset": "<dataset>", "columns": ["<column>"]}
