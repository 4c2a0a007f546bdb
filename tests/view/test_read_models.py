"""The view's read models over a state store on every backend and a reports folder."""

from __future__ import annotations

from datetime import timedelta

from lifecycle.view import approval, documents, incidents, overview
from tests.view.conftest import DRY, NOW, REAL


def test_overview_counts_cancellations_holds_retention_recipients_and_the_ledger(world):
    o = overview.build_overview(world.config, world.state, world.sink, now=NOW)
    c = o.cancellations
    assert c.by_state == {"done": 1, "due": 1, "pending": 1, "withdrawn": 1}
    assert (c.open, c.overdue) == (2, 1)  # subject 1 was requested 40 days ago; complete_within is 30d
    assert c.oldest_due == (NOW - timedelta(days=40) + timedelta(days=30)).isoformat()
    assert (o.holds.active, o.holds.soonest_end) == (2, (NOW + timedelta(days=9)).date().isoformat())
    r = o.retention
    assert (r.last_run, r.history) == (
        "scheduled__2026-12-01",
        [("2026-11-30T02:00:00+00:00", 6), ("2026-12-01T02:00:00+00:00", 8)],
    )
    row = r.rows[0]
    assert (row.dataset, row.removed, row.held, row.kept, row.locked) == ("access_logs", 8, 2, 2, 0)
    assert r.next_run == "2026-12-03T02:00:00+00:00"  # retention.yaml: 0 2 * * *
    assert {x.id for x in o.recipients} == {x.id for x in world.config.recipients.recipients}
    assert o.ledger.entries == world.state.ledger.head()[0] >= 2  # the two holds were ledgered
    assert [i.incident_id for i in o.incidents] == [world.incident_id]  # a deadline still ahead
    assert o.queue[-1] == ("2026-12-02", 2)  # seen three days ago: 1, 2 and 4; 4 done yesterday


def test_recipient_agreements_warn_within_30_days_and_expire(world):
    expiring = world.config.recipients.recipients[0]
    ends = expiring.agreement.expires
    for today, status in (
        (ends - timedelta(days=31), "ok"),
        (ends - timedelta(days=30), "warning"),
        (ends + timedelta(days=1), "expired"),
    ):
        assert overview._recipient(expiring, world.state, today).status == status


def test_requests_register_counts_when_present(world):
    from lifecycle.state.requests import SubjectRequest

    world.state.requests.receive(
        SubjectRequest(
            request_id="q1",
            kind="access",
            subject_id="1",
            source="form",
            categories=(),
            purpose=None,
            state="received",
            reason=None,
            received_at=(NOW - timedelta(days=8)).isoformat(),
            due_at=(NOW - timedelta(hours=1)).isoformat(),
            run_id=None,
            plan=None,
            result=None,
            completed_at=None,
            updated_at=NOW.isoformat(),
        )
    )
    o = overview.build_overview(world.config, world.state, world.sink, now=NOW)
    assert (o.requests.by_state, o.requests.open, o.requests.overdue) == ({"received": 1}, 1, 1)


def test_incident_summary_and_run_view(world):
    (summary,) = incidents.incident_summaries(world.state, NOW)
    assert (summary.runs, summary.latest_run, summary.decision, summary.letters, summary.telephone) == (
        2,
        REAL,
        "approved",
        1,
        2,
    )
    assert summary.deadlines[0].seconds_left > 0 and summary.open
    view = incidents.run_view(world.state, world.sink, world.incident_id, DRY, ["en", "zh-CN"], NOW)
    assert view.run.dry_run and set(view.previews) == {"E-mail (en)", "Announcement"}
    assert view.previews["E-mail (en)"].endswith("preview/email.en.html")
    assert incidents.run_view(world.state, world.sink, "INC-OTHER", DRY, ["en"], NOW) is None
    real = incidents.run_view(world.state, world.sink, world.incident_id, REAL, ["en"], NOW)
    assert {k.rsplit("/", 1)[-1] for k in real.documents} >= {"letters.csv", "telephone.csv"}


def test_approval_body_has_counts_deadlines_announcement_and_the_english_notice(world):
    body = approval.render_body(world.state, world.sink, DRY, ["en", "zh-CN"], base="/base")
    assert "**People to notify**: 20" in body and "e-mail 17 · telephone 2" in body
    assert "Lead SA: by" in body and "72h from discovery" in body
    assert "**Public announcement**: does not fire (below 500000 affected)" in body
    assert "> Dear customer," in body and "{'" not in body  # the notice, not dicts
    assert "(/base/privacy/incidents/" in body
    assert "not in the incident register" in approval.render_body(world.state, world.sink, "nope", ["en"])


def test_documents_by_kind_leave_contact_lists_out_unless_allowed(world):
    def names(allowed: bool) -> set[str]:
        listed = documents.folders(world.sink, "incidents", contact_lists=allowed)
        return {key.rsplit("/", 1)[-1] for folder in listed for key in folder.keys}

    assert "letters.csv" in names(True) and not {"letters.csv", "telephone.csv"} & names(False)
    (newest, older) = documents.folders(world.sink, "retention", contact_lists=False)
    assert newest.folder.startswith("retention/2026-12-01") and older.folder.startswith("retention/2026-11-30")
