"""Requests into the register: the form's one, and the app's requests table's new rows.

Each request is recorded once with its due date (``respond_within`` after it
was received: the run's time for the form, the table's ``requested_at``);
one that names nobody on file is recorded *rejected* and nothing else
happens.  Returns the ids the run answers: the form's, or the table's open
ones.
"""

from __future__ import annotations

import logging
from datetime import datetime

from lifecycle.clock import aware_utc, iso_utc
from lifecycle.errors import LifecycleError
from lifecycle.evidence import request_event
from lifecycle.rights.form import RequestForm
from lifecycle.state.requests import KINDS, SubjectRequest

log = logging.getLogger(__name__)


def take_in(rights, form: RequestForm | None, run_id: str, as_of: datetime) -> list[str]:
    if form is not None:
        request = _form_request(rights, form, run_id, as_of)
        return [request.request_id] if request.state != "rejected" else []
    if rights.settings.intake is None:
        log.info("no request in the form and no requests table in requests.yaml: nothing to take in")
        return []
    _table_requests(rights, run_id, as_of)
    return [r.request_id for r in rights.state.requests.open_requests() if r.source == "table"]


def _due(rights, received: datetime) -> str:
    return iso_utc(rights.settings.respond_within.after(aware_utc(received)))


def _record(rights, request: SubjectRequest, run_id: str) -> SubjectRequest:
    stored, created = rights.state.requests.receive(request)
    if created:
        payload = {
            "request_id": stored.request_id,
            "kind": stored.kind,
            "source": stored.source,
            "state": stored.state,
            "received_at": stored.received_at,
            "due_at": stored.due_at,
        }
        if stored.reason:
            payload["reason"] = stored.reason
        rights.state.ledger.append(
            f"request.{stored.state}", payload, run_id=run_id, key=request_event(stored.request_id, "received")
        )
    return stored


def _form_request(rights, form: RequestForm, run_id: str, as_of: datetime) -> SubjectRequest:
    directory = rights.stores.of(rights.catalog.subject.dataset)
    if form.subject is not None:
        found = [form.subject] if directory.contacts([form.subject], fields=[]) else []
    else:
        found = directory.find("email", form.email)
    if len(found) > 1:
        raise LifecycleError(
            f"request {form.request_id}: more than one person has that e-mail address on file; name the person by key"
        )
    subject = found[0] if found else None
    request = SubjectRequest(
        request_id=form.request_id,
        kind=form.kind,
        subject_id=subject,
        source="form",
        categories=form.categories,
        purpose=form.purpose,
        state="received" if subject else "rejected",
        reason=None if subject else "no such person",
        received_at=iso_utc(as_of),
        due_at=_due(rights, as_of),
        run_id=run_id,
        updated_at=iso_utc(as_of),
    )
    stored = _record(rights, request, run_id)
    asked = (form.kind, subject, form.categories, form.purpose)
    if (stored.kind, stored.subject_id, stored.categories, stored.purpose) != asked:
        raise LifecycleError(
            f"request_id {form.request_id!r} is recorded with another kind, person, categories or purpose; "
            "give the new request an id of its own"
        )
    log.info("request %s (%s): %s, due %s", stored.request_id, stored.kind, stored.state, stored.due_at)
    return stored


def _table_requests(rights, run_id: str, as_of: datetime) -> None:
    """Register the rows of the app's requests table not seen before (requested by the run's time)."""
    table = rights.settings.intake.requests
    columns = [table.id, table.subject, table.kind, table.requested_at, table.categories, table.purpose]
    present = [c for c in columns if c]
    rows = rights.stores.of(table.dataset).read(table.dataset, present, instants=(table.requested_at,))
    by_name = [dict(zip(present, row, strict=True)) for row in rows]
    ids = {f"{table.dataset}:{row[table.id]}": row for row in by_name}
    new = {i: row for i, row in ids.items() if i not in rights.state.requests.known(list(ids))}
    categories_known = set(rights.catalog.model.categories)
    taken = 0
    for request_id, row in sorted(new.items()):
        received = row[table.requested_at]  # aware UTC (the store reads every time column so)
        if received is None or received > aware_utc(as_of):
            continue  # asked after the run's time: the next run takes it
        kind = str(row[table.kind] or "")
        categories = tuple(c.strip() for c in str(row.get(table.categories) or "").split(",") if c.strip())
        purpose = row.get(table.purpose) if table.purpose else None
        reason = None
        if kind not in KINDS:
            reason = f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}"
        elif kind == "erase" and (not categories or set(categories) - categories_known):
            reason = f"erase needs known categories; got {sorted(set(categories) - categories_known) or 'none'}"
        elif kind == "withdraw_consent" and not purpose:
            reason = "withdraw_consent needs a purpose"
        elif kind == "access" and rights.settings.access is None:
            reason = "access requests need requests.yaml: access"
        elif row[table.subject] is None:
            reason = "no such person"
        request = SubjectRequest(
            request_id=request_id,
            kind=kind[:24],
            subject_id=None if row[table.subject] is None else str(row[table.subject]),
            source="table",
            categories=categories if kind == "erase" else (),
            purpose=purpose if kind == "withdraw_consent" else None,
            state="rejected" if reason else "received",
            reason=reason,
            received_at=iso_utc(received),
            due_at=_due(rights, received),
            run_id=run_id,
            updated_at=iso_utc(as_of),
        )
        _record(rights, request, run_id)
        taken += 1
    log.info("requests table %s: %d row(s), %d new request(s) taken in", table.dataset, len(ids), taken)
