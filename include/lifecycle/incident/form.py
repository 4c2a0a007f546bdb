"""The trigger form of ``incident_notification``: JSON-schema params and the parsed form.

``param_schemas(catalog)`` gives each field's JSON schema (Airflow renders
them as the Trigger form and refuses input that does not fit); ``parse``
checks the rules a schema cannot express (scope, time order, known datasets)
and returns an ``IncidentForm`` or raises ``FormError`` listing every problem.
The form holds facts about the incident, never personal information.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime

from lifecycle.catalog import Catalog
from lifecycle.clock import aware_utc
from lifecycle.errors import LifecycleError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"
CHANNELS = ["email", "letter", "telephone", "announcement"]
PHASES = ["initial", "update"]
TEXT_FIELDS = ("title", "cause", "impact", "measures_taken", "precautions", "remedies")


class FormError(LifecycleError):
    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"the trigger form is not valid ({len(self.problems)} problem(s)); nothing was done:\n{lines}")


def _text(title: str, description: str, *, lines: bool = True, default=None) -> dict:
    schema = {"type": "string", "minLength": 3, "title": title, "description": description}
    if lines:
        schema["format"] = "multiline"
    return schema if default is None else {**schema, "default": default}


def param_schemas(catalog: Catalog) -> dict[str, dict]:
    """name -> (default, JSON schema) for each form field; choices come from the catalog."""
    datasets = [name for name, ds in catalog.datasets.items() if ds.personal and ds.created]
    categories = list(catalog.model.categories)
    when = {"type": ["null", "string"], "format": "date-time"}
    return {
        "incident_id": (
            None,
            {
                "type": "string",
                "pattern": ID_PATTERN,
                "title": "Incident id",
                "description": "Your incident reference (3-64 letters, digits, '.', '_', '-'). "
                "Trigger again with the same id and phase 'update' for a follow-up.",
            },
        ),
        "title": (
            None,
            _text("Title", "A short name for the incident, as people and regulators will read it.", lines=False),
        ),
        "discovered_at": (
            None,
            {
                "type": "string",
                "format": "date-time",
                "title": "Discovered at (UTC)",
                "description": "When the company became aware of the incident: regulator deadlines run from here.",
            },
        ),
        "occurred_from": (
            None,
            {
                **when,
                "title": "Occurred from (UTC)",
                "description": "Start of the window in which the data was exposed.",
            },
        ),
        "occurred_to": (
            None,
            {**when, "title": "Occurred to (UTC)", "description": "End of the window in which the data was exposed."},
        ),
        "cause": (None, _text("Cause", "What happened and why (GDPR art. 33(3)(a), PIPL art. 57).")),
        "affected_datasets": (
            [],
            {
                "type": "array",
                "items": {"type": "string", "enum": datasets},
                "uniqueItems": True,
                "title": "Affected datasets",
                "examples": datasets,
                "description": "People with a row in one of these datasets, created inside the window, are affected.",
            },
        ),
        "affected_categories": (
            [],
            {
                "type": "array",
                "items": {"type": "string", "enum": categories},
                "uniqueItems": True,
                "title": "Affected categories",
                "examples": categories,
                "description": "Every dataset holding one of these categories of information counts as affected.",
            },
        ),
        "subjects_uri": (
            None,
            {
                "type": ["null", "string"],
                "pattern": r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+",
                "title": "Affected people from a file (s3://bucket/key)",
                "description": "Instead of datasets and a window: an object listing subject ids, one per line.",
            },
        ),
        "impact": (None, _text("Possible impact", "What the people affected may suffer (GDPR art. 33(3)(c)).")),
        "measures_taken": (None, _text("Measures taken", "What the company has done and will do (art. 33(3)(d)).")),
        "precautions": (None, _text("Precautions for people", "What people can do to protect themselves.")),
        "remedies": (None, _text("Remedies", "What the company offers (credit monitoring, password reset, ...).")),
        "contact": (
            None,
            {
                "type": ["null", "object"],
                "title": "Contact (override)",
                "description": 'Leave empty to name incidents.yaml\'s contact; or {"name": ..., "email": ..., "phone": ...}.',
                "properties": {"name": {"type": "string"}, "email": {"type": "string"}, "phone": {"type": "string"}},
                "required": ["name", "email"],
                "additionalProperties": False,
            },
        ),
        "channels": (
            ["email", "letter", "telephone"],
            {
                "type": "array",
                "items": {"type": "string", "enum": CHANNELS},
                "uniqueItems": True,
                "minItems": 1,
                "title": "Channels",
                "examples": CHANNELS,
                "description": "'announcement' publishes the public notice even when the fallback rule does not fire.",
            },
        ),
        "delay_reasons": (
            None,
            {
                "type": ["null", "string"],
                "title": "Reasons for delay",
                "description": "Only if a regulator deadline has passed: why (GDPR art. 33(1)).",
            },
        ),
        "phase": (
            "initial",
            {
                "type": "string",
                "enum": PHASES,
                "title": "Phase",
                "description": "'update' notifies only people not notified before and marks reports as follow-ups.",
            },
        ),
        "dry_run": (
            True,
            {
                "type": "boolean",
                "title": "Dry run",
                "description": "On: resolve, decide and write previews only; nothing is sent or published.",
            },
        ),
    }


def airflow_params(catalog: Catalog) -> dict:
    """The DAG's ``params``: Airflow ``Param`` objects built from ``param_schemas``."""
    from airflow.sdk import Param

    params = {}
    for name, (default, schema) in param_schemas(catalog).items():
        params[name] = (
            Param(default, **schema) if default is not None or "null" in str(schema.get("type")) else Param(**schema)
        )
    return params


