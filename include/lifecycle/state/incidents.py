"""The incident register (GDPR art. 33(5)): incidents, their runs, the people affected
per run, one delivery row per incident and person, and how each regulator's report
was delivered (``lifecycle_regulator_deliveries``).

A run's documents (facts, scope, obligations, approval, figures) are JSON
text, read and written by ``lifecycle.incident.models`` (the one place that
knows their keys); the register keeps them as given.  People are stored as
ids with how they can be reached (``AffectedPerson``), never addresses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from lifecycle.batching import chunks
from lifecycle.clock import iso_utc
from lifecycle.state.claims import Claims
from lifecycle.state.schema import deliveries, incident_runs, incident_subjects, incidents, regulator_deliveries

CHUNK = 5000


@dataclass(frozen=True)
class IncidentRun:
    run_id: str
    incident_id: str
    phase: str  # initial | update
    dry_run: bool
    as_of: str
    facts: str  # JSON documents: lifecycle.incident.models reads and writes them
    scope: str | None
    obligations: str | None
    approval: str | None
    figures: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class AffectedPerson:
    """A person a run found, as ``lifecycle_incident_subjects`` keeps them."""

    subject_id: str
    new: bool  # not found by an earlier approved run of the incident
    reach: str  # email | phone | post | none
    country: str | None
    locale: str | None
    batch: int = -1  # the send batch of a person this run mails; -1 for everyone else
    owed: bool = False  # found by an earlier approved run, not told yet: this run sends to them

    @property
    def mailable(self) -> bool:
        return (self.new or self.owed) and self.reach == "email"


@dataclass(frozen=True)
class RegulatorDelivery:
    """How one regulator's report of a run went out by one channel (a row of ``lifecycle_regulator_deliveries``)."""

    run_id: str
    regulator_id: str
    channel: str  # email | upload | register (a report written before deliveries were recorded)
    incident_id: str
    phase: str
    status: str  # sent | uploaded | undeliverable | deferred | uncertain | before_delivery
    target: str | None  # the regulator's address, or s3://bucket/prefix
    message_id: str | None
    pdf_sha256: str | None
    json_sha256: str | None
    delivered_at: str | None  # the run's logical time
    deadline: str
    late: bool


def _now() -> str:
    return iso_utc(datetime.now(UTC))


def _notice(incident_id: str) -> str:
    """The incident's name in the claim table (``lifecycle_deliveries``)."""
    return f"incident:{incident_id}"


def regulator_notice(incident_id: str, run_id: str) -> str:
    """A run's regulator reports in the claim table: one row per regulator (its id as the subject)."""
    return f"regulator:{incident_id}:{run_id}"


_INCIDENT_ROWS = deliveries.c.notice.startswith("incident:", autoescape=True)
#: a person a run is to tell: new to the incident, or owed a notice an earlier run did not send
_TO_TELL = sa.or_(incident_subjects.c.new.is_(True), incident_subjects.c.owed.is_(True))
_TO_MAIL = sa.and_(_TO_TELL, incident_subjects.c.reach == "email")
#: delivery rows whose mail may or may not have gone out (``sending``: left by a killed run)
IN_DOUBT = ("uncertain", "sending")


