"""A person's own requests: see their information (*access*), delete some of it (*erase*),
withdraw a consent (*withdraw_consent*), each answered within ``respond_within``.

The stages, each a module here:

* ``form`` — the trigger form, checked;
* ``intake`` — the form's request or the app's requests table into the
  requests register (``state.requests``), with due dates; nobody on file:
  *rejected*;
* one module per kind — ``access``, ``erase``, ``withdraw`` — each with
  ``plan`` (counts only: what a dry run shows) and ``carry_out`` (resumable:
  every step is in the ledger under ``evidence.request_event`` keys, and a
  rerun skips what is recorded);
* ``report`` — the run's requests and every open one against its due date.

``SubjectRights`` builds them once for a task and is what the DAG calls.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lifecycle.clock import iso_utc
from lifecycle.config import Config
from lifecycle.errors import LifecycleError
from lifecycle.evidence import request_event, request_notice
from lifecycle.failures import retryable
from lifecycle.rights.form import RequestForm, parse
from lifecycle.rights.intake import take_in
from lifecycle.state import StateStore
from lifecycle.state.requests import SubjectRequest

__all__ = ["RequestForm", "RequestHandler", "SubjectRights", "handler", "handlers"]

log = logging.getLogger(__name__)


class RequestHandler(Protocol):
    """One kind of request: ``plan`` counts what it would do (a dry run stops there),
    ``carry_out`` does it, resumably; both return JSON-ready counts for the register."""

    kind: str

    def plan(self, rights: SubjectRights, request: SubjectRequest, as_of: datetime) -> dict: ...

    def carry_out(self, rights: SubjectRights, request: SubjectRequest, run_id: str, as_of: datetime) -> dict: ...


@dataclass(frozen=True)
class KindHandler:
    """A ``RequestHandler`` made of a kind's module functions."""

    kind: str
    plan: Callable[..., dict]
    carry_out: Callable[..., dict]


@functools.cache
def handlers() -> dict[str, RequestHandler]:
    """Every kind's handler, by kind (the modules are imported on first use, not when a DAG
    file is parsed)."""
    from lifecycle.rights import access, erase, withdraw

    registered = (
        KindHandler("access", access.plan, access.carry_out),
        KindHandler("erase", erase.plan, erase.carry_out),
        KindHandler("withdraw_consent", withdraw.plan, withdraw.carry_out),
    )
    return {h.kind: h for h in registered}


def handler(kind: str) -> RequestHandler:
    found = handlers().get(kind)
    if found is None:
        raise LifecycleError(f"no handler for request kind {kind!r}; known: {', '.join(handlers())}")
    return found


