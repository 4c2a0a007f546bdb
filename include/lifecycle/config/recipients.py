"""recipients.yaml: third parties that receive data (SPEC §3), and what the file may say:
roles and the bases they may receive under, agreements, shared fields, consent.

The rules depend on the configuration alone: validation applies them when
the files are loaded, and the sharing gate (``sharing.gate``) applies them
again at run time, beside the rules that need the run's date.  Each refusal
names its rule, the key under the recipient and the field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

from pydantic import Field, model_validator

from lifecycle.catalog import Catalog
from lifecycle.catalog.checks import purpose_problems, system_problems
from lifecycle.catalog.lake import LAKE_TYPES
from lifecycle.errors import Problem
from lifecycle.shapes import Model, Name

RECIPIENTS = "recipients.yaml"

#: the legal bases each role may receive under (PIPL art. 13, 21, 22, 23; GDPR art. 6, 28)
ROLE_BASES: dict[str, tuple[str, ...]] = {
    "processor": ("entrusted_processing",),
    "affiliate": ("entrusted_processing", "consent", "contract"),
    "marketing_partner": ("consent",),
    "acquirer": ("due_diligence",),
    "independent_controller": ("consent", "contract", "legal_obligation"),
    "authority": ("legal_obligation",),
}
#: agreement types a basis needs, where it needs a particular one
BASIS_AGREEMENTS: dict[str, tuple[str, ...]] = {"due_diligence": ("confidentiality",)}

#: the column every delivered record carries: the subject id, or its per-recipient keyed hash
SUBJECT_FIELD = "_subject"
#: placeholders of delivery.prefix: {ds} the data interval's start date, {start}/{end} its bounds (UTC, compact)
DELIVERY_PLACEHOLDERS = frozenset({"ds", "start", "end"})


class Agreement(Model):
    id: str
    type: Literal["confidentiality", "data_processing", "joint_controller", "data_sharing"]
    signed: date
    expires: date | None = None
    document_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    covers: list[str] = []  # categories the signed document covers; empty: exactly what `share` lists

    @model_validator(mode="after")
    def _dates(self):
        if self.expires and self.expires <= self.signed:
            raise ValueError(f"expires {self.expires} is not after signed {self.signed}")
        return self


class ConsentRef(Model):
    dataset: str
    purpose: str


class Delivery(Model):
    system: str
    prefix: str  # {ds}, {start}, {end}: from the run's data interval
    format: Literal["jsonl", "csv"] = "jsonl"
    encryption: Literal["AES256", "aws:kms"] = "AES256"  # server-side encryption requested on every object
    kms_key_id: str | None = None
    part_size_mb: Annotated[int, Field(ge=5, le=512)] = 16  # multipart upload part size
    fetch_rows: Annotated[int, Field(gt=0, le=100_000)] = 5000  # rows per fetch from the server-side cursor

    @model_validator(mode="after")
    def _kms(self):
        if self.kms_key_id and self.encryption != "aws:kms":
            raise ValueError("kms_key_id needs encryption: aws:kms")
        return self


class Recipient(Model):
    id: Name
    name: str
    contact: str
    role: Literal["processor", "independent_controller", "affiliate", "marketing_partner", "acquirer", "authority"]
    legal_basis: Literal["consent", "entrusted_processing", "contract", "legal_obligation", "due_diligence"]
    purpose: str
    agreement: Agreement | None = None
    share: dict[str, list[str]]
    consent: ConsentRef | None = None
    pseudonymize_subject: bool = True
    delivery: Delivery
    schedule: str | None = None
    # record of processing: the catalog's purposes it serves (none: those of the fields it receives),
    # its country (ISO 3166-1 alpha-2) and, for a transfer abroad, the safeguards it rests on
    purposes: list[str] = []
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    safeguards: str | None = None


class Signing(Model):
    conn_id: str = "lifecycle_signing"  # Airflow connection whose password is the manifest signing key


class RecipientsFile(Model):
    signing: Signing = Signing()
    recipients: list[Recipient] = []


@dataclass(frozen=True)
class Refusal:
    rule: str  # e.g. agreement_expired, field_shareable
    key: str  # key path under recipients[i], e.g. share.users[0]
    field: str | None  # dataset.column, where the rule is about a field
    reason: str

    def message(self, recipient: str) -> str:
        on = f" {self.field}:" if self.field else ""
        return f"recipient {recipient!r}: rule {self.rule}:{on} {self.reason}"


def static_refusals(recipient: Recipient, catalog: Catalog) -> list[Refusal]:
    """What the configuration alone forbids (applied at load time and by the gate)."""
    return _basis_and_agreement(recipient, catalog) + _shared_fields(recipient, catalog) + _consent(recipient, catalog)


def _basis_and_agreement(recipient: Recipient, catalog: Catalog) -> list[Refusal]:
    """The basis fits the role; an agreement of the type the basis needs, covering known categories."""
    out: list[Refusal] = []
    allowed = ROLE_BASES[recipient.role]
    if recipient.legal_basis not in allowed:
        out.append(
            Refusal(
                "basis_fits_role",
                "legal_basis",
                None,
                f"a {recipient.role} may receive data under {' or '.join(allowed)}, not {recipient.legal_basis}",
            )
        )
    agreement = recipient.agreement
    if agreement is None:
        out.append(
            Refusal(
                "agreement_exists",
                "agreement",
                None,
                "no agreement: sharing needs a signed agreement {id, type, signed, expires}",
            )
        )
    else:
        needed = BASIS_AGREEMENTS.get(recipient.legal_basis)
        if needed and agreement.type not in needed:
            out.append(
                Refusal(
                    "agreement_type",
                    "agreement.type",
                    None,
                    f"{recipient.legal_basis} needs a {' or '.join(needed)} agreement, not {agreement.type}",
                )
            )
        for i, category in enumerate(agreement.covers):
            if category not in catalog.model.categories:
                out.append(
                    Refusal("field_in_agreement", f"agreement.covers[{i}]", None, f"unknown category {category!r}")
                )
    return out


def _shared_fields(recipient: Recipient, catalog: Catalog) -> list[Refusal]:
    """Every shared field is cataloged, not the subject id, of a category that may be shared
    and that the agreement covers."""
    out: list[Refusal] = []
    agreement = recipient.agreement
    covers = agreement.covers if agreement else []
    for dataset, columns in recipient.share.items():
        if dataset not in catalog.datasets:
            out.append(Refusal("field_in_catalog", f"share.{dataset}", dataset, f"unknown dataset {dataset!r}"))
            continue
        ds = catalog.dataset(dataset)
        if not ds.is_table:
            out.append(Refusal("field_in_catalog", f"share.{dataset}", dataset, "only table datasets can be shared"))
            continue
        if covers and ds.personal and ds.category and not any(catalog.is_within(ds.category, c) for c in covers):
            out.append(
                Refusal(
                    "field_in_agreement",
                    f"share.{dataset}",
                    dataset,
                    f"rows of {dataset!r} are {ds.category} (each record names its subject), which agreement "
                    f"{agreement.id} does not cover (covers: {', '.join(covers)})",
                )
            )
        out += _columns(recipient, catalog, dataset, columns)
    return out


def _columns(recipient: Recipient, catalog: Catalog, dataset: str, columns: list[str]) -> list[Refusal]:
    """The refusals of each shared column of one dataset."""
    out: list[Refusal] = []
    ds, agreement = catalog.dataset(dataset), recipient.agreement
    covers = agreement.covers if agreement else []
    personal = {f.column: f for f in catalog.personal_fields(dataset)}
    subject_columns = _subject_columns(catalog, dataset)
    for j, column in enumerate(columns):
        key, field = f"share.{dataset}[{j}]", f"{dataset}.{column}"
        if column not in ds.fields and column not in catalog.structural_columns(dataset):
            out.append(
                Refusal("field_in_catalog", key, field, f"{column!r} is not a column of {dataset!r} in catalog.yaml")
            )
        elif column in subject_columns:
            out.append(
                Refusal(
                    "subject_field",
                    key,
                    field,
                    f"{column!r} holds the subject id; every record carries it as {SUBJECT_FIELD} "
                    "(a keyed hash when pseudonymize_subject), so do not list it",
                )
            )
        elif column in personal and not catalog.shareable(personal[column].category):
            out.append(
                Refusal(
                    "field_shareable",
                    key,
                    field,
                    f"{column!r} is {personal[column].category}, a category that is never shared",
                )
            )
        elif column in personal and covers and not any(catalog.is_within(personal[column].category, c) for c in covers):
            out.append(
                Refusal(
                    "field_in_agreement",
                    key,
                    field,
                    f"{column!r} is {personal[column].category}, which agreement {agreement.id} does not cover "
                    f"(covers: {', '.join(covers)})",
                )
            )
    return out


def _consent(recipient: Recipient, catalog: Catalog) -> list[Refusal]:
    """Consent as a basis names a consent dataset of the catalog, in the shared datasets' system."""
    out: list[Refusal] = []
    if recipient.legal_basis == "consent" and recipient.consent is None:
        out.append(
            Refusal("consent_configured", "consent", None, "legal_basis consent needs consent: {dataset, purpose}")
        )
    if recipient.consent:
        consent_ds = catalog.datasets.get(recipient.consent.dataset)
        if consent_ds is None:
            out.append(
                Refusal("consent_configured", "consent.dataset", None, f"unknown dataset {recipient.consent.dataset!r}")
            )
        elif consent_ds.consent is None:
            out.append(
                Refusal(
                    "consent_configured",
                    "consent.dataset",
                    None,
                    f"dataset {recipient.consent.dataset!r} has no consent: {{purpose, granted, withdrawn}} in catalog.yaml",
                )
            )
        else:
            apart = sorted(  # a lake table's store reads the consents through their own system's store
                d
                for d in recipient.share
                if d in catalog.datasets
                and catalog.dataset(d).system != consent_ds.system
                and catalog.systems[catalog.dataset(d).system].type not in LAKE_TYPES
            )
            if apart:
                out.append(
                    Refusal(
                        "consent_configured",
                        "consent.dataset",
                        None,
                        f"{recipient.consent.dataset!r} is in system {consent_ds.system!r}, but {', '.join(apart)} "
                        "is not; consent is checked in SQL, so it must be in the same system (or the dataset in a lake)",
                    )
                )
    return out


