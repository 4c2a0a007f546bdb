"""The trigger form of ``subject_request``: a person's request, typed by whoever received it.

``param_schemas(config)`` gives each field's JSON schema (choices from the
catalog); ``parse`` checks the rules between fields and returns a
``RequestForm``, or None for a run without a request (a scheduled run that
reads the app's requests table).  The person is named by their key or by the
e-mail address on file; the address typed here is only looked up, never
written to.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

from lifecycle import forms
from lifecycle.forms import FormError
from lifecycle.state.requests import KINDS

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{2,127}$"


def _optional_text(title: str, description: str, **rules) -> tuple:
    """A text field the form may leave empty: (default None, its JSON schema with ``rules``)."""
    return None, {"type": ["null", "string"], **rules, "title": title, "description": description}


def param_schemas(config) -> dict[str, tuple]:
    """name -> (default, JSON schema), in the form's order."""
    catalog = config.catalog
    categories = [c for c in catalog.model.categories if catalog.datasets_in_category(c)]
    purposes = sorted({r.consent.purpose for r in config.recipients.recipients if r.consent})
    return copy.deepcopy(
        {
            "request_id": _optional_text(
                "Request id",
                "The id the request is known by (a ticket number); empty: one is made from the run.",
                pattern=ID_PATTERN,
            ),
            "kind": _optional_text(
                "Kind",
                "access: a copy of everything; erase: delete the chosen categories, keep the "
                "account; withdraw_consent: for one purpose. Empty: read the app's requests table only.",
                enum=[None, *KINDS],
            ),
            "subject": _optional_text(
                "Person (key)",
                f"The person's {catalog.subject.dataset}.{catalog.subject.key}; or give e-mail.",
                minLength=1,
            ),
            "email": _optional_text(
                "Person (e-mail on file)",
                "Looked up in the address on file; the answer goes to that address only.",
                format="email",
            ),
            "categories": (
                [],
                forms.choices(
                    "Categories (erase)", "The categories of information to delete or anonymize.", categories
                ),
            ),
            "purpose": _optional_text(
                "Purpose (withdraw_consent)",
                "The consent's purpose as the consent dataset records it.",
                minLength=1,
                examples=purposes,
            ),
            "dry_run": (
                True,
                {
                    "type": "boolean",
                    "title": "Dry run",
                    "description": "On: record the request and count what would be done; nothing changes or is sent.",
                },
            ),
        }
    )


def airflow_params(config) -> dict:
    return forms.airflow_params(param_schemas(config))


@dataclass(frozen=True)
class RequestForm:
    request_id: str
    kind: str
    subject: str | None
    email: str | None
    categories: tuple[str, ...]
    purpose: str | None
    dry_run: bool


def parse(conf: dict, config, run_id: str) -> RequestForm | None:
    """The form's request, or None when no kind is given (the run reads the requests table)."""
    values = forms.checked(conf, param_schemas(config))
    kind = values["kind"]
    named = [k for k in ("subject", "email") if values[k]]
    problems = []
    if kind is None:
        given = [k for k in ("request_id", "subject", "email", "purpose") if values[k]] + (
            ["categories"] if values["categories"] else []
        )
        if given:
            problems.append(f"kind: required when {', '.join(given)} is given")
        if problems:
            raise FormError(problems)
        return None
    if len(named) != 1:
        problems.append("subject or email: name the person one way (their key, or the e-mail address on file)")
    if kind == "erase" and not values["categories"]:
        problems.append("categories: an erase request names the categories to delete")
    if kind != "erase" and values["categories"]:
        problems.append(f"categories: only an erase request names categories, not {kind}")
    if kind == "withdraw_consent" and not values["purpose"]:
        problems.append("purpose: a withdraw_consent request names the consent's purpose")
    if kind != "withdraw_consent" and values["purpose"]:
        problems.append(f"purpose: only a withdraw_consent request names a purpose, not {kind}")
    if kind == "access" and config.requests.access is None:
        problems.append("kind: access requests need requests.yaml: access (delivery system and prefix)")
    if problems:
        raise FormError(problems)
    request_id = values["request_id"] or "form-" + hashlib.sha256(run_id.encode()).hexdigest()[:16]
    return RequestForm(
        request_id,
        kind,
        values["subject"],
        values["email"],
        tuple(values["categories"]),
        values["purpose"],
        values["dry_run"],
    )
