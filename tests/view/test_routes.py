"""Every route of the Privacy view's app, anonymously and as each role of config/roles.json.

The auth manager here answers from config/roles.json the way FAB's does
(a DAG is readable through ``DAGs`` or ``DAG:<id>``, a run is triggered with
``DAG Runs``/``DAG Run:<id>`` create plus DAG edit); the distributed run asks
the real FAB auth manager the same questions (tests/deploy/test_view.py).
A route added to the app without an entry in ``EXPECTED`` fails here.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from jwt import InvalidTokenError

from lifecycle.access import read_roles
from lifecycle.view import web
from tests.view.conftest import DRY

ROLES = read_roles(Path(__file__).resolve().parents[2] / "config" / "roles.json")
USERS = {"engineer": "DataEngineer", "responder": "IncidentResponder", "auditor": "Auditor", "nobody": None}
E, R, A = "engineer", "responder", "auditor"


class RolesFileAuthManager:
    """Answers ``is_authorized_dag`` from config/roles.json as the FAB auth manager does."""

    async def get_user_from_token(self, token: str):
        if token not in USERS:
            raise InvalidTokenError("unknown token")
        return SimpleNamespace(username=token, role=USERS[token], get_name=lambda: token)

    @staticmethod
    def _has(user, action: str, resource: str) -> bool:
        return (action, resource) in ROLES.get(user.role, set())

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None):
        dag = details.id
        action = "can_read" if method == "GET" else {"POST": "can_create", "PUT": "can_edit"}.get(method, "can_delete")
        dag_ok = self._has(user, "can_read" if method == "GET" else "can_edit", "DAGs") or self._has(
            user, "can_read" if method == "GET" else "can_edit", f"DAG:{dag}"
        )
        if access_entity is None:
            return self._has(user, action, "DAGs") or self._has(user, action, f"DAG:{dag}")
        run_ok = self._has(user, action, "DAG Runs") or self._has(user, action, f"DAG Run:{dag}")
        return run_ok and dag_ok


def expected(world) -> dict[str, tuple[str, dict[str | None, int]]]:
    """``route path -> (a URL of it, {user: status})``; ``None`` is the anonymous caller."""
    everything = {E: 200, A: 200, R: 403}
    everyone = {E: 200, A: 200, R: 200}
    key = quote(world.folder + "letters.csv", safe="")
    preview = quote(world.folder + "preview/email.en.html", safe="")
    return {
        "/": ("/", {E: 200, A: 200, R: 303}),
        "/overview": ("/overview", everything),
        "/documents": ("/documents?kind=incidents", everything),
        "/documents/manifests": ("/documents/manifests", everything),
        "/documents/open": ("/documents/open?key=certificates%2Fabc.html", everything),
        "/documents/open (incident preview)": (f"/documents/open?key={preview}", everyone),
        "/documents/open (contact list)": (f"/documents/open?key={key}", {E: 200, A: 403, R: 200}),
        "/coverage": ("/coverage", everything),
        "/evidence": ("/evidence", everything),
        "/incidents": ("/incidents", everyone),
        "/incidents/{incident_id}": (f"/incidents/{world.incident_id}?run={quote(DRY, safe='')}", everyone),
        "/public-keys.json": ("/public-keys.json", everyone),
        "/certificates/{batch}/{subject}": ("/certificates/2026-06-01:0/" + "ab" * 16, {E: 404, A: 404, R: 403}),
    }


@pytest.fixture
def client(world, monkeypatch):
    from airflow.api_fastapi.app import _AuthManagerState

    monkeypatch.setattr(_AuthManagerState, "instance", RolesFileAuthManager())
    fake = SimpleNamespace(
        config=world.config,
        state=world.state,
        sink=world.sink,
        stores=None,
        signing_key=lambda: None,
        last_check=lambda: None,
    )
    monkeypatch.setattr(web, "sources", lambda: fake)
    server = FastAPI()
    server.mount("/privacy", web.app)
    return TestClient(server, follow_redirects=False)


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_every_route_is_a_get_with_expectations(world):
    routes = {r.path: r.methods for r in web.app.routes if isinstance(r, APIRoute)}
    assert all(methods == {"GET"} for methods in routes.values()), routes
    covered = {name.split(" ")[0] for name in expected(world)}
    assert set(routes) == covered, f"routes without expectations: {set(routes) - covered}"


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_anonymous_and_unknown_callers_are_refused_everywhere(client, world):
    for name, (url, _) in expected(world).items():
        assert client.get("/privacy" + url).status_code == 401, name
        bad = client.get("/privacy" + url, headers={"Authorization": "Bearer forged"})
        assert bad.status_code == 403, name
        nobody = client.get("/privacy" + url, headers={"Authorization": "Bearer nobody"})
        assert nobody.status_code == 403, name


@pytest.mark.parametrize("backend_url", ["sqlite", "postgresql"], indirect=True)
def test_each_role_gets_what_roles_json_allows(client, world):
    for name, (url, answers) in expected(world).items():
        for user, status in answers.items():
            for auth in ({"Authorization": f"Bearer {user}"}, {"Cookie": f"_token={user}"}):
                got = client.get("/privacy" + url, headers=auth)
                assert got.status_code == status, f"{user} {name} ({url}): {got.status_code} {got.text[:200]}"


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_pages_show_counts_and_hide_contact_lists_from_the_auditor(client, world):
    auditor = {"Authorization": "Bearer auditor"}
    page = client.get(f"/privacy/incidents/{world.incident_id}", headers=auditor).text
    assert "letters.csv" not in page and "report.eu_lead_sa.pdf" in page
    assert (
        "letters.csv"
        in client.get(f"/privacy/incidents/{world.incident_id}", headers={"Authorization": "Bearer responder"}).text
    )
    overview = client.get("/privacy/overview", headers=auditor).text
    assert "<svg" in overview and "A Person" not in overview and "<script" not in overview
    dry = client.get(f"/privacy/incidents/{world.incident_id}?run={quote(DRY, safe='')}", headers=auditor).text
    assert "Dear customer" in dry and "dry run" in dry


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_documents_open_inline_or_as_downloads_in_a_sandbox(client, world):
    engineer = {"Authorization": "Bearer engineer"}
    html = client.get("/privacy/documents/open?key=certificates%2Fabc.html", headers=engineer)
    assert html.headers["content-security-policy"].startswith("sandbox") and html.headers[
        "content-disposition"
    ].startswith("inline")
    pdf = client.get(
        "/privacy/documents/open?key=" + quote(world.folder + "report.eu_lead_sa.pdf", safe=""), headers=engineer
    )
    assert pdf.headers["content-type"] == "application/pdf" and pdf.headers["content-disposition"].startswith(
        "attachment"
    )
    for key in ("../state.db", "retention/../../state.db", "%2Fetc%2Fpasswd"):
        assert client.get(f"/privacy/documents/open?key={key}", headers=engineer).status_code == 400, key
    assert client.get("/privacy/documents/open?key=certificates%2Fnone.html", headers=engineer).status_code == 404
    assert client.get("/privacy/documents?kind=..", headers=engineer).status_code == 404


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_the_incident_pages_show_each_runs_notices_sent_owed_uncertain_and_undeliverable(client, world):
    """The approved run was to mail six people: one sent, one left 'sending' by a kill, one refused,
    three never claimed: owed, on the incident's page (per run) and in the list of incidents."""
    from lifecycle.state.claims import Outcome
    from lifecycle.state.incidents import AffectedPerson
    from tests.view.conftest import REAL

    incidents = world.state.incidents
    incidents.replace_subjects(
        REAL, world.incident_id, [AffectedPerson(str(n), True, "email", "DE", "de", batch=0) for n in range(1, 7)]
    )
    claims = incidents.claims(world.incident_id, REAL, 0)
    for subject in ("1", "2", "3"):
        assert claims.claim(subject, f"<m{subject}@mic.example>")
    claims.record([Outcome("1", "sent", 1), Outcome("3", "undeliverable", 1, 550)])
    auditor = {"Authorization": "Bearer auditor"}
    page = client.get(f"/privacy/incidents/{world.incident_id}", headers=auditor).text
    row = page[page.index(f">{REAL}<") :].split("</tr>")[0]
    cells = [c.split(">")[1].split("<")[0] for c in row.split('<td class="n')[1:]]
    assert cells == ["1", "3", "1", "1"], row  # sent, owed, uncertain, undeliverable
    assert "People are owed this incident" in page and "resend_uncertain" in page
    dry_row = page[page.index(f">{DRY}<") :].split("</tr>")[0]
    assert [c.split(">")[1].split("<")[0] for c in dry_row.split('<td class="n')[1:]] == ["0", "0", "0", "0"]
    listing = client.get("/privacy/incidents", headers=auditor).text
    assert '<td class="n late">3</td><td class="n">1</td><td>open</td>' in listing


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_the_public_keys_are_served_to_every_role(client):
    import json

    from lifecycle import reports, signing

    for user in (E, A, R):
        got = client.get("/privacy/public-keys.json", headers={"Authorization": f"Bearer {user}"})
        keys = signing.PublicKeys.load(got.content, "the Privacy view")
        assert got.headers["content-type"].startswith("application/json") and json.loads(got.content)["keys"]
        assert keys.status == {reports.signer(web.sources().config.catalog).key_id: "current"}
