"""lifecycle_evidence end to end through Airflow on the seeded demo world: the run of 2026-12-01
packs November, checks the pack with the published keys and mails it to the demo's auditor and
regulator; a second run for the same month mails nobody again."""

import json

from tests.airflow.conftest import AirflowWorld, dag_runs

PACK = "evidence/packs/2026-11-01_2026-11-30"
TO = {"audit@auditor.example", "packs@cac.regulator.example"}


def test_a_monthly_run_builds_verifies_and_delivers_the_pack_once(airflow_world: AirflowWorld):
    mails_before = airflow_world.mail.count
    result = airflow_world.run_dags("lifecycle_evidence", as_of="2026-12-01")
    out = result.stdout
    [run] = dag_runs(out)
    assert run["run"] == "success", out + result.stderr[-3000:]
    assert run["build"] == run["verify"] == run["deliver"] == run["run_complete"] == "success", out
    pack = airflow_world.var / PACK
    manifest = json.loads((pack / "manifest.json").read_text())
    assert manifest["period"] == {"from": "2026-11-01", "to": "2026-11-30"}
    mails = airflow_world.mail.messages[mails_before:]
    assert {m.envelope_to[0] for m in mails} == TO and len(mails) == 2, "each recipient once"
    names = sorted(part.get_filename() for part in mails[0].iter_attachments())
    assert names == ["evidence-pack-2026-11-01_2026-11-30.pdf", "evidence-pack-2026-11-01_2026-11-30.zip"]
    verified = airflow_world.run("-m", "lifecycle", "evidence", "verify", str(pack))
    assert verified.returncode == 0 and "result: OK" in verified.stdout, verified.stdout + verified.stderr[-2000:]

    again = airflow_world.run_dags("lifecycle_evidence", as_of="2026-12-02")
    [rerun] = dag_runs(again.stdout)
    assert rerun["run"] == "success", again.stdout
    assert airflow_world.mail.count == mails_before + 2, "a second run of the month mails nobody again"
