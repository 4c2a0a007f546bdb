"""catalog.yaml's shape: systems, categories, the subject, datasets and their fields (SPEC §3).

Shape only: unknown keys, wrong types and bad durations are refused here; the
rules that need the whole catalog (references, subject links) are in ``checks``.
``AppliesTo`` is a selection of the catalog that other files use (retention
rules and floors, cancellation overrides).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from lifecycle.anonymize import Anonymize, shorthand
from lifecycle.catalog.lake import DeltaSystem, IcebergSystem
from lifecycle.durations import Duration
from lifecycle.shapes import DurationField, Model, Name, exactly_one

LINK = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*->\s*([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*$")


class System(Model):
    type: Literal["sql", "s3"]
    conn_id: str
    bucket: str | None = None
    pool_slots: Annotated[int, Field(gt=0, le=128)] = 4  # Airflow pool lifecycle_<system>: concurrent tasks on it
    list_concurrency: Annotated[int, Field(gt=0, le=64)] = 8  # s3: prefixes listed side by side by one task
    description: str | None = None

    @model_validator(mode="after")
    def _bucket_for_s3(self):
        if self.type == "s3" and not self.bucket:
            raise ValueError("an s3 system needs a bucket")
        if self.type == "sql" and self.bucket:
            raise ValueError("a sql system has no bucket")
        return self


#: the legal bases a purpose may name (GDPR art. 6(1)(a)-(f)), with the article each stands for
LEGAL_BASES: dict[str, str] = {
    "consent": "GDPR art. 6(1)(a): consent",
    "contract": "GDPR art. 6(1)(b): performance of a contract with the person",
    "legal_obligation": "GDPR art. 6(1)(c): compliance with a legal obligation",
    "vital_interests": "GDPR art. 6(1)(d): vital interests",
    "public_task": "GDPR art. 6(1)(e): a task in the public interest",
    "legitimate_interests": "GDPR art. 6(1)(f): legitimate interests",
}


class Category(Model):
    title: str | None = None
    parent: str | None = None
    shareable: bool = True  # false: never leaves to a third party (credentials)
    purposes: list[str] = []  # purposes every dataset holding it (or a category below it) serves


class Purpose(Model):
    """A purpose of processing (record of processing, GDPR art. 30): why, and on what legal basis."""

    title: str
    legal_basis: str  # one of LEGAL_BASES (checked with the whole catalog, so the message lists them)
    description: str | None = None


class Party(Model):
    """A person or body the record of processing names (a representative, a data protection officer)."""

    name: str
    email: str | None = None
    address: str | None = None


class Controller(Model):
    """Who decides why and how personal information is processed, and how people reach them."""

    name: str
    address: str
    privacy_contact: str  # the e-mail address people write to about their information
    representative: Party | None = None  # in the EU (GDPR art. 27), where the controller is not
    dpo: Party | None = None  # the data protection officer, where one is designated


class FieldSpec(Model):
    category: str | None = None  # none: the dataset's whole-row category
    personal: bool = True
    anonymize: Annotated[Anonymize | None, BeforeValidator(shorthand)] = None
    description: str | None = None

    @model_validator(mode="after")
    def _non_personal_is_plain(self):
        if not self.personal and (self.category or self.anonymize):
            raise ValueError("a field with personal: false has no category and no anonymize")
        return self


class SubjectLink(Model):
    column: str
    dataset: str
    target_column: str

    def __str__(self) -> str:
        return f"{self.column} -> {self.dataset}.{self.target_column}"


def _parse_link(value):
    if isinstance(value, str):
        match = LINK.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a subject link; write '<column> -> <dataset>.<column>'")
        return {"column": match[1], "dataset": match[2], "target_column": match[3]}
    return value


class Consent(Model):
    purpose: str
    granted: str
    withdrawn: str | None = None


def _one_key_column(value):
    """The engine works in ranges of one column; a YAML list here is a composite key."""
    if isinstance(value, list):
        written = f"a list ([{', '.join(map(str, value))}])"
        if len(value) == 1:
            raise ValueError(f"{written}; write the column alone: primary_key: {value[0]}")
        raise ValueError(f"{written}; composite keys are not supported: add a single-column unique key and name it")
    return value


class Inventory(Model):
    """An S3 Inventory of an object dataset's bucket (AWS layout: ``<prefix><YYYY-MM-DDTHH-MMZ>/manifest.json``
    naming CSV files, all object versions): retention plans from the latest instead of listing."""

    system: str  # the s3 system holding the inventory files
    prefix: str  # <destination prefix>/<source bucket>/<configuration id>/
    max_age: DurationField = Duration.parse("7d")  # older (or none): the dataset is listed instead


class OnAnonymize(Model):
    """What cancellation erasure does to an anonymized row's subject link."""

    link: Literal["clear", "keep"] = "clear"