class OwedNotices:
    """The register's questions about notices owed and in doubt (``lifecycle.incident.owed``
    asks them): people runs were to mail and nobody claimed, rows in doubt, their release."""

    engine: sa.Engine  # and ``delivery_counts``: both of ``Incidents``

    def _unclaimed(self, incident_id: str):
        """A person's row with no delivery row for the incident: nobody claimed their notice."""
        claim = sa.select(deliveries.c.subject_id).where(
            deliveries.c.notice == _notice(incident_id), deliveries.c.subject_id == incident_subjects.c.subject_id
        )
        return ~claim.exists()

    def _owed(self, incident_id: str, runs: Sequence[str]):
        return sa.select(incident_subjects.c.subject_id).where(
            incident_subjects.c.run_id.in_(runs), _TO_MAIL, self._unclaimed(incident_id)
        )

    def owed(self, incident_id: str, runs: Sequence[str]) -> list[str]:
        """People ``runs`` were to e-mail (new or owed, with an address) who hold no delivery row
        for the incident: owed a notice.  ``runs``: the incident's approved runs."""
        if not runs:
            return []
        with self.engine.connect() as conn:
            return sorted(conn.execute(self._owed(incident_id, runs).distinct()).scalars())

    def owed_count(self, incident_id: str, runs: Sequence[str]) -> int:
        """How many people ``owed`` names, counted in the database."""
        if not runs:
            return 0
        owed = self._owed(incident_id, runs).distinct().subquery()
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(owed)).scalar_one()

    def in_doubt(self, incident_id: str, *, except_run: str | None = None) -> list[str]:
        """People whose notice is ``uncertain`` (or left ``sending`` by a run that was killed): it may
        or may not have gone out.  ``except_run``: not the rows this run claimed."""
        query = sa.select(deliveries.c.subject_id).where(
            deliveries.c.notice == _notice(incident_id), deliveries.c.status.in_(IN_DOUBT)
        )
        if except_run is not None:
            query = query.where(deliveries.c.scope != except_run)
        with self.engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    def in_doubt_count(self, incident_id: str) -> int:
        query = sa.select(sa.func.count()).where(
            deliveries.c.notice == _notice(incident_id), deliveries.c.status.in_(IN_DOUBT)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def carried(self, run_id: str) -> list[str]:
        """The people a run took over from earlier runs (``owed``)."""
        query = sa.select(incident_subjects.c.subject_id).where(
            incident_subjects.c.run_id == run_id, incident_subjects.c.owed.is_(True)
        )
        with self.engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    def _doubtful(self, incident_id: str, part: Sequence[str], except_run: str):
        return sa.and_(
            deliveries.c.notice == _notice(incident_id),
            deliveries.c.subject_id.in_(part),
            deliveries.c.status.in_(IN_DOUBT),
            deliveries.c.scope != except_run,
        )

    def doubtful(self, incident_id: str, subjects: Sequence[str], *, except_run: str) -> list[tuple]:
        """(subject, status, Message-ID, claiming run) of the rows in doubt of ``subjects`` that
        other runs than ``except_run`` claimed, by subject."""
        columns = (deliveries.c.subject_id, deliveries.c.status, deliveries.c.message_id, deliveries.c.scope)
        found = []
        with self.engine.connect() as conn:
            for part in chunks(sorted(subjects), CHUNK):
                query = sa.select(*columns).where(self._doubtful(incident_id, part, except_run))
                found += [tuple(row) for row in conn.execute(query)]
        return sorted(found)

    def release(self, incident_id: str, subjects: Sequence[str], *, except_run: str) -> int:
        """Delete those rows (``doubtful``), so that ``subjects`` may be claimed again; how many."""
        released = 0
        with self.engine.begin() as conn:
            for part in chunks(sorted(subjects), CHUNK):
                released += conn.execute(
                    deliveries.delete().where(self._doubtful(incident_id, part, except_run))
                ).rowcount
        return released

    def run_delivery(self, incident_id: str, run_id: str) -> dict[str, int]:
        """One run's notices: ``sent``, ``undeliverable``, ``deferred`` and ``uncertain`` (rows it
        claimed; ``sending`` ones count uncertain), and ``owed`` (its people to mail whom no run
        of the incident has claimed yet)."""
        counts = {status: 0 for status in ("sent", "owed", "uncertain", "undeliverable", "deferred")}
        for status, n in self.delivery_counts(run_id).items():
            key = "uncertain" if status in IN_DOUBT else status
            counts[key] = counts.get(key, 0) + n
        query = sa.select(sa.func.count()).where(
            incident_subjects.c.run_id == run_id, _TO_MAIL, self._unclaimed(incident_id)
        )
        with self.engine.connect() as conn:
            counts["owed"] = conn.execute(query).scalar_one()
        return counts


class RegulatorDeliveries:
    """The register's deliveries to regulators: one row per run, regulator and channel."""

    engine: sa.Engine  # ``Incidents``'s

    def record_regulator_delivery(self, delivery: RegulatorDelivery) -> RegulatorDelivery:
        """Enter one channel's delivery once; returns the row as the register holds it (a rerun
        gets the first one back, with the hashes of what was sent then)."""
        table = regulator_deliveries
        key = (
            table.c.run_id == delivery.run_id,
            table.c.regulator_id == delivery.regulator_id,
            table.c.channel == delivery.channel,
        )
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(table).where(*key)).first()
            if found is not None:
                return RegulatorDelivery(**found._mapping)
            conn.execute(table.insert().values(**asdict(delivery)))
        return delivery

    def regulator_deliveries(self, run_id: str | None = None) -> list[RegulatorDelivery]:
        """The deliveries of one run, or of every run, by run, regulator and channel."""
        table = regulator_deliveries
        query = sa.select(table).order_by(table.c.run_id, table.c.regulator_id, table.c.channel)
        if run_id is not None:
            query = query.where(table.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [RegulatorDelivery(**row._mapping) for row in conn.execute(query)]


class Incidents(OwedNotices, RegulatorDeliveries):
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # ------------------------------------------------------- incidents and runs

    def run(self, run_id: str) -> IncidentRun | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(incident_runs).where(incident_runs.c.run_id == run_id)).first()
        return IncidentRun(**row._mapping) if row else None

    def runs_of(self, incident_id: str) -> list[IncidentRun]:
        """The incident's runs, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(incident_runs)
                .where(incident_runs.c.incident_id == incident_id)
                .order_by(incident_runs.c.created_at, incident_runs.c.run_id)
            ).all()
        return [IncidentRun(**row._mapping) for row in rows]

    def all_runs(self) -> list[IncidentRun]:
        """Every run of every incident, oldest first (incidents are few; their runs fewer than a dozen each)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(incident_runs).order_by(incident_runs.c.created_at, incident_runs.c.run_id))
            return [IncidentRun(**row._mapping) for row in rows]

    def incidents(self, limit: int = 100) -> list[dict]:
        """The register's incidents, most recently updated first: id, title, discovered_at, updated_at."""
        query = sa.select(incidents.c.incident_id, incidents.c.title, incidents.c.discovered_at, incidents.c.updated_at)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(incidents.c.updated_at.desc()).limit(limit)).all()
        return [dict(row._mapping) for row in rows]

    def exists(self, incident_id: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(sa.select(incidents.c.incident_id).where(incidents.c.incident_id == incident_id)).first()
                is not None
            )

    def register(
        self,
        *,
        incident_id: str,
        title: str,
        discovered_at: str,
        run_id: str,
        phase: str,
        dry_run: bool,
        as_of: str,
        facts: str,
    ) -> None:
        """Enter the run, and the incident unless it is registered already, in one transaction."""
        now = _now()
        with self.engine.begin() as conn:
            if (
                conn.execute(sa.select(incidents.c.incident_id).where(incidents.c.incident_id == incident_id)).first()
                is None
            ):
                conn.execute(
                    incidents.insert().values(
                        incident_id=incident_id,
                        title=title,
                        discovered_at=discovered_at,
                        first_run=run_id,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                conn.execute(incidents.update().where(incidents.c.incident_id == incident_id).values(updated_at=now))
            conn.execute(
                incident_runs.insert().values(
                    run_id=run_id,
                    incident_id=incident_id,
                    phase=phase,
                    dry_run=dry_run,
                    as_of=as_of,
                    facts=facts,
                    created_at=now,
                    updated_at=now,
                )
            )

    def update_run(self, run_id: str, **documents: str) -> None:
        """Replace the run's documents named (JSON text)."""
        with self.engine.begin() as conn:
            conn.execute(
                incident_runs.update().where(incident_runs.c.run_id == run_id).values(updated_at=_now(), **documents)
            )

    def touch(self, incident_id: str) -> None:
        """Date the incident's last change now."""
        with self.engine.begin() as conn:
            conn.execute(incidents.update().where(incidents.c.incident_id == incident_id).values(updated_at=_now()))

    # ------------------------------------------------------------------ people

    def replace_subjects(self, run_id: str, incident_id: str, people: Sequence[AffectedPerson]) -> None:
        """The run's affected people, in one transaction (a rerun replaces what a crash left)."""
        rows = [
            {
                "run_id": run_id,
                "incident_id": incident_id,
                "subject_id": p.subject_id,
                "new": p.new,
                "reach": p.reach,
                "country": p.country,
                "locale": p.locale,
                "batch": p.batch,
                "owed": p.owed,
            }
            for p in people
        ]
        with self.engine.begin() as conn:
            conn.execute(incident_subjects.delete().where(incident_subjects.c.run_id == run_id))
            for part in chunks(rows, 10_000):
                conn.execute(incident_subjects.insert(), part)

    def subjects_of(self, runs: Sequence[str]) -> set[str]:
        """People affected in any of ``runs``."""
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    sa.select(incident_subjects.c.subject_id).where(incident_subjects.c.run_id.in_(runs))
                ).scalars()
            )

    def affected(self, runs: Sequence[str]) -> tuple[int, set[str]]:
        """How many distinct people ``runs`` found, and their countries."""
        with self.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count(sa.distinct(incident_subjects.c.subject_id))).where(
                    incident_subjects.c.run_id.in_(runs)
                )
            ).scalar_one()
            countries = set(
                conn.execute(
                    sa.select(incident_subjects.c.country)
                    .where(incident_subjects.c.run_id.in_(runs), incident_subjects.c.country.is_not(None))
                    .distinct()
                ).scalars()
            )
        return total, countries

    def mailable(self, run_id: str, batch: int) -> list[str]:
        """The batch's people to e-mail: new to the incident or owed a notice, with an address."""
        query = sa.select(incident_subjects.c.subject_id).where(
            incident_subjects.c.run_id == run_id, incident_subjects.c.batch == batch, _TO_MAIL
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def not_emailed(self, run_id: str) -> list[str]:
        """The run's people to tell (new or owed) without an e-mail address."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(incident_subjects.c.subject_id).where(
                        incident_subjects.c.run_id == run_id, _TO_TELL, incident_subjects.c.reach != "email"
                    )
                ).scalars()
            )

    # -------------------------------------------------------------- deliveries

    def claims(self, incident_id: str, run_id: str, batch: int) -> Claims:
        """The claim rows of the incident, claimed by one batch of a run (one row per incident and
        person, whichever run claimed it); a person without an address counts ``undeliverable``."""
        return Claims(self.engine, _notice(incident_id), run_id, batch=batch, no_address="undeliverable")

    def claimed(self, incident_id: str, subjects: Sequence[str]) -> dict[str, str]:
        """Status of each of ``subjects`` already claimed (by any run of the incident).  The ids
        are sent, not a subquery: on tables filled since their last ANALYZE, PostgreSQL planned
        the subquery as a nested loop of seconds a batch."""
        claimed: dict[str, str] = {}
        with self.engine.connect() as conn:
            for part in chunks(subjects, CHUNK):
                query = sa.select(deliveries.c.subject_id, deliveries.c.status).where(
                    deliveries.c.notice == _notice(incident_id), deliveries.c.subject_id.in_(part)
                )
                claimed.update(conn.execute(query).all())
        return claimed

    def batch_deliveries(self, incident_id: str, run_id: str, batch: int) -> list[tuple[str, str, str | None]]:
        """(subject, status, Message-ID) of the rows the batch claimed, by subject."""
        query = (
            sa.select(deliveries.c.subject_id, deliveries.c.status, deliveries.c.message_id)
            .where(
                deliveries.c.notice == _notice(incident_id), deliveries.c.scope == run_id, deliveries.c.batch == batch
            )
            .order_by(deliveries.c.subject_id)
        )
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def delivery_counts(self, run_id: str) -> dict[str, int]:
        """The run's delivery rows by status."""
        query = (
            sa.select(deliveries.c.status, sa.func.count())
            .where(_INCIDENT_ROWS, deliveries.c.scope == run_id)
            .group_by(deliveries.c.status)
        )
        with self.engine.connect() as conn:
            return dict(conn.execute(query).all())

    def delivery_counts_among(self, incident_id: str, subjects: Sequence[str]) -> dict[str, int]:
        """The incident's delivery rows of ``subjects`` by status."""
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            for part in chunks(subjects, CHUNK):
                for status, n in conn.execute(
                    sa.select(deliveries.c.status, sa.func.count())
                    .where(deliveries.c.notice == _notice(incident_id), deliveries.c.subject_id.in_(part))
                    .group_by(deliveries.c.status)
                ):
                    counts[status] = counts.get(status, 0) + n
        return counts

    def undelivered(self, run_id: str, statuses: Sequence[str]) -> list[tuple[str, str]]:
        """(subject, status) of the run's deliveries in ``statuses``."""
        with self.engine.connect() as conn:
            return [
                tuple(row)
                for row in conn.execute(
                    sa.select(deliveries.c.subject_id, deliveries.c.status).where(
                        _INCIDENT_ROWS, deliveries.c.scope == run_id, deliveries.c.status.in_(statuses)
                    )
                )
            ]
