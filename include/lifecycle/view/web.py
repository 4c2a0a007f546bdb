"""The Privacy view: a FastAPI app the api-server mounts (``lifecycle.airflow.plugin``).

Airflow does not protect a plugin's routes: every route here depends on
``viewer``, which asks the api-server's auth manager who is calling (the UI's
session cookie or a bearer token, as Airflow's own routes do) and what they
may read.  Every route is a GET; nothing changes through the view.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lifecycle import reports
from lifecycle.view import charts, coverage, documents, incidents, overview
from lifecycle.view.permissions import (
    CONTACT_LISTS,
    EVERYTHING,
    INCIDENTS,
    Abilities,
    abilities,
    auth_manager_check,
    lifecycle_dag_ids,
)

log = logging.getLogger(__name__)
SANDBOX = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@dataclass(frozen=True)
class Viewer:
    name: str
    may: Abilities


class Sources:
    """Configuration, state store and reports destination, opened once per process."""

    @functools.cached_property
    def config(self):
        from lifecycle.config import load_config

        return load_config()

    @functools.cached_property
    def state(self):
        from lifecycle.state import StateStore

        return StateStore.for_catalog(self.config.catalog)

    @functools.cached_property
    def sink(self):
        return reports.ReportSink(self.config.catalog)

    @functools.cached_property
    def stores(self):
        from lifecycle.stores import Stores

        return Stores(self.config.catalog)

    def signing_key(self) -> bytes | None:
        from lifecycle.connections import connection_secret

        try:
            return connection_secret(self.config.recipients.signing.conn_id)
        except Exception:  # not configured here: manifests are listed, not checked
            return None

    def last_check(self) -> dict | None:
        """The last ``lifecycle_checks`` run's ledger verification, from Airflow's metadata."""
        try:
            return _last_ledger_check()
        except Exception:  # no metadata database in this process: shown as unknown
            log.debug("no last ledger check", exc_info=True)
            return None


SOURCES = Sources()


def sources() -> Sources:
    return SOURCES


async def viewer(request: Request) -> Viewer:
    """The authenticated caller and what they may see; 401 without a session or token."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    user = await get_user(request, None, await bearer_scheme(request))
    may = abilities(auth_manager_check(get_auth_manager(), user), lifecycle_dag_ids(sources().config))
    return Viewer(getattr(user, "username", None) or user.get_name(), may)


Caller = Annotated[Viewer, Depends(viewer)]


def require(who: Viewer, need: str) -> None:
    if not who.may.allows(need):
        raise HTTPException(status_code=403, detail=f"{who.name} may not see this part of the Privacy view")


app = FastAPI(title="Privacy view", docs_url=None, redoc_url=None, openapi_url=None)


@app.exception_handler(HTTPException)
async def _page_for_errors(request: Request, exc: HTTPException):
    login = "" if exc.status_code != 401 else '<p><a href="/auth/login" target="_top">Log in to Airflow</a></p>'
    body = f"<!doctype html><title>Privacy view</title><p>{exc.status_code}: {exc.detail}</p>{login}"
    return HTMLResponse(body, status_code=exc.status_code)


