"""``lifecycle_deadlines``: what is near or past its deadline, read from the state store and the configuration.

The checks are independent functions of a ``Watch`` (the configuration, the
state store, the run's instant), each returning its ``Finding``s: ids and
deadlines only, never a name or an address.

* ``erasure_requests``: cancellations not done within ``cancellation.yaml:
  complete_within`` (the clock ``erasure.report.deadlines`` runs; a legal hold
  suspends it), by request id;
* ``subject_requests``: a person's requests still open after ``requests.yaml:
  respond_within`` (dry runs do not close them), by request id;
* ``regulator_reports``: regulator reports not delivered
  (``incident.report_delivery.owed_reports``), by ``<incident id>/<regulator id>``;
* ``owed_notices``: incidents whose approved runs found people and never sent
  them their notice (``incident.owed``), by incident id with the count; past
  from the oldest approved run's logical time: a notice owed is late already;
* ``agreements``: ``recipients.yaml`` agreements by their ``expires`` date
  (in force through that day), by recipient id.

A finding is **past** when its deadline is before the run's instant and
**near** when it falls within the check's window (``deadlines.yaml:
near.<check>``).  The run fails when there is any finding, past or near, so
Airflow's own alerting fires; the privacy contact gets one summary per run.
Another check is one more function and one more entry in ``CHECKS`` (and a
window in ``config.models.NearWindows``).  What the check task hands
``notify`` and ``verdict`` is a ``DeadlineReport``; its JSON (XCom) is written
and read there only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as day_time
from typing import TYPE_CHECKING

from lifecycle.clock import iso_utc
from lifecycle.erasure import report as erasure_report
from lifecycle.errors import LifecycleError
from lifecycle.evidence import deadlines_summary
from lifecycle.incident.owed import owing_incidents
from lifecycle.incident.report_delivery import owed_reports
from lifecycle.mail import render_notice
from lifecycle.notifier import Notifier, Recorded

if TYPE_CHECKING:
    from lifecycle.config import Config
    from lifecycle.durations import Duration
    from lifecycle.state import StateStore

log = logging.getLogger(__name__)

NEAR, PAST = "near", "past"
SUMMARY_TEMPLATE = "deadlines_summary"  # include/lifecycle/templates/mail/deadlines_summary.en.txt.j2
CONTACT = "privacy_contact"  # the summary's subject in the claim table (one row per run)


@dataclass(frozen=True)
class Finding:
    id: str  # a request, incident/regulator or recipient id: never a person's name or address
    deadline: str  # ISO instant, or the date an agreement expires
    state: str  # near | past
    count: int | None = None  # how many people a finding stands for (owed notices)

    def to_json(self) -> dict:
        data = {"id": self.id, "deadline": self.deadline}
        return data if self.count is None else {**data, "count": self.count}

    @classmethod
    def from_json(cls, data: dict, state: str) -> Finding:
        return cls(data["id"], data["deadline"], state, data.get("count"))

    def describe(self) -> str:
        people = f": {self.count} people" if self.count is not None else ""
        return f"{self.id}{people} ({self.deadline})"


@dataclass(frozen=True)
class DeadlineReport:
    """What one run's checks found at its instant: per check (in ``CHECKS`` order) the findings
    past and near.  ``to_json``/``from_json`` are its XCom form, here and nowhere else."""

    as_of: str
    checks: dict[str, tuple[Finding, ...]]

    def found(self, name: str, state: str) -> list[Finding]:
        return [f for f in self.checks.get(name, ()) if f.state == state]

    @property
    def past(self) -> int:
        return sum(f.state == PAST for found in self.checks.values() for f in found)

    @property
    def near(self) -> int:
        return sum(f.state == NEAR for found in self.checks.values() for f in found)

    @property
    def clear(self) -> bool:
        return not (self.past or self.near)

    def problems(self) -> list[str]:
        """``<check> <state>: <finding>, …`` for each check and state with findings."""
        return [
            f"{name} {state}: " + ", ".join(f.describe() for f in self.found(name, state))
            for name in self.checks
            for state in (PAST, NEAR)
            if self.found(name, state)
        ]

    def to_json(self) -> dict:
        checks = {name: {s: [f.to_json() for f in self.found(name, s)] for s in (PAST, NEAR)} for name in self.checks}
        return {"as_of": self.as_of, PAST: self.past, NEAR: self.near, "checks": checks}

    @classmethod
    def from_json(cls, data: dict) -> DeadlineReport:
        checks = {
            name: tuple(Finding.from_json(f, state) for state in (PAST, NEAR) for f in found[state])
            for name, found in data["checks"].items()
        }
        return cls(data["as_of"], checks)


@dataclass(frozen=True)
class Watch:
    """What a check reads: the configuration, the state store and the run's instant (never now())."""

    config: Config
    state: StateStore
    as_of: datetime

    def judge(self, deadline: datetime, near: Duration) -> str | None:
        """``past`` before the run's instant, ``near`` within ``near`` of it, else None."""
        if deadline < self.as_of:
            return PAST
        if near.before(deadline) <= self.as_of:
            return NEAR
        return None


def erasure_requests(watch: Watch) -> list[Finding]:
    """Cancellations near or past ``complete_within``, by their request ids."""
    if watch.config.cancellation is None:
        return []
    near = watch.config.deadlines.near.erasure_requests
    found = []
    for record, deadline in erasure_report.deadlines(watch.config, watch.state):
        state = watch.judge(deadline, near)
        if state:
            found.append(Finding(",".join(record.request_ids), iso_utc(deadline), state))
    return found


