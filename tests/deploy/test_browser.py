"""The incident responder in a real browser: log in, fill the trigger form of
``incident_notification``, trigger a dry run, see it succeed.

Debian's Chromium driven by Playwright (no browser download); the screenshots
are kept under ``$LIFECYCLE_ARTIFACTS`` (default ``var/test-artifacts``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("LIFECYCLE_ARTIFACTS", REPO / "var" / "test-artifacts"))
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (Debian package chromium)")


def test_responder_triggers_a_dry_run_from_the_form(cluster):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    mails_before = _mails(cluster)
    incident_id = "INC-BROWSER-DRILL"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(cluster.api + "/")
            page.fill("input[name=username]", "responder")
            page.fill("input[name=password]", cluster.users["responder"]["password"])
            page.click("input[type=submit]")
            page.wait_for_url(lambda url: "login" not in url, timeout=30_000)

            page.goto(cluster.api + "/dags/incident_notification")
            page.get_by_role("button", name="Trigger").first.click()
            form = page.get_by_role("dialog")
            form.locator("#element_incident_id").fill(incident_id)
            form.locator("#element_title").fill("Browser drill of the trigger form")
            # date pickers: [0] is the logical date; then discovered at, occurred from, occurred to
            for index, day in ((1, "25"), (2, "10"), (3, "20")):
                form.locator("[data-testid=datetime-input]").nth(index).click()
                page.get_by_role("dialog").last.get_by_text(day, exact=True).first.click()
                page.keyboard.press("Escape")
            for field, text in (
                ("cause", "A drill: no data was exposed."),
                ("impact", "None; this run only shows what would be sent."),
                ("measures_taken", "None needed for a drill."),
                ("precautions", "None needed for a drill."),
                ("remedies", "None needed for a drill."),
            ):
                form.locator(f"#element_{field}").fill(text)
            datasets = form.get_by_label("Select one or multiple values").first
            datasets.click()
            datasets.type("access_logs")
            page.keyboard.press("Enter")
            assert form.locator("#element_incident_id").input_value() == incident_id
            page.screenshot(path=str(ARTIFACTS / "incident-trigger-form.png"), full_page=True)
            form.get_by_role("button", name="Trigger").click()

            run_id = _wait_for_run(cluster, incident_id)
            state = cluster.wait({"incident_notification": run_id}, timeout=300)["incident_notification"]
            page.goto(cluster.api + f"/dags/incident_notification/runs/{run_id}")
            page.get_by_text("success").first.wait_for(timeout=30_000)
            page.get_by_text("preflight").first.wait_for(timeout=30_000)  # the responder sees the run's tasks
            page.screenshot(path=str(ARTIFACTS / "incident-dry-run.png"), full_page=True)
        finally:
            browser.close()

    assert state == "success", cluster.task_states("incident_notification", run_id)
    status, run = cluster.call("auditor", "GET", f"/api/v2/dags/incident_notification/dagRuns/{run_id}")
    assert run["conf"]["dry_run"] is True and run["conf"]["affected_datasets"] == ["access_logs"]
    assert _mails(cluster) == mails_before, "a dry run sent mail"


def _wait_for_run(cluster, incident_id: str, timeout: float = 60) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = cluster.call("auditor", "GET", "/api/v2/dags/incident_notification/dagRuns?limit=50")
        mine = [r for r in body.get("dag_runs", []) if r["conf"].get("incident_id") == incident_id]
        if mine:
            return mine[0]["dag_run_id"]
        time.sleep(1)
    raise AssertionError(f"no run of {incident_id} appeared within {timeout:.0f}s of pressing Trigger")


def _mails(cluster) -> int:
    return len(list((cluster.var / "mail").glob("*.eml")))