def _subject_columns(catalog: Catalog, dataset: str) -> set[str]:
    """Columns of ``dataset`` that hold the subject id itself."""
    hops = catalog.path_to_subject(dataset) if dataset in catalog.datasets else ()
    if not hops:
        return {catalog.subject.key}
    return {hops[0].column} if len(hops) == 1 else set()


def check_recipients(catalog: Catalog, recipients) -> Iterator[Problem]:
    for name, count in Counter(r.id for r in recipients.recipients).items():
        if count > 1:
            yield Problem(RECIPIENTS, "recipients", f"id {name!r} is used {count} times; ids must be unique")
    for i, recipient in enumerate(recipients.recipients):
        path = f"recipients[{i}]"
        yield from system_problems(catalog, RECIPIENTS, f"{path}.delivery.system", recipient.delivery.system, "s3")
        for refusal in static_refusals(recipient, catalog):
            yield Problem(RECIPIENTS, f"{path}.{refusal.key}", refusal.reason)
        yield from purpose_problems(catalog, RECIPIENTS, f"{path}.purposes", recipient.purposes)
        placeholders = catalog.prefix_fields(recipient.delivery.prefix)
        if placeholders - DELIVERY_PLACEHOLDERS:
            yield Problem(
                RECIPIENTS,
                f"{path}.delivery.prefix",
                f"unknown placeholder(s) {sorted(placeholders - DELIVERY_PLACEHOLDERS)}; "
                f"allowed: {', '.join('{' + p + '}' for p in sorted(DELIVERY_PLACEHOLDERS))}",
            )
        elif not placeholders:
            yield Problem(
                RECIPIENTS,
                f"{path}.delivery.prefix",
                "needs {ds} or {start}/{end}, so each data interval has keys of its own",
            )