def subject_requests(watch: Watch) -> list[Finding]:
    """A person's requests still open (received, planned by a dry run, failed) near or past
    ``requests.yaml: respond_within``, by request id."""
    if watch.config.requests is None:
        return []
    near = watch.config.deadlines.near.subject_requests
    found = []
    for request in watch.state.requests.open_requests():
        deadline = datetime.fromisoformat(request.due_at)
        state = watch.judge(deadline, near)
        if state:
            found.append(Finding(request.request_id, request.due_at, state))
    return found


def regulator_reports(watch: Watch) -> list[Finding]:
    """Regulator reports not delivered with their deadline near or past, as ``<incident>/<regulator>``."""
    near = watch.config.deadlines.near.regulator_reports
    found = []
    for owed in owed_reports(watch.state):
        state = watch.judge(owed.deadline, near)
        if state:
            found.append(Finding(f"{owed.incident_id}/{owed.regulator_id}", iso_utc(owed.deadline), state))
    return found


def owed_notices(watch: Watch) -> list[Finding]:
    """Incidents whose approved runs still owe people their notice, with the count: past from the
    oldest approved run's logical time (a rerun of that run, or an update, tells them)."""
    found = []
    for owing in owing_incidents(watch.state):
        due = datetime.fromisoformat(owing.since)
        found.append(Finding(owing.incident_id, iso_utc(due), PAST if due <= watch.as_of else NEAR, owing.owed))
    return found


def agreements(watch: Watch) -> list[Finding]:
    """Recipients' agreements expiring within the window or expired, by recipient id."""
    near = watch.config.deadlines.near.agreements
    found = []
    for recipient in watch.config.recipients.recipients:
        expires = recipient.agreement.expires if recipient.agreement else None
        if expires is None:
            continue
        state = watch.judge(datetime.combine(expires, day_time.max, UTC), near)  # in force through that day
        if state:
            found.append(Finding(recipient.id, expires.isoformat(), state))
    return found


Check = Callable[[Watch], list[Finding]]
CHECKS: tuple[tuple[str, Check], ...] = (
    ("erasure_requests", erasure_requests),
    ("subject_requests", subject_requests),
    ("regulator_reports", regulator_reports),
    ("owed_notices", owed_notices),
    ("agreements", agreements),
)


def check(
    config: Config, state: StateStore, as_of: datetime, checks: Sequence[tuple[str, Check]] = CHECKS
) -> DeadlineReport:
    """Every check at the run's instant: per check the ids near and past with their deadlines."""
    watch = Watch(config, state, as_of)
    report = DeadlineReport(
        iso_utc(as_of), {name: tuple(sorted(run(watch), key=lambda f: (f.deadline, f.id))) for name, run in checks}
    )
    log.info("deadlines as of %s: %d past, %d near", report.as_of, report.past, report.near)
    return report


def verdict(report: DeadlineReport) -> dict:
    """Refuse a report with any finding, naming each check's ids; the counts when there is none."""
    if not report.clear:
        raise LifecycleError(
            f"{report.past} past and {report.near} near their deadline: " + "; ".join(report.problems())
        )
    return {PAST: 0, NEAR: 0}


class SummaryBook:
    """The claim row of one run's summary to the privacy contact (notice ``deadlines:<run>``)."""

    def __init__(self, state: StateStore, run_id: str, report: DeadlineReport):
        self.state, self.run_id, self.report = state, run_id, report
        self.notice, self.name = f"deadlines:{run_id}", f"deadlines summary of {run_id}"

    def recorded(self, subjects: Sequence[str]) -> dict[str, Recorded]:
        return {s: Recorded(status, False) for s, (status, _) in self.state.notices.claimed(self.notice).items()}

    def claims(self):
        return self.state.notices.claims_of(self.notice, self.run_id)

    def summarize(self, subjects: Sequence[str], run_id: str | None) -> None:
        """One ledger entry for the summary once it has an outcome: its counts, ids and Message-ID."""
        status, message_id = self.state.notices.claimed(self.notice).get(CONTACT, ("sending", None))
        if status == "sending":
            return
        payload = {"status": status, "message_id": message_id, **self.report.to_json()}
        self.state.ledger.append("deadlines.summary", payload, run_id=self.run_id, key=deadlines_summary(self.run_id))


class Deadlines:
    """What the DAG file calls: ``check`` and ``notify`` (once per run); then ``verdict``."""

    def __init__(
        self,
        config: Config,
        state: StateStore,
        mailer: Callable[[], object] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.config, self.state = config, state
        self.notifier = Notifier(config.notifications, mailer, sleep)

    def check(self, as_of: datetime) -> DeadlineReport:
        return check(self.config, self.state, as_of)

    def notify(self, report: DeadlineReport, run_id: str) -> dict:
        """Mail the privacy contact the report's counts and ids, at most once per run; nothing when all is clear."""
        if report.clear:
            return {"mailed": False, "why": "nothing near or past"}
        mail = self.config.notifications
        if mail is None or not self.config.deadlines.notify:
            why = "deadlines.yaml: notify is false" if mail else "no mail settings (notifications.yaml)"
            return {"mailed": False, "why": why}
        book = SummaryBook(self.state, run_id, report)
        done = self.notifier.deliver(
            book, [CONTACT], lambda todo, mailer: self._composer(report, run_id, mailer), run_id=run_id
        )
        status, _ = self.state.notices.claimed(book.notice).get(CONTACT, ("sending", None))
        return {"mailed": bool(done.outcomes.get("sent")), "status": status}  # mailed: by this call

    def _composer(self, report: DeadlineReport, run_id: str, mailer):
        mail = self.config.notifications

        def compose(_subject: str):
            notice = render_notice(
                SUMMARY_TEMPLATE, None, "en", run_id=run_id, contact=mail.contact, **report.to_json()
            )
            return mailer.compose(mail.contact.email, notice, key=f"deadlines:{run_id}")

        return compose
