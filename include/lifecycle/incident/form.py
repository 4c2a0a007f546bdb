"""The trigger form of ``incident_notification``: JSON-schema params and the parsed form.

``param_schemas(catalog)`` gives each field's JSON schema (Airflow renders
them as the Trigger form and refuses input that does not fit); ``parse``
checks the rules a schema cannot express (scope, time order, known datasets)
and returns an ``IncidentForm`` or raises ``FormError`` listing every problem.
The form holds facts about the incident, never personal information.
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass
from datetime import datetime

from lifecycle import forms
from lifecycle.catalog import Catalog
from lifecycle.clock import aware_utc
from lifecycle.forms import FormError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"
CHANNELS = ["email", "letter", "telephone", "announcement"]
PHASES = ["initial", "update"]
DECISIONS = ["notify", "not_notify"]  # whether the people affected (and the public) are told
TEXT_FIELDS = ("title", "cause", "impact", "measures_taken", "precautions", "remedies")  # stripped when parsed
TIME_FIELDS = ("discovered_at", "occurred_from", "occurred_to")
LIST_FIELDS = ("affected_datasets", "affected_categories", "channels")  # tuples in the form, lists in the facts


def _text(title: str, description: str, *, lines: bool = True) -> dict:
    """A required answer in words (three characters at least), on several lines unless ``lines`` is off."""
    schema = {"type": "string", "minLength": 3, "title": title, "description": description}
    if lines:
        schema["format"] = "multiline"
    return schema


def _moment(title: str, description: str) -> dict:
    """An optional date and time (the window's ends)."""
    return {"type": ["null", "string"], "format": "date-time", "title": title, "description": description}


#: What happened and when (name -> (default, JSON schema)): the form's first fields.
_INCIDENT_FIELDS = {
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
    "occurred_from": (None, _moment("Occurred from (UTC)", "Start of the window in which the data was exposed.")),
    "occurred_to": (None, _moment("Occurred to (UTC)", "End of the window in which the data was exposed.")),
    "cause": (None, _text("Cause", "What happened and why (GDPR art. 33(3)(a), PIPL art. 57).")),
}

#: The affected people named in a file instead of by datasets or categories.
_SUBJECTS_URI = (
    None,
    {
        "type": ["null", "string"],
        "pattern": r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+",
        "title": "Affected people from a file (s3://bucket/key)",
        "description": "Instead of datasets and a window: an object listing subject ids, one per line.",
    },
)

#: What the notices say and how they go out: the form's last fields.
_NOTICE_FIELDS = {
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
        forms.choices(
            "Channels",
            "'announcement' publishes the public notice even when the fallback rule does not fire.",
            CHANNELS,
            minItems=1,
        ),
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
            "description": "'update' notifies people not notified before (newly affected, and those an "
            "interrupted earlier run still owes a notice) and marks reports as follow-ups.",
        },
    ),
    "decision": (
        "notify",
        {
            "type": "string",
            "enum": DECISIONS,
            "title": "Decision",
            "description": "'notify' tells the people affected (and the public when the fallback fires). "
            "'not_notify' records the decision not to tell them, with its reason: approved like a sending run, "
            "it sends no notice and publishes nothing; a regulator whose conditions hold still gets its report.",
        },
    ),
    "decision_reason": (
        None,
        {
            "type": ["null", "string"],
            "format": "multiline",
            "title": "Why not notify",
            "description": "Required with decision 'not_notify' (GDPR art. 33(5), 34(3)): why the people affected "
            "are not told, e.g. the data was encrypted and the key not exposed. Kept in the register and the ledger.",
        },
    ),
    "resend_uncertain": (
        False,
        {
            "type": "boolean",
            "title": "Resend uncertain notices",
            "description": "Phase 'update' only: also mail the people whose notice is uncertain (a run was "
            "killed while their mail was on the wire; they may have it). Off: they are never mailed twice.",
        },
    ),
    "resend_reason": (
        None,
        {
            "type": ["null", "string"],
            "title": "Why resend uncertain notices",
            "description": "Required with 'Resend uncertain notices': why (e.g. the mail server's log shows "
            "those Message-IDs were never accepted). Kept in the ledger.",
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


def _scope_fields(catalog: Catalog) -> dict[str, tuple]:
    """Who is affected: datasets or categories picked from the catalog's, or a file of subject ids."""
    datasets = [name for name, ds in catalog.datasets.items() if ds.personal and ds.created]
    categories = list(catalog.model.categories)
    return {
        "affected_datasets": (
            [],
            forms.choices(
                "Affected datasets",
                "People with a row in one of these datasets, created inside the window, are affected.",
                datasets,
            ),
        ),
        "affected_categories": (
            [],
            forms.choices(
                "Affected categories",
                "Every dataset holding one of these categories of information counts as affected.",
                categories,
            ),
        ),
        "subjects_uri": _SUBJECTS_URI,
    }


def param_schemas(catalog: Catalog) -> dict[str, tuple]:
    """name -> (default, JSON schema) for each form field, in the form's order; choices come
    from the catalog.  A fresh copy each call, so a caller may change what it gets."""
    return copy.deepcopy({**_INCIDENT_FIELDS, **_scope_fields(catalog), **_NOTICE_FIELDS})


def airflow_params(catalog: Catalog) -> dict:
    """The DAG's ``params``: Airflow ``Param`` objects built from ``param_schemas``."""
    return forms.airflow_params(param_schemas(catalog))


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
    resend_uncertain: bool = False  # release the notices in doubt of earlier runs for sending
    resend_reason: str | None = None
    decision: str = "notify"  # notify | not_notify (registers written before the decision: notify)
    decision_reason: str | None = None  # why not notify

    @property
    def notifies(self) -> bool:
        """The people affected are to be told (decision ``notify``)."""
        return self.decision == "notify"

    def facts(self) -> dict:
        """The form as JSON-ready data (for the register)."""
        out = asdict(self)
        for key in TIME_FIELDS:
            out[key] = out[key].isoformat() if out[key] else None
        for key in LIST_FIELDS:
            out[key] = list(out[key])
        return out

    @classmethod
    def from_facts(cls, facts: dict) -> IncidentForm:
        values = dict(facts)
        for key in TIME_FIELDS:
            values[key] = datetime.fromisoformat(values[key]) if values[key] else None
        for key in LIST_FIELDS:
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
    values = forms.checked(conf, param_schemas(catalog))
    problems = [f"{name}: is empty" for name in TEXT_FIELDS if not values[name].strip()]
    times = {name: _when(name, values[name], problems) for name in TIME_FIELDS}
    problems += _scope_problems(values, times["occurred_from"], times["occurred_to"])
    problems += _time_order_problems(**times)
    problems += _content_problems(values, catalog)
    problems += _resend_problems(values)
    problems += _decision_problems(values)
    if problems:
        raise FormError(problems)
    return IncidentForm(
        **{
            **values,
            **times,
            "decision_reason": (values["decision_reason"] or "").strip() or None,
            **{name: values[name].strip() for name in TEXT_FIELDS},
            **{name: tuple(values[name]) for name in LIST_FIELDS},
        }
    )


def _scope_problems(values: dict, start: datetime | None, end: datetime | None) -> list[str]:
    """The people affected are named one way: datasets/categories within a window, or a file."""
    problems = []
    by_scope = bool(values["affected_datasets"] or values["affected_categories"])
    if by_scope and values["subjects_uri"]:
        problems.append("scope: name either affected datasets/categories with a window, or subjects_uri, not both")
    elif not by_scope and not values["subjects_uri"]:
        problems.append(
            "scope: name the affected datasets or categories (with occurred_from and occurred_to), or give subjects_uri"
        )
    if by_scope and (start is None or end is None):
        problems.append("occurred_from and occurred_to: both are needed to find the people affected in those datasets")
    return problems


def _time_order_problems(
    discovered_at: datetime | None, occurred_from: datetime | None, occurred_to: datetime | None
) -> list[str]:
    """The window opens before it closes, and before the incident was discovered."""
    problems = []
    if occurred_from and occurred_to and occurred_from > occurred_to:
        problems.append(f"occurred_from {occurred_from.isoformat()} is after occurred_to {occurred_to.isoformat()}")
    if occurred_from and discovered_at and occurred_from > discovered_at:
        problems.append(f"occurred_from {occurred_from.isoformat()} is after discovered_at {discovered_at.isoformat()}")
    return problems


def _resend_problems(values: dict) -> list[str]:
    """Notices in doubt are released by an update run only, and only with a reason."""
    if not values.get("resend_uncertain"):
        return []
    problems = []
    if values["phase"] != "update":
        problems.append("resend_uncertain: only a run with phase 'update' may resend notices in doubt")
    if len((values.get("resend_reason") or "").strip()) < 3:
        problems.append("resend_reason: say why the uncertain notices are sent again (required with resend_uncertain)")
    return problems


def _decision_problems(values: dict) -> list[str]:
    """A decision not to notify carries its reason and sends nothing; a reason goes with that decision only."""
    reason = (values["decision_reason"] or "").strip()
    if values["decision"] == "notify":
        if reason:
            return [
                "decision_reason: given with decision 'notify'; it is the reason not to notify: choose "
                "decision 'not_notify', or leave decision_reason empty"
            ]
        return []
    problems = []
    if len(reason) < 3:
        problems.append(
            "decision_reason: say why the people affected are not notified (required with decision 'not_notify'; "
            "kept in the register and the ledger)"
        )
    if "announcement" in values["channels"]:
        problems.append("channels: 'announcement' publishes the public notice; decision 'not_notify' publishes none")
    if values["resend_uncertain"]:
        problems.append("resend_uncertain: decision 'not_notify' sends no notice; resend with decision 'notify'")
    return problems


def _content_problems(values: dict, catalog: Catalog) -> list[str]:
    """Values a schema cannot judge: categories no dataset holds, a contact address that is none."""
    problems = []
    if values["affected_categories"] and not catalog.resolve(list(values["affected_categories"]), []):
        problems.append(f"affected_categories {values['affected_categories']}: no dataset holds them")
    contact = values["contact"]
    if contact and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", contact.get("email", "")):
        problems.append(f"contact.email: {contact.get('email')!r} is not an e-mail address")
    return problems
