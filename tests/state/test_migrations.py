"""Migration 6: erasure notices and incident deliveries become rows of one claim table.
Migration 7: the regulator deliveries, with the reports approved runs wrote before it."""

import json

import sqlalchemy as sa

from lifecycle.state import schema
from lifecycle.state.claims import Claims

NOW = "2026-12-01T00:00:00+00:00"


def _up_to(engine, last: int):
    schema.schema_versions.create(engine, checkfirst=True)
    with engine.begin() as conn:
        for version, step in schema.MIGRATIONS[:last]:
            step(conn, NOW)
            conn.execute(schema.schema_versions.insert().values(version=version, applied_at=NOW))


def test_rows_of_both_old_tables_move_to_the_claim_table_and_the_old_tables_go(engine):
    _up_to(engine, 5)
    with engine.begin() as conn:
        conn.execute(
            schema.notices.insert(),
            [
                {
                    "template": "cancellation_completed",
                    "subject_id": "7",
                    "scope": "run#0",
                    "status": "sent",
                    "locale": "de",
                    "message_id": "<m7@x>",
                    "claimed_at": "t1",
                    "updated_at": "t2",
                    "ledger_hash": "ab" * 32,
                },
                {
                    "template": "cancellation_scheduled",
                    "subject_id": "7",
                    "scope": "run",
                    "status": "sending",
                    "locale": None,
                    "message_id": "<s7@x>",
                    "ledger_hash": None,
                    "claimed_at": "t1",
                    "updated_at": "t1",
                },
            ],
        )
        conn.execute(
            schema.incident_deliveries.insert(),
            [
                {
                    "incident_id": "INC-1",
                    "subject_id": "7",
                    "run_id": "manual__1",
                    "batch": 0,
                    "status": "undeliverable",
                    "code": 550,
                    "attempts": 1,
                    "message_id": "<i7@x>",
                },
            ],
        )
    assert schema.migrate(engine, now=NOW)[0] == 6
    names = set(sa.inspect(engine).get_table_names())
    assert "lifecycle_deliveries" in names
    assert not {"lifecycle_notices", "lifecycle_incident_deliveries"} & names
    with engine.connect() as conn:
        rows = {(r.notice, r.subject_id): r for r in conn.execute(sa.select(schema.deliveries))}
    assert set(rows) == {
        ("notice:cancellation_completed", "7"),
        ("notice:cancellation_scheduled", "7"),
        ("incident:INC-1", "7"),
    }
    done = rows[("notice:cancellation_completed", "7")]
    assert (done.status, done.locale, done.message_id, done.ledger_hash) == ("sent", "de", "<m7@x>", "ab" * 32)
    refused = rows[("incident:INC-1", "7")]
    assert (refused.scope, refused.batch, refused.code, refused.attempts) == ("manual__1", 0, 550, 1)
    assert refused.claimed_at == NOW, "incident rows had no claim time: the migration's"
    assert not Claims(engine, "incident:INC-1", "manual__2").claim("7", "<again@x>"), "still claimed once"
    assert schema.migrate(engine, now=NOW) == [], "applied once"


def _run(run_id: str, *, dry_run=False, approval=None, reports=("eu",)) -> dict:
    obligations = {"regulators": [{"id": "eu", "deadline": "2026-11-15T08:00:00+00:00"}]}
    return {
        "run_id": run_id,
        "incident_id": "INC-1",
        "phase": "initial",
        "dry_run": dry_run,
        "as_of": NOW,
        "facts": "{}",
        "obligations": json.dumps(obligations),
        "approval": json.dumps(approval) if approval else None,
        "figures": json.dumps({"reports": {r: {"pdf": f"r/report.{r}.pdf"} for r in reports}}),
        "created_at": NOW,
        "updated_at": NOW,
    }


def test_reports_approved_runs_wrote_before_deliveries_were_recorded_are_not_taken_for_owed_ones(engine):
    _up_to(engine, 6)
    approved = {"decision": "approved", "by": None, "how": "test"}
    with engine.begin() as conn:
        conn.execute(
            schema.incident_runs.insert(),
            [
                _run("approved", approval=approved),
                _run("dry", dry_run=True),
                _run("rejected", approval={"decision": "rejected", "by": None, "how": "test"}),
            ],
        )
    assert schema.migrate(engine, now=NOW)[0] == 7
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.regulator_deliveries)).all()
    assert [(r.run_id, r.regulator_id, r.channel, r.status, r.deadline) for r in rows] == [
        ("approved", "eu", "register", "before_delivery", "2026-11-15T08:00:00+00:00")
    ]
