"""The ``withdraw_consent`` kind: a person withdraws their consent for one purpose.

* In every consent dataset (``consent: {purpose, granted, withdrawn}`` in
  the catalog), the person's rows for the purpose granted by the run's time
  and not withdrawn get the run's time (``as_of``) as their withdrawn time;
  the sharing extract judges consent in force at each delivery, so the next
  delivery leaves the person out.  Rows marked are counted by that time, so
  a rerun counts the same rows; one ``request.consent_withdrawn`` ledger
  entry, recorded once.  No consent in force: nothing is marked, the request
  is still done and its result says so.
* Every recipient that may have received the person's data under the
  consent is asked to delete it (``sharing.deletions``: the rule, the
  pseudonym, once per recipient).
* The person is told, with the names of the recipients asked.
"""

from __future__ import annotations

import logging
from datetime import datetime, time

from lifecycle.clock import aware_utc, iso_utc
from lifecycle.evidence import request_event
from lifecycle.sharing.deletions import Asked, DeletionRequests, consent_recipients

log = logging.getLogger(__name__)


def scope_of(request) -> str:
    return f"request:{request.request_id}"


def _consent_datasets(rights) -> list[str]:
    return [name for name in rights.catalog.datasets if rights.catalog.dataset(name).consent is not None]


def _periods(rights, request) -> dict[str, list]:
    """The person's consent rows for the purpose, per consent dataset."""
    return {
        name: rights.stores.of(name).consent_periods(name, request.subject_id, request.purpose)
        for name in _consent_datasets(rights)
    }


def _in_force(periods: list, as_of: datetime) -> list:
    """The rows withdrawing marks: granted by ``as_of`` and not withdrawn."""
    return [p for p in periods if p.withdrawn is None and p.granted <= as_of]


def _at(when: datetime | None, as_of: datetime) -> bool:
    """Whether a withdrawn time is the run's (a column may keep whole seconds, or the day only)."""
    if when is None:
        return False
    day_only = when.time() == time() and when.date() == aware_utc(as_of).date()
    return day_only or abs((when - as_of).total_seconds()) < 1


def _purpose_title(rights, purpose: str) -> str:
    """The purpose in words: the purpose of the recipients shared with under it, else its name."""
    recipients = rights.config.recipients.recipients if rights.config.recipients else []
    titles = [r.purpose for r in recipients if r.consent is not None and r.consent.purpose == purpose]
    return titles[0] if titles else purpose


def plan(rights, request, as_of: datetime) -> dict:
    """Counts only: consent rows that would be marked withdrawn, recipients that would be asked."""
    periods = _periods(rights, request)
    consents = {name: len(_in_force(rows, as_of)) for name, rows in periods.items()}
    everything = [p for rows in periods.values() for p in rows]
    recipients = consent_recipients(rights.config, rights.state, request.purpose, everything, as_of)
    return {
        "purpose": request.purpose,
        "consents": consents,
        "in_force": sum(consents.values()),
        "recipients": len(recipients),
    }


def carry_out(rights, request, run_id: str, as_of: datetime) -> dict:
    """Mark the consent withdrawn, ask the recipients to delete, tell the person (each step
    once: a rerun finds the rows marked, the requests claimed, the notice claimed)."""
    marked = {}
    for name in _consent_datasets(rights):
        rights.stores.of(name).withdraw_consent(name, request.subject_id, request.purpose, as_of)
    periods = _periods(rights, request)
    for name, rows in periods.items():
        marked[name] = sum(1 for p in rows if _at(p.withdrawn, as_of))
    withdrawn = sum(marked.values())
    entry = rights.state.ledger.append(
        "request.consent_withdrawn",
        {
            "request_id": request.request_id,
            "purpose": request.purpose,
            "datasets": marked,
            "withdrawn": withdrawn,
            "withdrawn_at": iso_utc(as_of),
        },
        run_id=run_id,
        key=request_event(request.request_id, "consent_withdrawn"),
    )
    withdrawn = entry.payload.get("withdrawn", withdrawn)
    everything = [p for rows in periods.values() for p in rows]
    recipients = consent_recipients(rights.config, rights.state, request.purpose, everything, as_of)
    asked = [Asked(r, (str(request.subject_id),)) for r in recipients]
    deletions = DeletionRequests(rights.config, rights.state, rights.notifier).send(
        scope_of(request), asked, reason="withdraw_consent", purpose=request.purpose, run_id=run_id
    )
    context = {"purpose_title": _purpose_title(rights, request.purpose), "recipients": [r.name for r in recipients]}
    notice = rights.notify(request, rights.settings.notify.consent_withdrawn, context, run_id)
    result = {
        "purpose": request.purpose,
        "withdrawn": withdrawn,
        "datasets": entry.payload.get("datasets", marked),
        "recipients": [r.id for r in recipients],
        "deletion_requests": deletions,
        "notice": notice,
    }
    if not withdrawn:
        result["nothing_to_withdraw"] = f"no consent for {request.purpose} was in force"
    log.info(
        "request %s: %d consent row(s) withdrawn, %d recipient(s) asked", request.request_id, withdrawn, len(asked)
    )
    return result