class SubjectRights:
    """The requests' stages over one configuration, state store and set of stores."""

    def __init__(
        self,
        config: Config,
        state: StateStore,
        stores=None,
        mailer: Callable[[], object] | None = None,
    ):
        from lifecycle.notifier import Notifier
        from lifecycle.stores import Stores

        if config.requests is None:
            raise LifecycleError("requests.yaml is not configured")
        self.config, self.catalog, self.settings, self.state = config, config.catalog, config.requests, state
        self.stores = stores if isinstance(stores, Stores) else Stores(config.catalog, stores)
        self.mailer = mailer
        self.notifier = Notifier(config.notifications, mailer)

    def parse(self, conf: dict, run_id: str) -> RequestForm | None:
        return parse(conf, self.config, run_id)

    def take_in(self, form: RequestForm | None, run_id: str, as_of: datetime) -> list[str]:
        return take_in(self, form, run_id, as_of)

    def request(self, request_id: str) -> SubjectRequest:
        found = self.state.requests.get(request_id)
        if found is None:
            raise LifecycleError(f"no request {request_id!r} in the requests register")
        return found

    def answer(self, request_id: str, run_id: str, as_of: datetime, *, dry_run: bool = False) -> dict:
        """Plan the request (counts, in the register and the ledger); unless ``dry_run``, carry it
        out and record it *done* (*purging* while a lake purge waits).  A request already done
        or rejected is left as it is; one *purging* is only settled (``purge``)."""
        request = self.request(request_id)
        if request.state in ("done", "rejected"):
            return self._summary(request)
        if request.state == "purging":
            return self._summary(self._settle(request, run_id, as_of))
        answering = handler(request.kind)
        plan = answering.plan(self, request, as_of)
        self.state.ledger.append(
            "request.planned",
            {"request_id": request_id, "kind": request.kind, "plan": plan},
            run_id=run_id,
            key=request_event(request_id, "planned", run_id),
        )
        if dry_run:
            return self._summary(self.state.requests.update(request_id, "planned", at=as_of, run_id=run_id, plan=plan))
        try:
            result = answering.carry_out(self, request, run_id, as_of)
        except Exception as exc:
            if not retryable(exc):
                reason = str(exc).splitlines()[0][:2000] if isinstance(exc, LifecycleError) else type(exc).__name__
                self.state.requests.update(request_id, "failed", at=as_of, run_id=run_id, reason=reason, plan=plan)
            raise
        return self._summary(self._answered(request, plan, result, run_id, as_of))

    def purge(self, run_id: str, as_of: datetime) -> dict:
        """Every *purging* request: its lake purges due by ``as_of``, then its certificate and
        *done* once none is left (a rerun after a kill finishes either)."""
        counts, failed = {"requests": 0, "done": 0, "purging": 0}, []
        for request in self.state.requests.in_states("purging"):
            counts["requests"] += 1
            try:
                counts[self._settle(request, run_id, as_of).state] += 1
            except LifecycleError as exc:  # storage still holds the person: stays purging, named
                counts["purging"] += 1
                failed.append(str(exc).splitlines()[0])
        if failed:
            raise LifecycleError("; ".join(failed))
        return counts

    def _settle(self, request: SubjectRequest, run_id: str, as_of: datetime) -> SubjectRequest:
        from lifecycle.rights.erase import settled

        result = settled(self, request, run_id, as_of, request.result or {})
        return self._answered(request, request.plan, result, run_id, as_of)

    def _answered(self, request: SubjectRequest, plan, result: dict, run_id: str, as_of: datetime) -> SubjectRequest:
        """The register after ``carry_out``: *purging* while a lake purge waits (the reason says
        until when), else *done* with its ledger entry."""
        request_id = request.request_id
        if result.get("purging_until"):
            reason = f"pending purge until {result['purging_until']}"
            log.info("request %s (%s): %s", request_id, request.kind, reason)
            return self.state.requests.update(
                request_id, "purging", at=as_of, run_id=run_id, reason=reason, plan=plan, result=result
            )
        self.state.ledger.append(
            "request.done",
            {
                "request_id": request_id,
                "kind": request.kind,
                "result": result,
                "due_at": request.due_at,
                "completed_at": iso_utc(as_of),
            },
            run_id=run_id,
            key=request_event(request_id, "done"),
        )
        done = self.state.requests.update(request_id, "done", at=as_of, run_id=run_id, plan=plan, result=result)
        log.info("request %s (%s) done: %s", request_id, request.kind, result)
        return done

    @staticmethod
    def _summary(request: SubjectRequest) -> dict:
        """What a task may return: ids, states and counts, never a person's values."""
        return {
            "request_id": request.request_id,
            "kind": request.kind,
            "state": request.state,
            "due_at": request.due_at,
            "plan": request.plan,
            "result": request.result,
        }

    # ------------------------------------------------------------- notices

    def notify(self, request: SubjectRequest, template: str | None, context: dict, run_id: str | None) -> dict:
        """Mail the person the answer to ``request`` at the address on file, at most once
        per request and template (resumable: a mail claimed and not confirmed is never resent)."""
        from lifecycle.erasure.notices import NoticeBook
        from lifecycle.mail import personal_notices

        if not template or request.subject_id is None:
            return {"sent": 0}
        notifications = self.config.notifications
        contact = notifications.contact if notifications else None
        fallback = notifications.locales[0] if notifications else "en"
        notice = personal_notices(template, fallback)
        shared = {
            "request_id": request.request_id,
            "requested_on": request.received_at[:10],
            "contact_name": contact.name if contact else "",
            "contact_email": contact.email if contact else "",
            **context,
        }
        name = request_notice(template, request.request_id)

        def prepare(todo: Sequence[str], mailer):
            people = self.stores.of(self.catalog.subject.dataset).contacts(list(todo))

            def compose(subject: str):
                person = people.get(subject) or {}
                if not person.get("email"):
                    return None
                message = notice(person.get("locale"), person.get("name"), **shared)
                return mailer.compose(person["email"], message, key=f"request:{request.request_id}:{template}")

            return compose

        book = NoticeBook(self.state, name, f"request:{request.request_id}")
        delivered = self.notifier.deliver(book, [request.subject_id], prepare, run_id=run_id)
        counts = dict(delivered.outcomes)
        counts["already"] = delivered.already + counts.pop("taken", 0)
        counts["uncertain"] = delivered.uncertain
        return counts

    def report(self, run_id: str, as_of: datetime) -> dict:
        from lifecycle.rights.report import write_report

        return write_report(self, run_id, as_of)

    def overdue(self, as_of: datetime) -> list[dict]:
        from lifecycle.rights.report import overdue

        return overdue(self.state, as_of)

    def locale_of(self, subject_id: str) -> str | None:
        """The person's language (the catalog's ``subject.contact.locale``), for their documents."""
        found = self.stores.of(self.catalog.subject.dataset).contacts([subject_id], fields=["locale"])
        return (found.get(subject_id) or {}).get("locale")
