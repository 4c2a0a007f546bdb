"""Typed models of the configuration files (SPEC §3).

Shape only: unknown keys, wrong types and bad durations are refused here.
Rules that need more than one value (references, cycles, statutory floors)
live in ``checks.py``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    ValidationError,
    model_validator,
)

from lifecycle.durations import Duration

DurationField = Annotated[Duration, BeforeValidator(Duration.parse), PlainSerializer(str)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
RuleName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
LINK = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*->\s*([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- catalog.yaml


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


class Category(Model):
    title: str | None = None
    parent: str | None = None
    shareable: bool = True  # false: never leaves to a third party (credentials)


class Anonymize(Model):
    """A strategy and its options; ``anonymize: hmac`` is short for ``{strategy: hmac}``."""

    strategy: str
    text: str | None = None  # redact: the replacement
    to: Literal["day", "month", "year"] | None = None  # generalize_date: the precision kept


def _anonymize_shorthand(value):
    if value is None:
        raise ValueError(
            'unquoted null is ambiguous: write anonymize: "null" for the null strategy, or leave the key out'
        )
    return {"strategy": value} if isinstance(value, str) else value


class FieldSpec(Model):
    category: str | None = None  # none: the dataset's whole-row category
    personal: bool = True
    anonymize: Annotated[Anonymize | None, BeforeValidator(_anonymize_shorthand)] = None
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

    @model_validator(mode="after")
    def _table_or_prefix(self):
        if bool(self.table) == bool(self.prefix):
            raise ValueError("a dataset has either table (sql) or prefix (s3), not both and not neither")
        if self.table and not self.primary_key and (self.personal or self.subject):
            raise ValueError(
                "a table dataset needs primary_key (one column); only a personal: false table "
                "without a subject link may leave it out"
            )
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


class Reports(Model):
    system: str | None = None
    prefix: str = ""
    path: str | None = None

    @model_validator(mode="after")
    def _one_destination(self):
        if bool(self.system) == bool(self.path):
            raise ValueError("reports needs either system (with prefix) or path, not both")
        return self


class Anonymization(Model):
    """Where secrets for keyed strategies come from (never the YAML itself)."""

    hmac_key_variable: str = "lifecycle_hmac_key"


class CatalogFile(Model):
    systems: dict[Name, System]
    categories: dict[Name, Category]
    subject: Subject
    datasets: dict[Name, Dataset]
    state: str = "state"  # the system holding the ledger and registers
    reports: Reports = Reports(path="var/reports")
    anonymization: Anonymization = Anonymization()


# -------------------------------------------------------------- retention.yaml


class AppliesTo(Model):
    categories: list[str] = []
    datasets: list[str] = []

    @model_validator(mode="after")
    def _something(self):
        if not self.categories and not self.datasets:
            raise ValueError("applies_to names categories or datasets (or both)")
        return self


class RetentionRule(Model):
    name: RuleName
    applies_to: AppliesTo
    keep: DurationField
    action: Literal["delete", "anonymize"] = "delete"
    # delete only: a range partition of the table wholly past the cutoff, holding nothing held or
    # still referenced, is dropped instead of deleted row by row (None: yes where the data allows)
    drop_partitions: StrictBool | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _drops_delete(self):
        if self.drop_partitions and self.action != "delete":
            raise ValueError(
                f"drop_partitions: true needs action: delete (this rule has action: {self.action}); "
                "anonymizing rewrites rows, it never drops them: remove drop_partitions"
            )
        return self

    @property
    def drops_partitions(self) -> bool:
        return self.action == "delete" and self.drop_partitions is not False


class StatutoryMinimum(Model):
    name: RuleName
    applies_to: AppliesTo
    minimum: DurationField
    basis: str


class RetentionFile(Model):
    schedule: str | None = "0 2 * * *"
    batch_size: Annotated[int, Field(gt=0, le=1_000_000)] = 10_000
    max_fraction_per_run: Annotated[float, Field(gt=0, le=1)] = 0.25
    max_partitions_per_dataset: Annotated[int, Field(gt=0, le=64)] = 4
    rules: list[RetentionRule] = []
    statutory: list[StatutoryMinimum] = []


# ----------------------------------------------------------- cancellation.yaml


class Requests(Model):
    dataset: str
    subject: str
    requested_at: str
    withdrawn_at: str | None = None


class ActionOverride(Model):
    applies_to: AppliesTo
    action: Literal["delete", "anonymize"]


class Notify(Model):
    scheduled: str | None = None
    completed: str | None = None


class CancellationFile(Model):
    schedule: str | None = "@hourly"
    requests: Requests
    grace_period: DurationField
    complete_within: DurationField
    default_action: Literal["delete", "anonymize"] = "delete"
    overrides: list[ActionOverride] = []
    notify: Notify = Notify()
    batch_size: Annotated[int, Field(gt=0, le=10_000)] = 500


# ------------------------------------------------------------- recipients.yaml


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


class Signing(Model):
    conn_id: str = "lifecycle_signing"  # Airflow connection whose password is the manifest signing key


class RecipientsFile(Model):
    signing: Signing = Signing()
    recipients: list[Recipient] = []


# -------------------------------------------------------------- incidents.yaml


CONN_ID = r"^[A-Za-z0-9_.-]+$"  # what Airflow accepts as a connection id


class Email(Model):
    conn_id: Annotated[str, Field(pattern=CONN_ID)] = "smtp_default"
    from_: str = Field(alias="from")
    max_per_second: Annotated[float, Field(gt=0)] = 50  # for the whole run, every connection together
    connections: Annotated[int, Field(ge=1, le=64)] = 4  # SMTP sessions an incident run keeps open side by side
    retry_attempts: Annotated[int, Field(ge=1, le=10)] = 3  # tries per address on a 4xx reply
    retry_backoff: DurationField = Duration.parse("2s")  # wait before the 2nd try; doubles each time

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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


class ContactPoint(Model):
    """Who people and regulators can write to about their information."""

    name: str
    email: str
    phone: str | None = None


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


# --------------------------------------------------------------- requests.yaml


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
    """E-mail templates (include/templates/mail/<name>.<locale>.txt.j2); null: no mail of that kind."""

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


# --------------------------------------------------------------- deadlines.yaml


class NearWindows(Model):
    """How long before its deadline a check reports a finding as *near* (0s: only past ones)."""

    erasure_requests: DurationField = Duration.parse("24h")  # cancellation.yaml complete_within
    subject_requests: DurationField = Duration.parse("24h")  # requests.yaml respond_within
    regulator_reports: DurationField = Duration.parse("6h")  # incidents.yaml regulators[].deadline
    agreements: DurationField = Duration.parse("30d")  # recipients.yaml recipients[].agreement.expires


class DeadlinesFile(Model):
    """The ``lifecycle_deadlines`` DAG: when it looks, how far ahead, whether it mails the contact."""

    schedule: str | None = "@hourly"
    near: NearWindows = NearWindows()
    notify: bool = True  # mail notifications.yaml: contact a summary (counts and ids) when anything is near or past


# ---------------------------------------------------------- notifications.yaml


class NotificationsFile(Model):
    """Mail to people, for every DAG that writes to them (erasure notices, incident notices)."""

    email: Email
    contact: ContactPoint
    locales: list[str] = ["en"]  # the first is the fallback for a person whose language has no template