class Dataset(Model):
    system: str
    personal: bool = True
    description: str | None = None
    table: str | None = None
    primary_key: Annotated[str | None, BeforeValidator(_one_key_column)] = None
    prefix: str | None = None
    subject: Annotated[SubjectLink | None, BeforeValidator(_parse_link)] = None
    created: str | None = None
    category: str | None = None
    fields: dict[str, FieldSpec] = {}
    consent: Consent | None = None
    inventory: Inventory | None = None  # object datasets: plan retention from S3 Inventory
    # time columns held as numbers: what they count (a date/time type says so itself)
    times: dict[str, Literal["epoch_seconds", "epoch_milliseconds"]] = {}
    on_anonymize: OnAnonymize | None = None  # cancellation erasure: clear (default) or keep the subject link
    purposes: list[str] = []  # purposes of the whole dataset, beside those of its categories

    @model_validator(mode="after")
    def _table_or_prefix(self):
        exactly_one(
            self, "table", "prefix", "a dataset has either table (sql) or prefix (s3), not both and not neither"
        )
        if self.table and not self.primary_key and (self.personal or self.subject):
            raise ValueError(
                "a table dataset needs primary_key (one column); only a personal: false table "
                "without a subject link may leave it out"
            )
        if self.on_anonymize is not None and self.subject is None:
            raise ValueError("on_anonymize needs a subject link to clear or keep; this dataset has no subject")
        return self

    @property
    def is_table(self) -> bool:
        return self.table is not None


class Contact(Model):
    email: str | None = None
    name: str | None = None
    locale: str | None = None
    country: str | None = None
    phone: str | None = None
    address: str | None = None  # postal address: letters to people without e-mail


class Subject(Model):
    dataset: str
    key: str
    contact: Contact = Contact()
    people: list[str] = []  # the categories of people the subject stands for (record of processing)


class Reports(Model):
    system: str | None = None
    prefix: str = ""
    path: str | None = None

    @model_validator(mode="after")
    def _one_destination(self):
        return exactly_one(self, "system", "path", "reports needs either system (with prefix) or path, not both")


class Anonymization(Model):
    """Where secrets for keyed strategies come from (never the YAML itself)."""

    hmac_key_variable: str = "lifecycle_hmac_key"


AnySystem = Annotated[System | IcebergSystem | DeltaSystem, Field(discriminator="type")]


class RetiredKey(Model):
    """A public key that signed earlier documents, kept listed so they still verify."""

    public_key: str  # base64 of the 32 raw bytes, as published
    retired_on: str | None = None


class Evidence(Model):
    """Signatures anyone can check, and where ledger checkpoints are published."""

    signing_conn_id: str = "lifecycle_evidence_signing"  # password: the Ed25519 private key; never in YAML
    retired_keys: list[RetiredKey] = []
    checkpoints: Reports = Reports(path="$LIFECYCLE_VAR_DIR/evidence")


class CatalogFile(Model):
    systems: dict[Name, AnySystem]
    categories: dict[Name, Category]
    subject: Subject
    datasets: dict[Name, Dataset]
    state: str = "state"  # the system holding the ledger and registers
    reports: Reports = Reports(path="var/reports")
    anonymization: Anonymization = Anonymization()
    evidence: Evidence = Evidence()
    controller: Controller | None = None
    purposes: dict[Name, Purpose] = {}
    security_measures: list[str] = []  # what protects the information, as the record of processing states it


class AppliesTo(Model):
    categories: list[str] = []
    datasets: list[str] = []

    @model_validator(mode="after")
    def _something(self):
        if not self.categories and not self.datasets:
            raise ValueError("applies_to names categories or datasets (or both)")
        return self
