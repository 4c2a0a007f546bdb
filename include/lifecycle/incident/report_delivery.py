"""Each told regulator's report delivered: e-mailed to its ``contact`` with the PDF and JSON
attached, uploaded where its ``delivery`` says, or both; once.

E-mails go the one way notices go (``Notifier`` over ``mail.send_claimed``): the
regulator's claim row (notice ``regulator:<incident>:<run>``, the regulator id as
its subject) is committed with the Message-ID before the mail is sent, so a task
killed and run again never mails a regulator twice; a row a kill left
``sending`` becomes ``uncertain``.  An upload puts the two files under the
regulator's prefix; a rerun (the task cleared after a kill) puts only a file
not already there with the same SHA-256, so nothing is uploaded twice.

Each delivery is a row of the register (``lifecycle_regulator_deliveries``:
channel, status, Message-ID or location, the SHA-256 of both files, the delivery
time, the deadline, late) and one ledger entry.  The delivery time is the run's
logical time, the report's "notified", so a rerun records the same; a delivery
after the deadline says so, in the report and the cover e-mail, with the form's
``delay_reasons``.  A delivery that did not succeed fails the task once it is
recorded: the run ends failed, and a follow-up run (phase ``update``) delivers again.
``owed_reports`` reads the register for the reports still owed (``lifecycle_deadlines``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from lifecycle.clock import iso_utc
from lifecycle.config.incidents import REGULATOR_TEMPLATE
from lifecycle.errors import LifecycleError
from lifecycle.evidence import regulator_delivery
from lifecycle.incident.approval import may_send
from lifecycle.incident.models import Run
from lifecycle.incident.owed import runs_by_incident
from lifecycle.mail import Attachment, render_notice
from lifecycle.notifier import Recorded
from lifecycle.reports import safe_name
from lifecycle.state.incidents import RegulatorDelivery, regulator_notice

if TYPE_CHECKING:
    from lifecycle.config.incidents import Regulator
    from lifecycle.incident.models import RegulatorDecision
    from lifecycle.incident.services import Services
    from lifecycle.state import StateStore

#: statuses that mean the regulator has the report (``before_delivery``: written before deliveries
#: were recorded, delivered, if at all, outside the lifecycle)
DELIVERED = ("sent", "uploaded", "before_delivery")
PDF, JSON = "application/pdf", "application/json"


@dataclass(frozen=True)
class Package:
    """One regulator's report as it is sent: the regulator as configured, the run's decision, the files."""

    regulator: Regulator
    decision: RegulatorDecision
    pdf: Attachment
    json: Attachment

    @property
    def files(self) -> tuple[Attachment, Attachment]:
        return self.pdf, self.json

    def sha256(self, file: Attachment) -> str:
        return hashlib.sha256(file.data).hexdigest()


def channels(regulator: Regulator | None) -> list[str]:
    """How a configured regulator receives its report, as the report says it."""
    if regulator is None:
        return []
    found = [f"e-mail to {regulator.contact} (PDF and JSON attached)"] if regulator.contact else []
    if regulator.delivery is not None:
        found.append(f"upload to system {regulator.delivery.system} under {regulator.delivery.prefix or '/'}")
    return found


def configured(services: Services, regulator_id: str) -> Regulator | None:
    return next((r for r in services.incidents.regulators if r.id == regulator_id), None)


def deliver_reports(services: Services, run_id: str) -> dict:
    """Deliver each matched regulator's report by every channel it has; returns statuses by regulator."""
    run = services.run(run_id)
    may_send(run)
    packages = [_package(services, run, decision) for decision in run.obligations.matched]
    for package in packages:
        if package.regulator.delivery is not None:
            _upload(services, run, package)
    mailed = {p.decision.id: p for p in packages if p.regulator.contact}
    if mailed:
        book = RegulatorBook(services, run, mailed)
        services.notifier.deliver(
            book, sorted(mailed), lambda todo, mailer: _composer(services, run, mailed, mailer), run_id=run_id
        )
    rows = services.state.incidents.regulator_deliveries(run_id)
    failed = [r for r in rows if r.status not in DELIVERED]
    if failed:
        raise LifecycleError(
            "regulator report(s) not delivered: "
            + "; ".join(_failure(r) for r in failed)
            + ". Recorded in the register; a follow-up run (phase update) delivers again"
        )
    return summary(services, run)


