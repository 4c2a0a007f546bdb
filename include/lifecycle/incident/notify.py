"""Incident notification: register, affected people, obligations, preview, sending, documents.

Each step reads and writes the state store and returns counts: ids, counts
and batch numbers travel between tasks, never addresses or names.

* ``register`` writes the incident and the run (facts, phase, dry run) into
  the register (GDPR art. 33(5)).
* ``resolve`` finds the people affected set-based (one DISTINCT query per
  dataset, or an S3 object of ids), classifies how each can be reached
  (``email``; only ``phone`` or ``post``; ``none``) inside the database, and
  stores ids, reach, country, locale and batch numbers.  In a follow-up
  (phase ``update``) people already notified in an earlier run are kept but
  not ``new``.
* ``obligations`` decides which regulators must be told (their ``when``),
  each deadline from the discovery time, and whether the announcement
  fallback fires, with the reasons.
* ``preview`` writes one e-mail per locale, the announcement and each
  regulator report; a dry run ends there.
* ``send_batch`` mails one batch over one SMTP connection.  Before each mail
  its (incident, person) row is committed in the delivery table (unique), in
  the same transaction as the previous mail's outcome; the batch ends with
  one hash-chained ledger entry over its outcomes.  A rerun never mails a
  person whose row exists; a row left ``sending`` by a killed run becomes
  ``uncertain`` and that person goes on the letter and telephone lists.
* ``contact_lists``, ``announce``, ``regulator_reports`` and ``finish`` write
  the lists, the public notice, the reports and the delivery figures.

Time comes from the run (``as_of``) and the form's ``discovered_at``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from lifecycle.clock import iso_utc
from lifecycle.config import Config
from lifecycle.errors import LifecycleError, TerminalStoreError
from lifecycle.incident.documents import Documents, csv_bytes
from lifecycle.incident.form import IncidentForm
from lifecycle.mail import personal_notices, send_claimed
from lifecycle.state import StateStore
from lifecycle.state.incidents import DeliveryClaims, IncidentRun
from lifecycle.stores.contract import Selection

log = logging.getLogger(__name__)

TEMPLATE = "incident_notice"
UNDELIVERED = ("undeliverable", "deferred", "uncertain")


class IncidentNotification:
    def __init__(
        self,
        config: Config,
        state: StateStore,
        open_store: Callable[[str], object] | None = None,
        mailer: Callable[[], object] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        from lifecycle.stores import Stores

        if config.incidents is None:
            raise LifecycleError("incidents.yaml is not configured")
        self.config, self.cfg, self.catalog, self.state = config, config.incidents, config.catalog, state
        self.stores = Stores(self.catalog, open_store)
        self._mailer = mailer or self._default_mailer
        self._sleep = sleep

    def _default_mailer(self):
        from lifecycle.mail import Mailer

        return Mailer(self.cfg.email.conn_id, self.cfg.email.from_, self.cfg.email.max_per_second)

    # -------------------------------------------------------------- register

    def _run(self, run_id: str) -> IncidentRun:
        row = self.state.incidents.run(run_id)
        if row is None:
            raise LifecycleError(f"run {run_id!r} is not in the incident register; the register task did not run")
        return row

    def form(self, run_id: str) -> IncidentForm:
        return IncidentForm.from_facts(json.loads(self._run(run_id).facts))

    def _json(self, run_id: str, column: str) -> dict:
        value = getattr(self._run(run_id), column)
        return json.loads(value) if value else {}

    def _set(self, run_id: str, **documents) -> None:
        self.state.incidents.update_run(
            run_id, **{k: json.dumps(v, sort_keys=True, default=str) for k, v in documents.items()}
        )

    def _notified_runs(self, incident_id: str, except_run: str) -> list[str]:
        """Earlier runs of the incident that were approved to send (not dry runs)."""
        return [
            r.run_id
            for r in self.state.incidents.runs_of(incident_id)
            if r.run_id != except_run
            and not r.dry_run
            and r.approval
            and json.loads(r.approval).get("decision") == "approved"
        ]

    def register(self, form: IncidentForm, run_id: str, as_of: datetime, *, dag_id: str | None = None) -> dict:
        """Enter the incident and this run in the register; a rerun of the run keeps its entry."""
        existing = self.state.incidents.run(run_id)
        if existing is not None:
            if existing.incident_id != form.incident_id:
                raise LifecycleError(
                    f"run {run_id} is registered for incident {existing.incident_id}, not {form.incident_id}"
                )
            return {
                "incident_id": form.incident_id,
                "phase": existing.phase,
                "dry_run": existing.dry_run,
                "rerun": True,
            }
        notified = self._notified_runs(form.incident_id, run_id)
        if form.phase == "update" and not self.state.incidents.exists(form.incident_id):
            raise LifecycleError(
                f"phase 'update': incident {form.incident_id!r} is not in the register; "
                "trigger it with phase 'initial' first"
            )
        if form.phase == "initial" and notified and not form.dry_run:
            raise LifecycleError(
                f"incident {form.incident_id!r} was already notified (run {notified[0]}); "
                "use phase 'update' to notify newly affected people"
            )
        facts = json.dumps(form.facts(), sort_keys=True)
        self.state.incidents.register(
            incident_id=form.incident_id,
            title=form.title,
            discovered_at=iso_utc(form.discovered_at),
            run_id=run_id,
            phase=form.phase,
            dry_run=form.dry_run,
            as_of=iso_utc(as_of),
            facts=facts,
        )
        self.state.ledger.append(
            "incident.registered",
            {
                "incident": form.incident_id,
                "phase": form.phase,
                "dry_run": form.dry_run,
                "discovered_at": iso_utc(form.discovered_at),
                "facts_sha256": hashlib.sha256(facts.encode()).hexdigest(),
            },
            dag_id=dag_id,
            run_id=run_id,
            key=f"incident:{form.incident_id}:{run_id}:registered",
        )
        log.info("incident %s registered (phase %s, dry run %s)", form.incident_id, form.phase, form.dry_run)
        return {"incident_id": form.incident_id, "phase": form.phase, "dry_run": form.dry_run, "rerun": False}

    # --------------------------------------------------------------- resolve

    def affected_datasets(self, form: IncidentForm) -> list[str]:
        chosen = self.catalog.resolve(list(form.affected_categories), list(form.affected_datasets))
        return [d for d in chosen if self.catalog.dataset(d).personal and self.catalog.dataset(d).created]

    def _categories(self, form: IncidentForm, dataset: str) -> list[str]:
        found = self.catalog.categories_of(dataset)
        if dataset in form.affected_datasets or not form.affected_categories:
            return sorted(found)
        return sorted(c for c in found if any(self.catalog.is_within(c, a) for a in form.affected_categories))

    def _subjects_in_window(self, dataset: str, start: datetime, end: datetime) -> tuple[set[str], int]:
        """Distinct subject ids with a row (or object) created in [start, end], and how many rows (objects)."""
        store = self.stores.of(dataset)
        window = Selection(created_within=(start, end))
        with store.snapshot():
            return set(store.count_by_subject(dataset, window)), store.count(dataset, window)

    def _listed_subjects(self, uri: str) -> set[str]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        systems = [name for name, s in self.catalog.systems.items() if s.type == "s3" and s.bucket == bucket]
        if not systems:
            known = sorted(s.bucket for s in self.catalog.systems.values() if s.bucket)
            raise LifecycleError(
                f"subjects_uri: bucket {bucket!r} is not a system in catalog.yaml (known: {', '.join(known)})"
            )
        try:
            data = self.stores(systems[0]).get_bytes(key)
        except TerminalStoreError as exc:
            raise LifecycleError(f"subjects_uri: cannot read {uri}: {exc.reason}") from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise LifecycleError(f"subjects_uri: {uri} is not UTF-8 text (one subject id per line)") from None
        return {
            line.split(",")[0].strip()
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        }

    def resolve(self, run_id: str) -> dict:
        """Store the people affected (ids, reach, country, locale, batch); a rerun returns what is stored."""
        run = self._run(run_id)
        if run.scope:
            return self._summary(json.loads(run.scope))
        form = self.form(run_id)
        records: Counter = Counter()
        datasets: dict[str, int] = {}
        if form.subjects_uri:
            ids = self._listed_subjects(form.subjects_uri)
        else:
            ids = set()
            for dataset in self.affected_datasets(form):
                found, rows = self._subjects_in_window(dataset, form.occurred_from, form.occurred_to)
                ids |= found
                datasets[dataset] = rows
                for category in self._categories(form, dataset):
                    records[category] += rows
        earlier = self._earlier_subjects(form.incident_id, run_id)
        rows, seen = [], set()
        people = self.stores.of(self.catalog.subject.dataset)
        for subject, email, phone, address, country, locale in people.reach(sorted(ids)):
            reach = "email" if email else "phone" if phone else "post" if address else "none"
            rows.append(
                {
                    "run_id": run_id,
                    "incident_id": form.incident_id,
                    "subject_id": subject,
                    "new": subject not in earlier,
                    "reach": reach,
                    "country": country,
                    "locale": locale,
                    "batch": -1,
                }
            )
            seen.add(subject)
        rows.sort(key=lambda r: (len(r["subject_id"]), r["subject_id"]))
        mailable = [r for r in rows if r["new"] and r["reach"] == "email"]
        for n, row in enumerate(mailable):
            row["batch"] = n // self.cfg.batch_size
        self.state.incidents.replace_subjects(
            run_id, rows
        )  # a rerun after a crash before the scope was saved starts over
        new = [r for r in rows if r["new"]]
        scope = {
            "affected": len(rows),
            "new": len(new),
            "already_notified": len(rows) - len(new),
            "unknown_ids": len(ids - seen),
            "datasets": datasets,
            "records_by_category": dict(records),
            "categories": sorted(set(form.affected_categories) | set(records)),
            "reach": dict(Counter(r["reach"] for r in new)),
            "by_country": dict(Counter(r["country"] or "unknown" for r in new)),
            "by_locale": dict(Counter(r["locale"] or "unknown" for r in new)),
            "batches": -(-len(mailable) // self.cfg.batch_size),
        }
        self._set(run_id, scope=scope)
        self.state.ledger.append(
            "incident.resolved",
            {k: v for k, v in scope.items() if k != "datasets"} | {"incident": form.incident_id},
            run_id=run_id,
            key=f"incident:{form.incident_id}:{run_id}:resolved",
        )
        log.info("incident %s: %d affected, %d new, reach %s", form.incident_id, len(rows), len(new), scope["reach"])
        return self._summary(scope)

    @staticmethod
    def _summary(scope: dict) -> dict:
        return {
            "affected": scope["affected"],
            "new": scope["new"],
            "reach": scope["reach"],
            "batches": scope["batches"],
        }

    def _earlier_subjects(self, incident_id: str, run_id: str) -> set[str]:
        runs = self._notified_runs(incident_id, run_id)
        return self.state.incidents.subjects_of(runs) if runs else set()

    def batches(self, run_id: str) -> list[int]:
        return list(range(self._json(run_id, "scope")["batches"]))

    # ----------------------------------------------------------- obligations

    def _incident_totals(self, run_id: str, form: IncidentForm) -> tuple[int, set[str]]:
        """People affected by the incident so far (earlier notified runs and this one) and their countries."""
        return self.state.incidents.affected(self._notified_runs(form.incident_id, run_id) + [run_id])

    def _fallback(self, affected: int, unreachable: int, notified: int, chosen: bool) -> dict:
        rule = self.cfg.fallback
        reasons = []
        fraction = unreachable / notified if notified else 0.0
        if rule.affected_at_least is not None and affected >= rule.affected_at_least:
            reasons.append(
                f"{affected:,} people affected, at least fallback.affected_at_least {rule.affected_at_least:,}"
            )
        if (
            rule.unreachable_fraction_at_least is not None
            and notified
            and fraction >= rule.unreachable_fraction_at_least
        ):
            reasons.append(
                f"{unreachable:,} of {notified:,} people to notify ({fraction:.1%}) cannot be reached by e-mail, "
                f"at least fallback.unreachable_fraction_at_least {rule.unreachable_fraction_at_least:.1%}"
            )
        fires = bool(reasons)
        if chosen:
            reasons.append("announcement chosen in the trigger form")
        if not reasons:
            reasons.append(f"{affected:,} affected and {fraction:.1%} unreachable: below both fallback thresholds")
        return {
            "fires": fires,
            "publish": fires or chosen,
            "unreachable": unreachable,
            "notified": notified,
            "unreachable_fraction": round(fraction, 6),
            "reasons": reasons,
        }

    def obligations(self, run_id: str) -> dict:
        run, form = self._run(run_id), self.form(run_id)
        scope = json.loads(run.scope)
        as_of = datetime.fromisoformat(run.as_of)
        affected, countries = self._incident_totals(run_id, form)
        categories = set(scope["categories"])
        regulators = []
        for regulator in self.cfg.regulators:
            when, checks = regulator.when, []
            if when.affected_at_least is not None:
                checks.append(
                    (
                        affected >= when.affected_at_least,
                        f"{affected:,} affected (threshold {when.affected_at_least:,})",
                    )
                )
            if when.subject_countries:
                hit = sorted(countries & set(when.subject_countries))
                checks.append(
                    (
                        bool(hit),
                        f"affected people in {', '.join(hit)}"
                        if hit
                        else f"no affected person in {', '.join(when.subject_countries)}",
                    )
                )
            if when.categories:
                hit = sorted(c for c in categories if any(self.catalog.is_within(c, w) for w in when.categories))
                checks.append(
                    (
                        bool(hit),
                        f"categories {', '.join(hit)} involved"
                        if hit
                        else f"none of {', '.join(when.categories)} involved",
                    )
                )
            matched = all(ok for ok, _ in checks)
            deadline = regulator.deadline.after(form.discovered_at)
            regulators.append(
                {
                    "id": regulator.id,
                    "name": regulator.name,
                    "contact": regulator.contact,
                    "matched": matched,
                    "reasons": [text for _, text in checks] or ["no condition: always told"],
                    "deadline": iso_utc(deadline),
                    "deadline_after_discovery": str(regulator.deadline),
                    "met_if_notified_now": as_of <= deadline,
                }
            )
        notified = scope["new"]
        unreachable = notified - scope["reach"].get("email", 0)
        decision = {
            "affected_total": affected,
            "countries": sorted(countries),
            "regulators": regulators,
            "fallback": self._fallback(affected, unreachable, notified, "announcement" in form.channels),
            "decided_at": run.as_of,
        }
        self._set(run_id, obligations=decision)
        self.state.ledger.append(
            "incident.obligations",
            {
                "incident": form.incident_id,
                "regulators": [r["id"] for r in regulators if r["matched"]],
                "deadlines": {r["id"]: r["deadline"] for r in regulators if r["matched"]},
                "fallback": decision["fallback"]["fires"],
                "reasons": decision["fallback"]["reasons"],
            },
            run_id=run_id,
            key=f"incident:{form.incident_id}:{run_id}:obligations",
        )
        return {
            "regulators": [r["id"] for r in regulators if r["matched"]],
            "fallback": decision["fallback"]["fires"],
            "affected_total": affected,
        }

    # ------------------------------------------------------------ documents

    def _contact(self, form: IncidentForm) -> dict:
        if form.contact:
            return {"name": form.contact["name"], "email": form.contact["email"], "phone": form.contact.get("phone")}
        c = self.cfg.contact
        return {"name": c.name, "email": c.email, "phone": c.phone}

    def _category_titles(self, categories) -> list[str]:
        model = self.catalog.model.categories
        return [model[c].title or c.replace("_", " ") if c in model else c for c in categories]

    def notice_context(self, form: IncidentForm, scope: dict) -> dict:
        return {
            "incident": form.facts(),
            "incident_id": form.incident_id,
            "title": form.title,
            "follow_up": form.phase == "update",
            "discovered_on": form.discovered_at.date().isoformat(),
            "occurred_from": form.occurred_from.date().isoformat() if form.occurred_from else None,
            "occurred_to": form.occurred_to.date().isoformat() if form.occurred_to else None,
            "categories": self._category_titles(scope["categories"]),
            "contact": self._contact(form),
        }

    def _notice(self, form: IncidentForm, scope: dict, locale: str | None, name: str | None):
        from lifecycle.mail import render_notice

        return render_notice(TEMPLATE, locale, self.cfg.locales[0], name=name, **self.notice_context(form, scope))

    def _announcement(self, form: IncidentForm, scope: dict, obligations: dict) -> str:
        from lifecycle import reports

        return reports.render(
            "incident_announcement.html.j2",
            locales=self.cfg.locales,
            affected=obligations["affected_total"],
            **self.notice_context(form, scope),
        )

    def _report(self, run, form: IncidentForm, regulator: dict, figures: dict | None, draft: bool) -> dict:
        scope, obligations = json.loads(run.scope), json.loads(run.obligations)
        notified_at = run.as_of
        deadline = datetime.fromisoformat(regulator["deadline"])
        met = datetime.fromisoformat(notified_at) <= deadline
        return {
            "report": "personal information security incident report",
            "draft": draft,
            "follow_up": form.phase == "update",
            "phase": form.phase,
            "regulator": {k: regulator[k] for k in ("id", "name", "contact")},
            "why_told": regulator["reasons"],
            "incident": {
                "id": form.incident_id,
                "title": form.title,
                "cause": form.cause,
                "impact": form.impact,
                "measures_taken": form.measures_taken,
                "precautions": form.precautions,
                "remedies": form.remedies,
            },
            "contact": self._contact(form),
            "timeline": {
                "occurred_from": iso_utc(form.occurred_from) if form.occurred_from else None,
                "occurred_to": iso_utc(form.occurred_to) if form.occurred_to else None,
                "discovered_at": iso_utc(form.discovered_at),
                "notified_at": notified_at,
                "deadline": regulator["deadline"],
                "deadline_after_discovery": regulator["deadline_after_discovery"],
                "deadline_met": met,
                "delay_reasons": None if met else (form.delay_reasons or "not given"),
            },
            "scope": {
                "people_affected_this_report": scope["affected"],
                "people_newly_notified": scope["new"],
                "people_affected_total": obligations["affected_total"],
                "by_country": scope["by_country"],
                "records_by_category": {
                    t: scope["records_by_category"].get(c, 0)
                    for c, t in zip(scope["categories"], self._category_titles(scope["categories"]))
                },
                "categories": self._category_titles(scope["categories"]),
            },
            "channels": list(form.channels),
            "announcement": obligations["fallback"],
            "delivery": figures or "not sent yet",
        }

    def preview(self, run_id: str) -> dict:
        """One e-mail per locale, the announcement and each matched regulator's report, as drafts."""
        run, form = self._run(run_id), self.form(run_id)
        scope, obligations = json.loads(run.scope), json.loads(run.obligations)
        docs = Documents(self.catalog, form.incident_id, run_id)
        written = {}
        for locale in self.cfg.locales:
            notice = self._notice(form, scope, locale, None)
            written[f"email.{locale}.txt"] = docs.write_text(
                f"preview/email.{locale}.txt",
                f"Subject: {notice.subject}\n\n{notice.text}",
                "text/plain; charset=utf-8",
            )
            if notice.html:
                written[f"email.{locale}.html"] = docs.write_text(
                    f"preview/email.{locale}.html", notice.html, "text/html; charset=utf-8"
                )
        written["announcement.html"] = docs.write_text(
            "preview/announcement.html", self._announcement(form, scope, obligations), "text/html; charset=utf-8"
        )
        for regulator in obligations["regulators"]:
            if regulator["matched"]:
                for kind, location in docs.report(
                    f"preview/report.{regulator['id']}", self._report(run, form, regulator, None, True)
                ).items():
                    written[f"report.{regulator['id']}.{kind}"] = location
        self._set(run_id, figures={"preview": written})
        return {"documents": len(written), "folder": docs.folder + "/preview", "dry_run": form.dry_run}

    # -------------------------------------------------------------- approval

    def record_approval(self, run_id: str, decision: str, *, by: str | None, how: str) -> dict:
        if decision not in ("approved", "rejected"):
            raise LifecycleError(f"approval decision {decision!r}: expected approved or rejected")
        run = self._run(run_id)
        if run.approval:
            return json.loads(run.approval)
        approval = {"decision": decision, "by": by, "how": how}
        self._set(run_id, approval=approval)
        self.state.ledger.append(
            "incident.approval",
            {"incident": run.incident_id, **approval},
            run_id=run_id,
            key=f"incident:{run.incident_id}:{run_id}:approval",
        )
        return approval

    def _may_send(self, run) -> None:
        if run.dry_run:
            raise LifecycleError(f"run {run.run_id} is a dry run: nothing is sent")
        approval = json.loads(run.approval) if run.approval else {}
        if approval.get("decision") != "approved":
            raise LifecycleError(
                f"run {run.run_id} is not approved ({approval.get('decision', 'no decision')}): nothing is sent"
            )

    # ------------------------------------------------------------------ send

    def _subjects_store(self):
        return self.stores.of(self.catalog.subject.dataset)

    def send_batch(self, run_id: str, batch: int) -> dict:
        """Mail one batch; every person's row is committed before their mail, so nobody is mailed twice."""
        run = self._run(run_id)
        self._may_send(run)
        form, scope = self.form(run_id), json.loads(run.scope)
        incident = form.incident_id
        key = f"incident:{incident}:{run_id}:batch:{batch}"
        subjects = self.state.incidents.mailable(run_id, batch)
        recorded = self.state.incidents.claimed(incident, run_id, batch)
        interrupted = [s for s, status in recorded.items() if status == "sending"]
        claims = self.state.incidents.claims(incident, run_id, batch)
        if interrupted:  # a killed run left these between claim and outcome: never resend
            claims.mark_uncertain(interrupted)
        todo = [s for s in subjects if s not in recorded]
        if todo:
            self._mail(todo, form, scope, claims)
        counts = self.state.incidents.delivery_counts_among(incident, subjects)
        if counts.get("sending", 0) == 0:
            rows = self.state.incidents.batch_deliveries(incident, run_id, batch)
            digest = hashlib.sha256(json.dumps([list(r) for r in rows]).encode()).hexdigest()
            self.state.ledger.append(
                "incident.batch",
                {"incident": incident, "batch": batch, "counts": counts, "deliveries_sha256": digest},
                run_id=run_id,
                key=key,
            )
        log.info("incident %s batch %d: %s", incident, batch, counts)
        return {"batch": batch, **counts}

    def _mail(self, todo: list[str], form: IncidentForm, scope: dict, claims: DeliveryClaims) -> None:
        """Send to ``todo`` over one connection, each person's row committed before their mail (``send_claimed``)."""
        contacts = self._subjects_store().contacts(todo, ("email", "name", "locale"))
        email = self.cfg.email
        notice = personal_notices(TEMPLATE, self.cfg.locales[0], **self.notice_context(form, scope))
        with self._mailer() as mailer:

            def prepare(subject: str):
                person = contacts.get(subject) or {}
                if not person.get("email"):  # the address went away since resolve
                    return None
                return mailer.compose(
                    person["email"],
                    notice(person.get("locale"), person.get("name")),
                    key=f"incident:{form.incident_id}:{subject}",
                )

            send_claimed(
                mailer,
                todo,
                claims,
                prepare=prepare,
                attempts=email.retry_attempts,
                backoff=email.retry_backoff.seconds,
                sleep=self._sleep,
            )

    # ------------------------------------------------------ after the mails

    def _unreached(self, run_id: str) -> list[tuple[str, str]]:
        """(subject, why) of new people not reached by e-mail in this run."""
        return [(s, "no e-mail address") for s in self.state.incidents.not_emailed(run_id)] + [
            (s, f"e-mail {status}") for s, status in self.state.incidents.undelivered(run_id, UNDELIVERED)
        ]

    def contact_lists(self, run_id: str) -> dict:
        """Letter and telephone lists (CSV) of the people e-mail did not reach: internal work lists."""
        run, form = self._run(run_id), self.form(run_id)
        self._may_send(run)
        unreached = self._unreached(run_id)
        contacts = self._subjects_store().contacts(
            [s for s, _ in unreached], ("name", "address", "phone", "locale", "country")
        )
        docs = Documents(self.catalog, form.incident_id, run_id)
        out = {"letters": 0, "telephone": 0, "no_contact": 0}
        letters, calls = [], []
        for subject, why in sorted(unreached, key=lambda p: (len(p[0]), p[0])):
            person = contacts.get(subject, {})
            listed = False
            if "letter" in form.channels and person.get("address"):
                letters.append(
                    [
                        subject,
                        person.get("name") or "",
                        person["address"],
                        person.get("locale") or "",
                        person.get("country") or "",
                        why,
                    ]
                )
                listed = True
            if "telephone" in form.channels and person.get("phone"):
                calls.append(
                    [
                        subject,
                        person.get("name") or "",
                        person["phone"],
                        person.get("locale") or "",
                        person.get("country") or "",
                        why,
                    ]
                )
                listed = True
            out["no_contact"] += not listed
        written = {}
        if "letter" in form.channels:
            written["letters"] = docs.write_bytes(
                "letters.csv",
                csv_bytes(["subject_id", "name", "address", "locale", "country", "why"], letters),
                "text/csv; charset=utf-8",
            )
        if "telephone" in form.channels:
            written["telephone"] = docs.write_bytes(
                "telephone.csv",
                csv_bytes(["subject_id", "name", "phone", "locale", "country", "why"], calls),
                "text/csv; charset=utf-8",
            )
        out.update(letters=len(letters), telephone=len(calls))
        figures = self._json(run_id, "figures")
        self._set(run_id, figures={**figures, "lists": {**out, "files": written}})
        return {**out, "files": written}

    def announce(self, run_id: str) -> dict:
        """The final fallback decision (with undelivered mails counted) and, when it fires or was chosen, the public notice."""
        run, form = self._run(run_id), self.form(run_id)
        self._may_send(run)
        scope, obligations = json.loads(run.scope), json.loads(run.obligations)
        delivered = self.state.incidents.delivery_counts(run_id)
        unreachable = len(self._unreached(run_id))
        decision = self._fallback(
            obligations["affected_total"], unreachable, scope["new"], "announcement" in form.channels
        )
        published = None
        if decision["publish"]:
            if self.cfg.announcement is None:
                raise LifecycleError(
                    "the announcement must be published, but incidents.yaml has no announcement {system, key}"
                )
            system = self.cfg.announcement.system
            key = self.cfg.announcement.key.format(incident_id=form.incident_id)
            store = self.stores(system)
            store.put_bytes(
                key,
                self._announcement(form, scope, obligations).encode("utf-8"),
                content_type="text/html; charset=utf-8",
            )
            published = {"system": system, "location": f"s3://{store.bucket}/{key}", "url": self._url(store, key)}
        decision["published"] = published
        decision["delivery"] = delivered
        obligations["fallback_final"] = decision
        self._set(run_id, obligations=obligations)
        self.state.ledger.append(
            "incident.announcement",
            {
                "incident": form.incident_id,
                "fires": decision["fires"],
                "published": published["location"] if published else None,
                "reasons": decision["reasons"],
            },
            run_id=run_id,
            key=f"incident:{form.incident_id}:{run_id}:announcement",
        )
        return {"fires": decision["fires"], "published": published["url"] if published else None}

    @staticmethod
    def _url(store, key: str) -> str:
        endpoint = getattr(getattr(store.client, "meta", None), "endpoint_url", None)
        return f"{endpoint.rstrip('/')}/{store.bucket}/{key}" if endpoint else f"s3://{store.bucket}/{key}"

    def figures(self, run_id: str) -> dict:
        run = self._run(run_id)
        scope = json.loads(run.scope) if run.scope else {}
        lists = self._json(run_id, "figures").get("lists", {})
        delivered = self.state.incidents.delivery_counts(run_id)
        return {
            "affected": scope.get("affected", 0),
            "newly_notified": scope.get("new", 0),
            "emails_sent": delivered.get("sent", 0),
            "undeliverable": delivered.get("undeliverable", 0),
            "deferred": delivered.get("deferred", 0),
            "uncertain": delivered.get("uncertain", 0),
            "letters": lists.get("letters", 0),
            "telephone": lists.get("telephone", 0),
            "no_contact": lists.get("no_contact", 0),
        }

    def regulator_reports(self, run_id: str) -> dict:
        run, form = self._run(run_id), self.form(run_id)
        self._may_send(run)
        obligations = json.loads(run.obligations)
        figures = self.figures(run_id)
        docs = Documents(self.catalog, form.incident_id, run_id)
        written = {}
        for regulator in obligations["regulators"]:
            if regulator["matched"]:
                document = self._report(
                    run, form, regulator, {**figures, "announcement": obligations.get("fallback_final")}, False
                )
                written[regulator["id"]] = docs.report(f"report.{regulator['id']}", document)
                self.state.ledger.append(
                    "incident.report",
                    {
                        "incident": form.incident_id,
                        "regulator": regulator["id"],
                        "deadline": regulator["deadline"],
                        "follow_up": form.phase == "update",
                        "json": written[regulator["id"]]["json"],
                    },
                    run_id=run_id,
                    key=f"incident:{form.incident_id}:{run_id}:report:{regulator['id']}",
                )
        stored = self._json(run_id, "figures")
        self._set(run_id, figures={**stored, "reports": written})
        return {"reports": {k: v["pdf"] for k, v in written.items()}}

    def finish(self, run_id: str, approval: dict | None = None) -> dict:
        """Record the figures in the register (after every path: sent, dry run, rejected)."""
        run = self._run(run_id)
        if approval and not run.approval:
            self.record_approval(
                run_id, approval["decision"], by=approval.get("by"), how=approval.get("how", "approval task")
            )
            run = self._run(run_id)
        stored = self._json(run_id, "figures")
        figures = self.figures(run_id)
        obligations = json.loads(run.obligations) if run.obligations else {}
        decision = json.loads(run.approval).get("decision") if run.approval else None
        outcome = "dry run" if run.dry_run else decision or "not approved"
        final = obligations.get("fallback_final") or {}
        summary = {
            "incident_id": run.incident_id,
            "phase": run.phase,
            "outcome": outcome,
            **figures,
            "announcement": (final.get("published") or {}).get("url"),
            "regulators": [r["id"] for r in obligations.get("regulators", []) if r["matched"]],
            "documents": self.catalog.model.reports.path or self.catalog.model.reports.system,
            "folder": Documents(self.catalog, run.incident_id, run_id).folder,
        }
        self._set(run_id, figures={**stored, "final": summary})
        self.state.incidents.touch(run.incident_id)
        self.state.ledger.append(
            "incident.figures",
            {**summary, "documents": None},
            run_id=run_id,
            key=f"incident:{run.incident_id}:{run_id}:figures",
        )
        return summary


def approval_from_answer(answer: dict | None) -> dict | None:
    """The approval task's answer as the register keeps it; None when there was none (a dry run).

    ``{"auto": True}`` comes from ``approval: none``; otherwise the answer is
    the ``ApprovalOperator``'s (``chosen_options``, ``responded_by_user``).
    """
    if not answer:
        return None
    if answer.get("auto"):
        return {"decision": "approved", "by": None, "how": "incidents.yaml approval: none"}
    user = answer.get("responded_by_user") or {}
    chosen = (answer.get("chosen_options") or ["Reject"])[0]
    return {
        "decision": "approved" if chosen == "Approve" else "rejected",
        "by": user.get("name") or user.get("id"),
        "how": "approval task",
    }
