"""sharing_<recipient> end to end through Airflow on the seeded demo world."""

import json

import sqlalchemy as sa

from tests.airflow.conftest import AirflowWorld, dag_runs
from tests.support.s3 import moto_client

DAGS = ("sharing_push_provider", "sharing_expo_marketing", "sharing_dd_acquirer")


def test_demo_recipients_are_delivered_or_refused_registered_and_verifiable(airflow_world: AirflowWorld):
    result = airflow_world.run_dags(*DAGS)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    assert "sharing_push_provider: success" in out and "sharing_expo_marketing: success" in out
    assert (
        "sharing_dd_acquirer: failed" in out
        and "refused by the sharing gate, as configured: sharing_dd_acquirer" in out
    )
    assert "rule agreement_in_force: agreement NDA-2025-LANTERN expired on 2025-08-31" in out
    assert "register export" in out
    runs = {r["dag_id"]: r for r in dag_runs(out)}
    assert runs["sharing_push_provider"]["run_complete"] == runs["sharing_expo_marketing"]["run_complete"] == "success"
    assert (
        runs["sharing_dd_acquirer"]["gate"] == "failed"
        and runs["sharing_dd_acquirer"]["run_complete"] == "upstream_failed"
    )

    state = sa.create_engine(f"sqlite:///{airflow_world.var / 'state.db'}")
    app = sa.create_engine(f"sqlite:///{airflow_world.var / 'app.db'}")
    with state.connect() as conn:
        entries = {r.recipient_id: r for r in conn.execute(sa.text("SELECT * FROM lifecycle_sharing_register"))}
    assert {k: v.outcome for k, v in entries.items()} == {
        "push_provider": "delivered",
        "expo_marketing": "delivered",
        "dd_acquirer": "refused",
    }
    assert entries["dd_acquirer"].manifest is None and entries["dd_acquirer"].records == 0

    s3 = moto_client(f"http://127.0.0.1:{airflow_world.env['LIFECYCLE_S3_PORT']}")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mic-partner-drop").get("Contents", [])]
    assert not [k for k in keys if k.startswith("due-diligence/")], "nothing delivered to the refused recipient"
    assert "expo/2026-11-26/users.jsonl" in keys and "expo/2026-11-26/manifest.html" in keys
    invited = [
        json.loads(line)
        for line in s3.get_object(Bucket="mic-partner-drop", Key="expo/2026-11-26/users.jsonl")["Body"]
        .read()
        .decode()
        .splitlines()
    ]
    assert invited and all(set(r) == {"_subject", "name", "email", "company", "country"} for r in invited)
    with app.connect() as conn:
        consenting = conn.execute(
            sa.text(
                "SELECT count(DISTINCT user_id) FROM consents WHERE purpose = 'expo_2026' AND granted_at <= '2026-11-26' "
                "AND (withdrawn_at IS NULL OR withdrawn_at > '2026-11-26')"
            )
        ).scalar()
        emails = [e for (e,) in conn.execute(sa.text("SELECT email FROM users WHERE email IS NOT NULL"))]
    assert 0 < len(invited) <= consenting
    assert not [e for e in emails if e in out], "no personal information in what the run prints (XCom, summary)"

    verify = airflow_world.run("-m", "lifecycle", "manifest", "verify", "push/2026-11-26/manifest.json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    state.dispose()
    app.dispose()
