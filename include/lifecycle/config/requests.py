"""requests.yaml: a person's own requests (see, erase, withdraw a consent) (SPEC §3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from lifecycle.catalog import Catalog
from lifecycle.catalog.checks import purge_within, system_problems
from lifecycle.durations import Duration
from lifecycle.errors import Problem
from lifecycle.shapes import DurationField, Model

REQUESTS = "requests.yaml"
LONGEST_PRESIGNED_LINK = Duration.parse("7d")  # S3's limit for a link signed with SigV4


class RequestsTable(Model):
    """The app's own table of people's requests, read on ``schedule``: its dataset and columns."""

    dataset: str
    id: str  # the app's request id: the register's request_id is ``<dataset>:<id>``
    subject: str
    kind: str  # holds access | erase | withdraw_consent
    requested_at: str
    categories: str | None = None  # erase: comma-separated category names
    purpose: str | None = None  # withdraw_consent: the consent's purpose


class Intake(Model):
    schedule: str | None = "@hourly"  # when the table is read; null: the form only
    requests: RequestsTable


class AccessDelivery(Model):
    system: str  # an s3 system
    prefix: str = "access/{request_id}/"  # {request_id}: one folder per request
    encryption: Literal["AES256", "aws:kms"] = "AES256"
    kms_key_id: str | None = None
    part_size_mb: Annotated[int, Field(ge=5, le=512)] = 16


class Access(Model):
    delivery: AccessDelivery
    link_expires: DurationField = Duration.parse("7d")  # the e-mailed link's lifetime (S3 allows at most 7d)


class RequestNotify(Model):
    """E-mail templates (include/lifecycle/templates/mail/<name>.<locale>.txt.j2); null: no mail of that kind."""

    access_ready: str | None = "access_ready"  # the link to the package, to the address on file only
    erased: str | None = "subject_erased"
    consent_withdrawn: str | None = "consent_withdrawn"
    deletion_request: str | None = "recipient_deletion_request"  # to a recipient holding the person's data


class RequestsFile(Model):
    """A person's own requests: see their information, delete some of it, withdraw a consent."""

    respond_within: DurationField = Duration.parse("7d")  # counted from the request
    intake: Intake | None = None  # none: requests come from the trigger form only
    access: Access | None = None  # none: access requests are refused
    notify: RequestNotify = RequestNotify()


def check_requests(catalog: Catalog, requests) -> Iterator[Problem]:
    yield from purge_within(catalog, REQUESTS, "respond_within", requests.respond_within)
    if requests.intake is not None:
        table = requests.intake.requests
        path = "intake.requests"
        if table.dataset not in catalog.datasets:
            yield Problem(REQUESTS, f"{path}.dataset", f"unknown dataset {table.dataset!r}")
        elif not catalog.dataset(table.dataset).is_table:
            yield Problem(REQUESTS, f"{path}.dataset", f"{table.dataset!r} must be a table dataset")
        else:
            known = set(catalog.dataset(table.dataset).fields) | catalog.structural_columns(table.dataset)
            for key in ("id", "subject", "kind", "requested_at", "categories", "purpose"):
                column = getattr(table, key)
                if column is not None and column not in known:
                    yield Problem(
                        REQUESTS,
                        f"{path}.{key}",
                        f"{column!r} is not a column of dataset {table.dataset!r} in catalog.yaml",
                    )
    if requests.access is not None:
        delivery = requests.access.delivery
        yield from system_problems(catalog, REQUESTS, "access.delivery.system", delivery.system, "s3")
        placeholders = catalog.prefix_fields(delivery.prefix)
        if "request_id" not in placeholders or placeholders - {"request_id", "subject"}:
            yield Problem(
                REQUESTS,
                "access.delivery.prefix",
                f"{delivery.prefix!r} must hold {{request_id}} (one folder per request) and no placeholder but {{subject}}",
            )
        if delivery.encryption == "aws:kms" and not delivery.kms_key_id:
            yield Problem(REQUESTS, "access.delivery.kms_key_id", "aws:kms encryption needs kms_key_id")
        if LONGEST_PRESIGNED_LINK.surely_shorter_than(requests.access.link_expires):
            yield Problem(
                REQUESTS,
                "access.link_expires",
                f"{requests.access.link_expires} is longer than a presigned S3 link can live (7d)",
            )
