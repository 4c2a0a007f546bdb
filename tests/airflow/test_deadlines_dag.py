"""lifecycle_deadlines end to end through Airflow on the seeded demo world: the demo's lapsed due-diligence
agreement is past its date, so the run mails the privacy contact once and ends failed."""

from tests.airflow.conftest import AirflowWorld, dag_runs

AS_OF = "2026-11-25"  # the run's logical date decides


def test_a_past_deadline_mails_the_contact_once_and_fails_the_run(airflow_world: AirflowWorld):
    mails_before = airflow_world.mail.count
    result = airflow_world.run_dags("lifecycle_deadlines", as_of=AS_OF)
    out = result.stdout
    assert result.returncode == 0, (
        "the demo counts findings as attention, not as a crash:\n" + out + result.stderr[-3000:]
    )
    [run] = dag_runs(out)
    assert run["run"] == "failed" and run["check"] == run["notify_contact"] == "success", out
    assert run["deadlines_kept"] == "failed" and run["run_complete"] == "upstream_failed", out
    assert "agreements past: dd_acquirer" in out and "deadlines as of 2026-11-25T00:00:00+00:00" in out, out
    mails = airflow_world.mail.messages[mails_before:]
    assert [m.envelope_to for m in mails] == [["privacy@mic.example"]], "one summary per run, to the contact"
    assert mails[0]["Subject"].startswith("Privacy deadlines:") and "dd_acquirer" in mails[0].text
    assert "@" not in mails[0].text, "counts and ids only"
    log = (airflow_world.var / "log" / "demo-run.log").read_text(errors="replace")
    assert "agreements past: dd_acquirer (2025-08-31)" in log, "the failed task names the ids"
