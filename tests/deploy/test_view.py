"""The Privacy view on the distributed Airflow with the FAB auth manager and config/roles.json.

Every route of the view's app, anonymously and as each role, through the real
auth manager; then Chromium (Playwright): each role logs in and opens each
page (screenshots under ``$LIFECYCLE_ARTIFACTS``), the responder reads a dry
run's preview on the Incident page, and approves a real run from Required
Actions after reading the notice rendered in its body.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute

from lifecycle.view import web
from lifecycle.view.incidents import run_folder
from tests.deploy.test_browser import ARTIFACTS, CHROMIUM, FLAGS

INCIDENT = f"INC-VIEW-{datetime.now(UTC):%H%M%S}"  # a second approved initial run of one incident is refused
USERS = ("engineer", "responder", "auditor")


def _form(dry_run: bool) -> dict:
    from lifecycle.demo.incident import form

    return {**form(datetime.now(UTC), dry_run=dry_run), "incident_id": INCIDENT, "title": "Privacy view drill"}


@pytest.fixture(scope="module")
def dry_run(cluster):
    """A dry run of the drill incident (as the responder) and a retention run (as the engineer)."""
    runs = {
        "incident_notification": cluster.trigger("responder", "incident_notification", _form(True)),
        "retention_expiry": cluster.trigger("engineer", "retention_expiry"),
    }
    states = cluster.wait(runs, timeout=300)
    assert states == {"incident_notification": "success", "retention_expiry": "success"}, states
    return runs["incident_notification"]


def _status(cluster, path: str, user: str | None, token: str | None = None) -> int:
    headers = {}
    if user is not None:
        headers["Authorization"] = f"Bearer {cluster.token(user)}"
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(cluster.api + "/privacy" + path, headers=headers)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _expected(cluster, run_id: str, lists_run: str) -> dict[str, tuple[str, dict[str, int]]]:
    reports = cluster.var / "reports"
    retention = sorted(p.relative_to(reports).as_posix() for p in (reports / "retention").rglob("report.html"))[-1]
    folder = run_folder(INCIDENT, run_id)
    letters = run_folder(INCIDENT, lists_run) + "letters.csv"
    assert (reports / letters).exists(), "the approved run wrote no letter list"
    everything = {"engineer": 200, "auditor": 200, "responder": 403}
    everyone = dict.fromkeys(USERS, 200)
    return {
        "/": ("/", {"engineer": 200, "auditor": 200, "responder": 303}),
        "/overview": ("/overview", everything),
        "/documents": ("/documents?kind=retention", everything),
        "/documents/manifests": ("/documents/manifests", everything),
        "/documents/open": (f"/documents/open?key={quote(retention, safe='')}", everything),
        "/documents/open (preview)": (
            f"/documents/open?key={quote(folder + 'preview/email.en.html', safe='')}",
            everyone,
        ),
        "/documents/open (contact list)": (
            f"/documents/open?key={quote(letters, safe='')}",
            {"engineer": 200, "responder": 200, "auditor": 403},
        ),
        "/incidents": ("/incidents", everyone),
        "/incidents/{incident_id}": (f"/incidents/{INCIDENT}?run={quote(run_id, safe='')}", everyone),
        "/coverage": ("/coverage", everything),
        "/evidence": ("/evidence", everything),
        "/public-keys.json": ("/public-keys.json", everyone),
        "/certificates/{batch}/{subject}": (
            "/certificates/2026-06-01:0/" + "ab" * 16,
            {"engineer": 404, "auditor": 404, "responder": 403},
        ),
    }


def _log_in(page, cluster, user: str) -> None:
    page.goto(cluster.api + "/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", cluster.users[user]["password"])
    page.click("input[type=submit]")
    page.wait_for_url(lambda url: "login" not in url, timeout=30_000)


PAGES = {  # page -> (path, who may open it)
    "overview": ("/privacy/overview", {"engineer", "auditor"}),
    "documents": ("/privacy/documents?kind=incidents", {"engineer", "auditor"}),
    "manifests": ("/privacy/documents/manifests", {"engineer", "auditor"}),
    "evidence": ("/privacy/evidence", {"engineer", "auditor"}),
    "incidents": ("/privacy/incidents", set(USERS)),
    "incident": (f"/privacy/incidents/{INCIDENT}", set(USERS)),
}


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (Debian package chromium)")
def test_each_role_opens_the_view_and_the_responder_approves_after_reading_the_notice(cluster, dry_run):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for user in USERS:
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                _log_in(page, cluster, user)
                # the navigation entry, and the view inside the UI
                page.goto(cluster.api + "/plugin/privacy")
                frame = page.frame_locator("iframe").first
                frame.get_by_text("Incidents").first.wait_for(timeout=30_000)
                page.screenshot(path=str(ARTIFACTS / f"privacy-{user}-ui.png"), full_page=True)
                for name, (path, allowed) in PAGES.items():
                    response = page.goto(cluster.api + path)
                    expected = 200 if user in allowed else 403
                    assert response.status == expected, f"{user} opening {name}: HTTP {response.status}"
                    page.screenshot(path=str(ARTIFACTS / f"privacy-{user}-{name}.png"), full_page=True)
                    text = page.inner_text("body")
                    if name == "incident":  # the latest run: the dry run, its preview rendered in a sandbox
                        assert "Privacy view drill" in text and "E-mail (en)" in text
                        page.frame_locator("iframe.preview").first.get_by_text("Dear customer").first.wait_for()
                page.close()

            # the responder: a real run, approved in Required Actions after reading the notice
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            _log_in(page, cluster, "responder")
            page.goto(cluster.api + f"/privacy/incidents/{INCIDENT}?run={quote(dry_run, safe='')}")
            page.frame_locator("iframe.preview").first.get_by_text("Dear customer").first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "privacy-responder-dry-run.png"), full_page=True)
            # a full-page shot leaves frames below the fold blank: the preview on its own
            page.locator("iframe.preview").first.screenshot(
                path=str(ARTIFACTS / "privacy-responder-dry-run-preview.png")
            )
            real = cluster.trigger("responder", "incident_notification", _form(False))
            _wait_for_approval(cluster, real)
            page.goto(
                cluster.api + f"/dags/incident_notification/runs/{quote(real, safe='')}/tasks/approve/required_actions"
            )
            page.get_by_text("The notice in en").first.wait_for(timeout=60_000)
            page.get_by_text("Dear customer").first.wait_for(timeout=10_000)
            assert page.get_by_text("People to notify").count() and page.get_by_text("Public announcement").count()
            page.screenshot(path=str(ARTIFACTS / "privacy-responder-required-action.png"), full_page=True)
            page.get_by_role("button", name="Approve").click()
            state = cluster.wait({"incident_notification": real}, timeout=300)["incident_notification"]
            page.goto(cluster.api + f"/privacy/incidents/{INCIDENT}?run={quote(real, safe='')}")
            page.get_by_text("Delivery").first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "privacy-responder-real-run.png"), full_page=True)
        finally:
            browser.close()
    assert state == "success", cluster.task_states("incident_notification", real)
    tasks = cluster.task_states("incident_notification", real)
    assert tasks["approve[-1]"] == "success" and tasks["send[0]"] == "success", tasks

    # every route of the app, anonymously and as each role, through the FAB auth manager
    expected = _expected(cluster, dry_run, real)
    routes = {r.path for r in web.app.routes if isinstance(r, APIRoute)}
    assert routes == {name.split(" ")[0] for name in expected}, "a route of the view has no expectation here"
    for name, (path, answers) in expected.items():
        assert _status(cluster, path, None) == 401, f"anonymous {name}"
        assert _status(cluster, path, None, token="forged") == 403, f"forged token {name}"
        for user, status in answers.items():
            assert _status(cluster, path, user) == status, f"{user} {name} ({path})"


def _wait_for_approval(cluster, run_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = cluster.task_states("incident_notification", run_id)
        if tasks.get("approve[-1]") == "awaiting_input":
            return
        if any(state in ("failed", "upstream_failed") for state in tasks.values()):
            raise AssertionError(f"the real run {run_id} failed before its approval: {tasks}")
        time.sleep(2)
    raise AssertionError(f"the approval task of {run_id} never waited for an answer")