def summary(services: Services, run: Run) -> dict:
    """What was delivered to each regulator of the run, when, against its deadline (counts and ids only)."""
    found: dict[str, dict] = {}
    for row in services.state.incidents.regulator_deliveries(run.run_id):
        entry = found.setdefault(
            row.regulator_id, {"at": row.delivered_at, "deadline": row.deadline, "late": row.late, "channels": {}}
        )
        entry["channels"][row.channel] = row.status
    return found


def _failure(row: RegulatorDelivery) -> str:
    text = f"{row.regulator_id} by {row.channel}: {row.status}"
    if row.status == "uncertain":
        text += (
            f" (the run was interrupted while sending; look for Message-ID {row.message_id} in the mail server's log)"
        )
    return text


def _package(services: Services, run: Run, decision: RegulatorDecision) -> Package:
    regulator = configured(services, decision.id)
    if regulator is None:
        raise LifecycleError(f"regulator {decision.id!r} of run {run.run_id} is no longer in incidents.yaml")
    if decision.id not in (run.figures.reports or {}):
        raise LifecycleError(
            f"no report for regulator {decision.id!r} in run {run.run_id}: regulator_reports did not run"
        )
    docs = services.documents(run)
    stem = f"incident-{safe_name(run.incident_id)}" + ("-follow-up" if run.phase == "update" else "")
    return Package(
        regulator,
        decision,
        Attachment(f"{stem}.pdf", PDF, docs.read(f"report.{decision.id}.pdf")),
        Attachment(f"{stem}.json", JSON, docs.read(f"report.{decision.id}.json")),
    )


def _record(services: Services, run: Run, package: Package, channel: str, status: str, **where) -> None:
    """The delivery's row in the register and its ledger entry, each once (a rerun finds both)."""
    decision = package.decision
    row = RegulatorDelivery(
        run_id=run.run_id,
        regulator_id=decision.id,
        channel=channel,
        incident_id=run.incident_id,
        phase=run.phase,
        status=status,
        target=where.get("target"),
        message_id=where.get("message_id"),
        pdf_sha256=package.sha256(package.pdf),
        json_sha256=package.sha256(package.json),
        delivered_at=iso_utc(run.as_of),
        deadline=iso_utc(decision.deadline),
        late=run.as_of > decision.deadline,
    )
    row = services.state.incidents.record_regulator_delivery(row)  # a rerun: the row of what was sent
    payload = {"incident": run.incident_id, "regulator": decision.id} | {
        k: v for k, v in asdict(row).items() if k not in ("run_id", "incident_id", "regulator_id")
    }
    key = regulator_delivery(run.incident_id, run.run_id, decision.id, channel)
    services.state.ledger.append("incident.delivery", payload, run_id=run.run_id, key=key)


def _upload(services: Services, run: Run, package: Package) -> None:
    """Put the PDF and JSON under the regulator's prefix, unless this run did already: a file
    a killed task put before it was recorded is found there, byte for byte, and not put again."""
    done = {(r.regulator_id, r.channel): r.status for r in services.state.incidents.regulator_deliveries(run.run_id)}
    if done.get((package.decision.id, "upload")) == "uploaded":
        return
    target = package.regulator.delivery
    store = services.stores(target.system)
    folder = f"{target.prefix}{safe_name(run.incident_id)}/{safe_name(run.run_id)}/"
    for file, ext in ((package.pdf, "pdf"), (package.json, "json")):
        key = f"{folder}report.{package.decision.id}.{ext}"
        if not _holds(store, key, package.sha256(file)):
            store.put_bytes(key, file.data, content_type=file.content_type)
    _record(services, run, package, "upload", "uploaded", target=f"s3://{store.bucket}/{folder}")


def _holds(store, key: str, sha256: str) -> bool:
    """The object at ``key`` is there with exactly this content."""
    return store.head(key) is not None and store.digest(key)[1] == sha256