def _base(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def _page(request: Request, who: Viewer, template: str, **context) -> HTMLResponse:
    html = reports.render(f"view/{template}", base=_base(request), who=who, q=quote, **context)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _now() -> datetime:
    return datetime.now(UTC)


@app.get("/", response_class=HTMLResponse)
def home(request: Request, who: Caller):
    if not who.may.everything and who.may.incidents:
        return RedirectResponse(f"{_base(request)}/incidents", status_code=303)
    return overview_page(request, who)


@app.get("/overview", response_class=HTMLResponse)
def overview_page(request: Request, who: Caller):
    require(who, EVERYTHING)
    src = sources()
    model = overview.build_overview(src.config, src.state, src.sink, now=_now(), last_check=src.last_check())
    return _page(
        request,
        who,
        "overview.html.j2",
        o=model,
        removed_chart=charts.bars(
            [(at[:10], n) for at, n in model.retention.history], title="Rows and objects removed per retention run"
        ),
        queue_chart=charts.bars(model.queue, title="Open cancellations at the end of each day", color="#805ad5"),
    )


@app.get("/documents", response_class=HTMLResponse)
def documents_page(request: Request, who: Caller, kind: str = "retention"):
    require(who, EVERYTHING)
    if kind not in documents.KINDS:
        raise HTTPException(status_code=404, detail="no such kind of document")
    listed = documents.folders(sources().sink, kind, contact_lists=who.may.contact_lists)
    return _page(request, who, "documents.html.j2", kinds=documents.KINDS, kind=kind, folders=listed)


@app.get("/documents/manifests", response_class=HTMLResponse)
def manifests_page(request: Request, who: Caller):
    require(who, EVERYTHING)
    src = sources()
    rows = documents.manifests(src.config, src.state, src.stores, src.signing_key())
    return _page(request, who, "manifests.html.j2", kinds=documents.KINDS, kind="manifests", rows=rows)


@app.get("/documents/open")
def open_document(who: Caller, key: Annotated[str, Query(max_length=documents.MAX_KEY)]):
    try:
        documents.checked_form(key)
    except documents.BadKey as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    require(who, INCIDENTS if key.startswith("incidents/") else EVERYTHING)
    if incidents.is_contact_list(key):
        require(who, CONTACT_LISTS)
    sink = sources().sink
    try:
        documents.existing(sink, key)
    except documents.BadKey as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    name = key.rsplit("/", 1)[-1]
    disposition = "inline" if documents.extension(key) in documents.INLINE else "attachment"
    headers = {
        "Content-Security-Policy": SANDBOX,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'{disposition}; filename="{reports.safe_name(name)}"',
        "Cache-Control": "no-store",
    }
    return Response(sink.read(key), media_type=documents.content_type(key), headers=headers)


@app.get("/coverage", response_class=HTMLResponse)
def coverage_page(request: Request, who: Caller):
    require(who, EVERYTHING)
    return _page(request, who, "coverage.html.j2", c=coverage.build(sources().sink))


@app.get("/incidents", response_class=HTMLResponse)
def incidents_page(request: Request, who: Caller):
    require(who, INCIDENTS)
    summaries = incidents.incident_summaries(sources().state, _now())
    return _page(request, who, "incidents.html.j2", incidents=summaries)


@app.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(request: Request, who: Caller, incident_id: str, run: str | None = None):
    require(who, INCIDENTS)
    src = sources()
    runs = src.state.incidents.runs_of(incident_id)
    if not runs:
        raise HTTPException(status_code=404, detail="no such incident in the register")
    locales = list(src.config.notifications.locales) if src.config.notifications else ["en"]
    view = incidents.run_view(src.state, src.sink, incident_id, run or runs[-1].run_id, locales, _now())
    if view is None:
        raise HTTPException(status_code=404, detail="no such run of this incident")
    shown = [k for k in view.documents if who.may.contact_lists or not incidents.is_contact_list(k)]
    previews = {label: src.sink.read(key).decode("utf-8", "replace") for label, key in view.previews.items()}
    return _page(request, who, "incident.html.j2", v=view, docs=shown, previews=previews)


@app.get("/public-keys.json")
def public_keys(who: Caller):
    """The Ed25519 public keys everything the lifecycle issues is signed with (current and retired)."""
    if not who.may.any:
        raise HTTPException(status_code=403, detail=f"{who.name} may not see the Privacy view")
    body = reports.public_keys(sources().config.catalog).published()
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@app.get("/certificates/{batch}/{subject}")
def person_certificate(who: Caller, batch: str, subject: str):
    """One person's erasure certificate, rendered on demand: leaf, inclusion proof, signed batch root."""
    require(who, EVERYTHING)
    from lifecycle.erasure.certificates import Certificates
    from lifecycle.errors import LifecycleError

    if not 16 <= len(subject) <= 64 or any(c not in "0123456789abcdef" for c in subject):
        raise HTTPException(status_code=400, detail="a subject is 16 to 64 hex digits of its certificate hash")
    try:
        document = Certificates(sources().config.catalog, None).person(batch, subject)
    except LifecycleError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    headers = {
        "Cache-Control": "no-store",
        "Content-Disposition": f'inline; filename="certificate-{subject[:16]}.json"',
    }
    return Response(reports.canonical(document), media_type="application/json", headers=headers)


def _last_ledger_check() -> dict | None:
    """State, end and entry count of the newest ``verify_ledger`` task of ``lifecycle_checks``."""
    import sqlalchemy as sa
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.execute(
            sa.select(TaskInstance)
            .where(TaskInstance.dag_id == "lifecycle_checks", TaskInstance.task_id == "verify_ledger")
            .where(TaskInstance.end_date.is_not(None))
            .order_by(TaskInstance.end_date.desc())
            .limit(1)
        ).scalar_one_or_none()
        if ti is None:
            return None
        value = session.execute(
            sa.select(XComModel.value).where(
                XComModel.dag_id == ti.dag_id,
                XComModel.run_id == ti.run_id,
                XComModel.task_id == ti.task_id,
                XComModel.key == "return_value",
            )
        ).scalar_one_or_none()
        if isinstance(value, str):
            import json

            try:
                value = json.loads(value)
            except ValueError:
                value = None
        entries = value.get("entries") if isinstance(value, dict) else None
        return {"state": str(ti.state), "at": ti.end_date.isoformat(), "run_id": ti.run_id, "entries": entries}
