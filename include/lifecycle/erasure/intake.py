"""Intake: every subject's requests become a state, and due subjects go into batches.

*pending* during the grace period, *withdrawn* when every request was
withdrawn within it, *held* under a legal hold (any hold suspends erasure),
*rejected* when the subject does not exist, *due* once the grace is over by
the run's time.  Subjects already *erasing* or *done* keep their state.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from lifecycle.cancellations import CancellationRequests, Request
from lifecycle.clock import aware_utc, iso_utc
from lifecycle.evidence import erasure_intake
from lifecycle.state.erasures import Intake
from lifecycle.stores.contract import Selection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    counts: dict[str, int]  # subjects by state, after intake
    batches: list[str]  # the run's batches still to erase


def take_in(config, state, stores, run_id: str, as_of: datetime) -> IntakeResult:
    """Read the requests, update every subject's state, put due subjects into batches."""
    cancellation, subject_dataset = config.cancellation, config.catalog.subject.dataset
    by_subject = CancellationRequests(config, state, stores).by_subject()
    known = {r.subject_id: r for r in state.erasures.all()}
    existing = stores.of(subject_dataset).count_by_subject(subject_dataset, Selection(subjects=tuple(by_subject)))
    held = {h.subject_id for h in state.holds.active(as_of.date())}
    when, changes = aware_utc(as_of), []
    for subject, requests in by_subject.items():
        record = known.get(subject)
        if record and record.state in ("done", "erasing"):
            continue
        change = _decide(config, subject, requests, when, exists=subject in existing, held=subject in held)
        if not (record and record.state == change.state and record.reason == change.reason):
            changes.append(change)
    state.erasures.record_intake(changes, at=iso_utc(as_of))
    batches = state.erasures.batch_due(run_id, cancellation.batch_size)
    counts = state.erasures.counts()
    digest = hashlib.sha256(json.dumps(counts, sort_keys=True).encode()).hexdigest()[:12]
    state.ledger.append(
        "erasure.intake",
        {"counts": counts, "batches": len(batches)},
        run_id=run_id,
        key=erasure_intake(run_id, digest),
    )
    log.info("intake: %s; %d batch(es) to erase", counts, len(batches))
    return IntakeResult(counts, batches)


def _decide(config, subject: str, requests: list[Request], when: datetime, *, exists: bool, held: bool) -> Intake:
    """One subject's state at ``when`` (aware UTC): the oldest request not withdrawn in time counts."""
    grace = config.cancellation.grace_period
    active = [r for r in requests if not r.withdrawn_in_grace(when, grace.after(r.requested_at))]
    first = active[0] if active else requests[0]
    grace_end = grace.after(first.requested_at)
    if not exists:
        subject_ds = config.catalog.subject
        state, reason = "rejected", f"no {subject_ds.dataset} row with {subject_ds.key} = this id"
    elif not active:
        state, reason = "withdrawn", "withdrawn before the grace period ended"
    elif held:
        state, reason = "held", "the subject is under legal hold"
    elif when < grace_end:
        state, reason = "pending", None
    else:
        state, reason = "due", None
    request_ids = tuple(r.request_id for r in requests)
    return Intake(subject, request_ids, iso_utc(first.requested_at), iso_utc(grace_end), state, reason)