@dataclass(frozen=True)
class IncidentForm:
    incident_id: str
    title: str
    discovered_at: datetime
    occurred_from: datetime | None
    occurred_to: datetime | None
    cause: str
    affected_datasets: tuple[str, ...]
    affected_categories: tuple[str, ...]
    subjects_uri: str | None
    impact: str
    measures_taken: str
    precautions: str
    remedies: str
    contact: dict | None
    channels: tuple[str, ...]
    delay_reasons: str | None
    phase: str
    dry_run: bool

    def facts(self) -> dict:
        """The form as JSON-ready data (for the register)."""
        out = asdict(self)
        for key in ("discovered_at", "occurred_from", "occurred_to"):
            out[key] = out[key].isoformat() if out[key] else None
        for key in ("affected_datasets", "affected_categories", "channels"):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_facts(cls, facts: dict) -> IncidentForm:
        values = dict(facts)
        for key in ("discovered_at", "occurred_from", "occurred_to"):
            values[key] = datetime.fromisoformat(values[key]) if values[key] else None
        for key in ("affected_datasets", "affected_categories", "channels"):
            values[key] = tuple(values[key])
        return cls(**values)


def _when(name: str, value, problems: list[str]) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{name}: {value!r} is not a date and time; write e.g. 2026-11-20T08:30:00Z")
            return None
    return aware_utc(when)


def parse(conf: dict, catalog: Catalog) -> IncidentForm:
    """Validate the trigger form against the schemas and the rules between fields."""
    import jsonschema

    schemas = param_schemas(catalog)
    problems: list[str] = []
    unknown = sorted(set(conf) - set(schemas))
    if unknown:
        problems.append(f"unknown field(s) {unknown}; the form has {', '.join(schemas)}")
    values = {}
    for name, (default, schema) in schemas.items():
        value = conf.get(name, default)
        values[name] = value
        if value is None and "null" not in str(schema.get("type")):
            problems.append(f"{name}: required ({schema['title']})")
            continue
        try:
            jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
        except jsonschema.ValidationError as exc:
            problems.append(f"{name}: {exc.message}")
    if problems:
        raise FormError(problems)
    for name in TEXT_FIELDS:
        if not values[name].strip():
            problems.append(f"{name}: is empty")
    discovered = _when("discovered_at", values["discovered_at"], problems)
    start = _when("occurred_from", values["occurred_from"], problems)
    end = _when("occurred_to", values["occurred_to"], problems)
    by_scope = bool(values["affected_datasets"] or values["affected_categories"])
    if by_scope and values["subjects_uri"]:
        problems.append("scope: name either affected datasets/categories with a window, or subjects_uri, not both")
    elif not by_scope and not values["subjects_uri"]:
        problems.append(
            "scope: name the affected datasets or categories (with occurred_from and occurred_to), or give subjects_uri"
        )
    if by_scope and (start is None or end is None):
        problems.append("occurred_from and occurred_to: both are needed to find the people affected in those datasets")
    if start and end and start > end:
        problems.append(f"occurred_from {start.isoformat()} is after occurred_to {end.isoformat()}")
    if start and discovered and start > discovered:
        problems.append(f"occurred_from {start.isoformat()} is after discovered_at {discovered.isoformat()}")
    if values["affected_categories"] and not catalog.resolve(list(values["affected_categories"]), []):
        problems.append(f"affected_categories {values['affected_categories']}: no dataset holds them")
    contact = values["contact"]
    if contact and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", contact.get("email", "")):
        problems.append(f"contact.email: {contact.get('email')!r} is not an e-mail address")
    if problems:
        raise FormError(problems)
    return IncidentForm(
        incident_id=values["incident_id"],
        title=values["title"].strip(),
        discovered_at=discovered,
        occurred_from=start,
        occurred_to=end,
        cause=values["cause"].strip(),
        affected_datasets=tuple(values["affected_datasets"]),
        affected_categories=tuple(values["affected_categories"]),
        subjects_uri=values["subjects_uri"],
        impact=values["impact"].strip(),
        measures_taken=values["measures_taken"].strip(),
        precautions=values["precautions"].strip(),
        remedies=values["remedies"].strip(),
        contact=contact,
        channels=tuple(values["channels"]),
        delay_reasons=values["delay_reasons"],
        phase=values["phase"],
        dry_run=values["dry_run"],
    )
