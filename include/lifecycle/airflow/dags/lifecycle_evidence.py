"""
### lifecycle_evidence

The records a supervisory authority or an auditor asks for, for one period, in
one signed **evidence pack**, delivered to the auditors and regulators of
`catalog.yaml: evidence.packs.recipients`. Monthly by default
(`evidence.packs.schedule`); each run packs the calendar month before its
logical date (a run on 2026-12-01 packs 2026-11-01 – 2026-11-30). No clock is
read: the same period and state give the same pack, byte for byte.

1. **build**: under `packs/<from>_<to>/` of `evidence.packs.destination`:
   `index.html`, each record as JSON and HTML (the record of processing, the
   requests and erasures statistics, the breach register, the sharing register,
   the signed batch roots and ledger checkpoints of the period), one PDF of them all,
   `public-keys.json`, `VERIFY.md` and `manifest.json` (every file's SHA-256,
   signed with Ed25519); one `evidence.pack` ledger entry per distinct pack.
2. **verify**: the pack read back and checked as a regulator would, with the
   published public keys: the manifest's signature, every file re-hashed, each
   batch root and checkpoint inside it. A failure names the file.
3. **deliver**: to each recipient once: e-mail with the PDF and the pack as a
   zip (claimed before it is sent: a killed task never mails twice), and/or an
   upload of the folder to its S3 system (a file already there byte for byte
   is not put again). One `evidence.pack_delivery` ledger entry each.
4. **run_complete**: the run's last task; it publishes a ledger checkpoint.

`python -m lifecycle evidence pack --from … --to … [--out DIR]` builds and
checks a pack for any period by hand.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from lifecycle.config import load_config
from lifecycle.runs import dag_settings, run_complete, task_context, terminal_errors

SCHEDULE = load_config().catalog.model.evidence.packs.schedule


def _period(ctx):
    from lifecycle.packs import Period

    return Period.month_before(ctx.run.as_of)


@dag(**dag_settings("lifecycle_evidence", schedule=SCHEDULE, tags=["evidence", "regulators"], doc_md=__doc__))
def lifecycle_evidence():
    @task
    @terminal_errors
    def build() -> dict:
        from lifecycle.packs import build_pack

        ctx = task_context()
        period = _period(ctx)
        return build_pack(ctx.config, ctx.state, period.start, period.end).to_json()

    @task(retries=0)
    @terminal_errors
    def verify(built: dict) -> dict:
        from lifecycle.errors import LifecycleError
        from lifecycle.packs import Period, verify_pack

        checked = verify_pack(task_context().config, Period.parse(built["period"]))
        if not checked.ok:
            raise LifecycleError(f"evidence pack {built['period']} does not verify: " + "; ".join(checked.problems))
        return {"period": built["period"], "key_id": checked.key_id, "checks": len(checked.checks)}

    @task
    @terminal_errors
    def deliver(verified: dict) -> dict:
        from lifecycle.packs import Period, deliver_pack

        ctx = task_context()
        return deliver_pack(ctx.config, ctx.state, Period.parse(verified["period"]), ctx.stores)

    built = build()
    verified = verify(built)
    run_complete(built, verified, deliver(verified))


lifecycle_evidence_dag = lifecycle_evidence()