class RegulatorBook:
    """The claim rows of a run's regulator e-mails, and their rows in the register."""

    def __init__(self, services: Services, run: Run, packages: dict[str, Package]):
        self.services, self.run, self.packages = services, run, packages
        self.name = f"incident {run.incident_id} regulator reports"
        self.notice = regulator_notice(run.incident_id, run.run_id)

    def recorded(self, subjects: Sequence[str]) -> dict[str, Recorded]:
        """Backed by each delivery's own ledger entry, written once under its key: never marked per row."""
        claimed = self.services.state.notices.claimed(self.notice)
        return {s: Recorded(status, False) for s, (status, _) in claimed.items() if s in subjects}

    def claims(self):
        return self.services.state.notices.claims_of(self.notice, self.run.run_id)

    def summarize(self, subjects: Sequence[str], run_id: str | None) -> None:
        """A register row and a ledger entry for each regulator whose e-mail has an outcome."""
        claimed = self.services.state.notices.claimed(self.notice)
        for subject in subjects:
            status, message_id = claimed.get(subject, ("sending", None))
            if status == "sending":
                continue
            package = self.packages[subject]
            _record(
                self.services,
                self.run,
                package,
                "email",
                status,
                target=package.regulator.contact,
                message_id=message_id,
            )


def _composer(services: Services, run: Run, packages: dict[str, Package], mailer):
    """What composes each regulator's cover e-mail, in its language, from the report it carries."""
    locales = services.mail.locales

    def compose(regulator_id: str):
        package = packages[regulator_id]
        report = json.loads(package.json.data)
        timeline = report["timeline"]
        notice = render_notice(
            REGULATOR_TEMPLATE,
            package.regulator.locale or locales[0],
            locales[0],
            regulator=package.regulator.name,
            incident_id=run.incident_id,
            title=report["incident"]["title"],
            follow_up=report["follow_up"],
            discovered_at=timeline["discovered_at"],
            deadline=timeline["deadline"],
            deadline_after_discovery=timeline["deadline_after_discovery"],
            notified_at=timeline["notified_at"],
            late=not timeline["deadline_met"],
            delay_reasons=timeline["delay_reasons"],
            attachments=[{"filename": f.filename, "sha256": package.sha256(f)} for f in package.files],
            contact=report["contact"],
        )
        key = f"regulator:{run.incident_id}:{regulator_id}"
        return mailer.compose(package.regulator.contact, notice, key=key, attachments=package.files)

    return compose


# ------------------------------------------------------------ reports still owed


@dataclass(frozen=True)
class Owed:
    """A regulator report the register shows as not delivered: ids and the deadline only."""

    incident_id: str
    regulator_id: str
    deadline: datetime
    approved: bool  # owed by an approved run (False: no run of the incident is approved yet)


def owed_reports(state: StateStore) -> list[Owed]:
    """Each regulator report an incident still owes, by incident and regulator.

    An approved, non-dry run owes each regulator it matched a report until that
    run, or a later run of the incident, delivered one to it (``DELIVERED``).
    An incident with no approved run yet (dry runs, an approval pending) owes the
    regulators its latest decided obligations matched: the clock runs from
    discovery whether or not anyone has approved; a last run answered *Reject*
    closes it.
    """
    delivered: dict[tuple[str, str], set[str]] = {}
    for row in state.incidents.regulator_deliveries():
        if row.status in DELIVERED:
            delivered.setdefault((row.incident_id, row.regulator_id), set()).add(row.run_id)
    owed: dict[tuple[str, str], Owed] = {}
    for incident, its_runs in runs_by_incident(state).items():
        for run, approved, regulator in committed(its_runs):
            later = {r.run_id for r in its_runs[its_runs.index(run) :]}
            if not later & delivered.get((incident, regulator.id), set()):
                found = Owed(incident, regulator.id, regulator.deadline, approved)
                owed.setdefault((incident, regulator.id), found)
    return sorted(owed.values(), key=lambda o: (o.deadline, o.incident_id, o.regulator_id))


def committed(runs: list[Run]):
    """(run, approved, regulator) of each report the incident's runs committed it to (oldest run first).
    A run that recorded the decision not to notify people commits the incident to the reports its
    obligations matched like any other approved run: the regulators' conditions decide them."""
    approved = [r for r in runs if not r.dry_run and r.approval and r.approval.approved and r.obligations]
    if approved:
        yield from ((run, True, regulator) for run in approved for regulator in run.obligations.matched)
        return
    last = runs[-1]
    if not last.dry_run and last.approval and not last.approval.approved:
        return  # rejected: a person decided nothing goes out
    decided = [r for r in runs if r.obligations]
    if decided:
        yield from ((decided[-1], False, regulator) for regulator in decided[-1].obligations.matched)
