"""incidents.yaml: who is told about an incident, and which regulators get a report (SPEC §3)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator

from lifecycle.catalog import Catalog
from lifecycle.catalog.checks import category_problems, system_problems
from lifecycle.config.notifications import ContactPoint, Email
from lifecycle.durations import Duration
from lifecycle.errors import Problem
from lifecycle.shapes import DurationField, Model, Name

INCIDENTS = "incidents.yaml"
REGULATOR_TEMPLATE = "regulator_report"  # the cover e-mail of a regulator's report


class Announcement(Model):
    system: str
    key: str


class Fallback(Model):
    affected_at_least: Annotated[int, Field(ge=0)] | None = None
    unreachable_fraction_at_least: Annotated[float, Field(ge=0, le=1)] | None = None


def _country_code(value):
    if not (isinstance(value, str) and len(value) == 2 and value.isalpha() and value.isupper()):
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. DE, FR, CN)")
    return value


CountryCode = Annotated[str, BeforeValidator(_country_code)]


class RegulatorWhen(Model):
    affected_at_least: Annotated[int, Field(ge=0)] | None = None
    subject_countries: list[CountryCode] = []
    categories: list[str] = []


EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def _email_address(value):
    if isinstance(value, str) and not EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address (write the address alone: reports@authority.example)")
    return value


EmailAddress = Annotated[str, BeforeValidator(_email_address)]


class RegulatorUpload(Model):
    """Where a regulator's report is uploaded: ``<prefix><incident_id>/<run_id>/report.<regulator>.pdf|json``."""

    system: str  # an s3 system of the catalog
    prefix: str = ""


class Regulator(Model):
    id: Name
    name: str
    deadline: DurationField
    when: RegulatorWhen = RegulatorWhen()
    contact: EmailAddress | None = None  # the report is e-mailed here, with its PDF and JSON attached
    delivery: RegulatorUpload | None = None  # and/or uploaded there
    locale: str | None = None  # the cover e-mail's language (default: the first of notifications.yaml locales)


class IncidentsFile(Model):
    # email, contact and locales belong in notifications.yaml; read here only when that file is absent
    email: Email | None = None
    announcement: Announcement | None = None
    fallback: Fallback = Fallback()
    regulators: list[Regulator] = []
    contact: ContactPoint | None = None
    locales: list[str] | None = None
    approval: Literal["required", "none"] = "required"
    approval_timeout: DurationField = Duration.parse("24h")  # an unanswered approval rejects after this long
    batch_size: Annotated[int, Field(gt=0, le=100_000)] = 5000  # affected people per mapped send task

    @model_validator(mode="wrap")
    @classmethod
    def _contact_beside_email(cls, data, handler):
        """An older incidents.yaml carries ``email`` and ``contact`` together; one without
        the other is reported as a missing key, beside whatever else is wrong."""
        missing = isinstance(data, dict) and "email" in data and "contact" not in data
        try:
            model = handler(data)
        except ValidationError as exc:
            if not missing:
                raise
            errors = [{k: e[k] for k in ("type", "loc", "input", "ctx") if k in e} for e in exc.errors()]
            raise ValidationError.from_exception_data(
                exc.title, [*errors, {"type": "missing", "loc": ("contact",), "input": data}]
            ) from None
        if missing:
            raise ValidationError.from_exception_data(
                cls.__name__, [{"type": "missing", "loc": ("contact",), "input": data}]
            )
        return model


def check_incidents(catalog: Catalog, incidents) -> Iterator[Problem]:
    if incidents.announcement:
        yield from system_problems(catalog, INCIDENTS, "announcement.system", incidents.announcement.system, "s3")
    for name, count in Counter(r.id for r in incidents.regulators).items():
        if count > 1:
            yield Problem(INCIDENTS, "regulators", f"id {name!r} is used {count} times; ids must be unique")
    for i, regulator in enumerate(incidents.regulators):
        for j, category in enumerate(regulator.when.categories):
            yield from category_problems(catalog, INCIDENTS, f"regulators[{i}].when.categories[{j}]", category)
        if regulator.contact is None and regulator.delivery is None:
            yield Problem(
                INCIDENTS,
                f"regulators[{i}]",
                f"regulator {regulator.id!r} has neither contact (an e-mail address) nor delivery "
                "{system, prefix}: its report could not reach it; give one or both",
            )
        if regulator.delivery is not None:
            yield from system_problems(
                catalog, INCIDENTS, f"regulators[{i}].delivery.system", regulator.delivery.system, "s3"
            )
