"""The facts one stage of an incident run hands the next, and their JSON in the register.

A run's row in ``lifecycle_incident_runs`` keeps its documents as JSON text
(facts, scope, obligations, approval, figures).  This module is the one place
that turns that text into these frozen objects and back, with the keys the
register has always held: registers written before still read, and a
renamed field fails here, on the first read, not tasks later.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from lifecycle.clock import iso_utc
from lifecycle.incident.form import IncidentForm


def to_json(document) -> str:
    """A run document (``Scope``, ``Obligations``, ``Approval``, ``Figures``) as the register stores it."""
    return json.dumps(document.to_dict(), sort_keys=True, default=str)


def facts_json(form: IncidentForm) -> str:
    """The form as validated, as the register stores it (and the ledger hashes it)."""
    return json.dumps(form.facts(), sort_keys=True)


@dataclass(frozen=True)
class Scope:
    """Who a run found, as counts: ids stay in ``lifecycle_incident_subjects``."""

    affected: int
    new: int  # not found by an earlier approved run of the incident
    already_notified: int
    unknown_ids: int  # listed (``subjects_uri``) but not among the people
    datasets: dict[str, int]  # rows found in the window, per dataset
    records_by_category: dict[str, int]
    categories: tuple[str, ...]
    reach: dict[str, int]  # the new people by how they can be reached: email | phone | post | none
    by_country: dict[str, int]
    by_locale: dict[str, int]
    batches: int
    owed: int = 0  # carried from earlier approved runs: found, never claimed (phase update)
    released: int = 0  # carried from earlier runs: in doubt, released by the form's resend_uncertain

    @property
    def without_email(self) -> int:
        return self.new - self.reach.get("email", 0)

    def summary(self) -> dict:
        """What ``resolve`` returns through XCom."""
        return {
            "affected": self.affected,
            "new": self.new,
            "owed": self.owed,
            "released": self.released,
            "reach": self.reach,
            "batches": self.batches,
        }

    def to_dict(self) -> dict:
        data = {**asdict(self), "categories": list(self.categories)}
        for carried in ("owed", "released"):
            if not data[carried]:
                del data[carried]  # a run that carried nobody keeps the scope as registers held it before
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Scope:
        return cls(**{**data, "categories": tuple(data["categories"])})


@dataclass(frozen=True)
class RegulatorDecision:
    """Whether one configured regulator must be told, why, and by when."""

    id: str
    name: str
    contact: str | None
    matched: bool
    reasons: tuple[str, ...]
    deadline: datetime
    deadline_after_discovery: str  # the configured duration, as written
    met_if_notified_now: bool

    def to_dict(self) -> dict:
        return {**asdict(self), "reasons": list(self.reasons), "deadline": iso_utc(self.deadline)}

    @classmethod
    def from_dict(cls, data: dict) -> RegulatorDecision:
        return cls(**{**data, "reasons": tuple(data["reasons"]), "deadline": datetime.fromisoformat(data["deadline"])})


@dataclass(frozen=True)
class FallbackDecision:
    """Whether the public announcement must stand in for individual notice (``fires``), or was chosen."""

    fires: bool
    publish: bool
    unreachable: int
    notified: int
    unreachable_fraction: float
    reasons: tuple[str, ...]

    def announced(self, published: Published | None, delivery: dict[str, int]) -> AnnouncementDecision:
        return AnnouncementDecision(**asdict(self), published=published, delivery=delivery)

    def to_dict(self) -> dict:
        return {**asdict(self), "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, data: dict) -> FallbackDecision:
        return cls(**{**data, "reasons": tuple(data["reasons"])})


@dataclass(frozen=True)
class Published:
    """Where the announcement went."""

    system: str
    location: str  # s3://bucket/key
    url: str


@dataclass(frozen=True)
class AnnouncementDecision(FallbackDecision):
    """The fallback decided again after the mails, with where the notice went and the delivery counts."""

    published: Published | None
    delivery: dict[str, int]  # the run's delivery rows by status

    @classmethod
    def from_dict(cls, data: dict) -> AnnouncementDecision:
        published = Published(**data["published"]) if data["published"] else None
        return cls(**{**data, "reasons": tuple(data["reasons"]), "published": published})


@dataclass(frozen=True)
class Obligations:
    """Who must be told beyond the people: the regulators, and the public if the fallback fires."""

    affected_total: int  # everyone the incident affected so far, earlier approved runs included
    countries: tuple[str, ...]
    regulators: tuple[RegulatorDecision, ...]
    fallback: FallbackDecision  # decided before the mails, from reach (the preview shows it)
    decided_at: datetime
    announcement: AnnouncementDecision | None = None  # decided again after the mails (``announce``)

    @property
    def matched(self) -> list[RegulatorDecision]:
        return [r for r in self.regulators if r.matched]

    def to_dict(self) -> dict:
        data = {
            "affected_total": self.affected_total,
            "countries": list(self.countries),
            "regulators": [r.to_dict() for r in self.regulators],
            "fallback": self.fallback.to_dict(),
            "decided_at": iso_utc(self.decided_at),
        }
        if self.announcement is not None:
            data["fallback_final"] = self.announcement.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Obligations:
        final = data.get("fallback_final")
        return cls(
            affected_total=data["affected_total"],
            countries=tuple(data["countries"]),
            regulators=tuple(RegulatorDecision.from_dict(r) for r in data["regulators"]),
            fallback=FallbackDecision.from_dict(data["fallback"]),
            decided_at=datetime.fromisoformat(data["decided_at"]),
            announcement=AnnouncementDecision.from_dict(final) if final else None,
        )


@dataclass(frozen=True)
class Approval:
    decision: str  # approved | rejected
    by: str | None
    how: str

    @property
    def approved(self) -> bool:
        return self.decision == "approved"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Approval:
        return cls(**data)


@dataclass(frozen=True)
class ContactLists:
    """How many people the letter and telephone lists hold, and where the lists are."""

    letters: int
    telephone: int
    no_contact: int
    files: dict[str, str]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ContactLists:
        return cls(**data)


@dataclass(frozen=True)
class Figures:
    """What the run wrote, filled in step by step: previews, lists, reports, and the final summary."""

    preview: dict[str, str] | None = None  # document -> location
    lists: ContactLists | None = None
    reports: dict[str, dict[str, str]] | None = None  # regulator -> {html, pdf, json} locations
    final: dict | None = None  # ``finish``'s summary, as it returned it

    def to_dict(self) -> dict:
        lists = self.lists.to_dict() if self.lists else None
        data = {"preview": self.preview, "lists": lists, "reports": self.reports, "final": self.final}
        return {k: v for k, v in data.items() if v is not None}  # a step not run yet has no key

    @classmethod
    def from_dict(cls, data: dict) -> Figures:
        lists = data.get("lists")
        return cls(
            preview=data.get("preview"),
            lists=ContactLists.from_dict(lists) if lists else None,
            reports=data.get("reports"),
            final=data.get("final"),
        )


@dataclass(frozen=True)
class Run:
    """One run of the register, its documents read: what each stage starts from."""

    run_id: str
    incident_id: str
    phase: str  # initial | update
    dry_run: bool
    as_of: datetime  # the run's logical time: a rerun decides the same way
    form: IncidentForm
    scope: Scope | None
    obligations: Obligations | None
    approval: Approval | None
    figures: Figures

    @property
    def notifies(self) -> bool:
        """The run is to tell the people affected (its form's decision ``notify``)."""
        return self.form.notifies

    @classmethod
    def from_row(cls, row) -> Run:
        """A ``state.incidents.IncidentRun`` row, its JSON columns read."""

        def read(text, model):
            return model.from_dict(json.loads(text)) if text else None

        return cls(
            run_id=row.run_id,
            incident_id=row.incident_id,
            phase=row.phase,
            dry_run=row.dry_run,
            as_of=datetime.fromisoformat(row.as_of),
            form=IncidentForm.from_facts(json.loads(row.facts)),
            scope=read(row.scope, Scope),
            obligations=read(row.obligations, Obligations),
            approval=read(row.approval, Approval),
            figures=read(row.figures, Figures) or Figures(),
        )
