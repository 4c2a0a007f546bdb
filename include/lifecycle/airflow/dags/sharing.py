"""
### sharing_&lt;recipient&gt;

One DAG per recipient in `config/lifecycle/recipients.yaml`: a delivery to a
third party happens only under its recorded legal basis and an agreement in
force, with only the fields the agreement covers. Time comes from the run's
data interval (its end is "the run's date"); every key derives from it, so a
rerun of the same interval finds the same delivery: a task killed mid-way
and cleared (or retried) uploads nothing twice (an extract's file is
ledgered once uploaded; a signed manifest for the same files is kept).

1. **gate**, before anything is read: the agreement exists and
   `signed` ≤ the run's date ≤ `expires`; the legal basis fits the role; every
   shared field is in the catalog, of a category that may be shared and that
   the agreement covers; consent is configured where it is the basis. A refusal
   fails the run naming recipient, rule and field, delivers nothing, and is
   recorded in the sharing register.
2. **preflight**: the tables this recipient receives from match the catalog.
3. **extract_&lt;dataset&gt;** (pool `lifecycle_<system>`): the listed fields
   only, streamed from a server-side cursor to the recipient's S3 location
   (multipart past one part, server-side encryption requested). Subjects
   without consent in force (when the basis is consent) and subjects with an
   open cancellation are left out; `_subject` is a per-recipient keyed hash
   when `pseudonymize_subject`.
4. **manifest**: `manifest.json` (signed, HMAC-SHA256 under the key in the
   Airflow connection `recipients.yaml: signing.conn_id`) and
   `manifest.html` next to the data: recipient, basis, purpose, agreement,
   categories and fields, counts, each file's key, size and SHA-256.
   `python -m lifecycle manifest verify <key>` checks it.
5. **register**: one entry per recipient and data interval in the sharing
   register (`python -m lifecycle sharing register --from … --to …` exports it).
6. **run_complete**: the run's last task, after every step above: it is
   *upstream_failed*, and the run **failed**, when any step failed (a refusal
   by the gate, a failed preflight or extract), so a run that could not
   deliver never ends green.

Tasks pass keys, hashes and counts only; no personal information in XCom or logs.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from lifecycle.config import load_config
from lifecycle.lineage import asset
from lifecycle.runs import dag_settings, run_complete, task_context, terminal_errors

CONFIG = load_config()


def _sharing(recipient_id: str):
    """The recipient's sharing service for the running task, its data interval and run."""
    from lifecycle.sharing.service import Interval, Sharing

    ctx = task_context()
    return Sharing.of(ctx, recipient_id), Interval.of(ctx.run), ctx.run


def build(recipient):
    about = (
        f"\n\n**Recipient**: {recipient.name} ({recipient.role}, {recipient.legal_basis}): {recipient.purpose}. "
        f"**Shares**: "
        + "; ".join(f"{d}: {', '.join(cols)}" for d, cols in recipient.share.items())
        + f". **Delivers to**: `{recipient.delivery.system}` `{recipient.delivery.prefix}` ({recipient.delivery.format})."
    )

    @dag(
        **dag_settings(
            f"sharing_{recipient.id}",
            schedule=recipient.schedule,
            tags=["sharing", recipient.role, recipient.legal_basis],
            doc_md=__doc__ + about,
        )
    )
    def sharing():
        @task
        @terminal_errors
        def gate() -> dict:
            service, interval, run = _sharing(recipient.id)
            return service.gate(interval, dag_id=run.dag_id, run_id=run.run_id)

        @task
        @terminal_errors
        def preflight() -> dict:
            from lifecycle.health import schema_matches

            service, _, _ = _sharing(recipient.id)
            return schema_matches(service.config, service.source_datasets(), deleting=False)

        def extractor(dataset: str):
            @task(
                task_id=f"extract_{dataset}",
                pool=f"lifecycle_{CONFIG.catalog.dataset(dataset).system}",
                inlets=[asset(CONFIG.catalog, dataset)],
            )
            @terminal_errors
            def extract() -> dict:
                service, interval, _ = _sharing(recipient.id)
                return service.extract(dataset, interval)

            return extract()

        @task
        @terminal_errors
        def manifest(files: list[dict]) -> dict:
            service, interval, run = _sharing(recipient.id)
            return service.manifest(interval, files, dag_id=run.dag_id, run_id=run.run_id)

        @task
        @terminal_errors
        def register(written: dict) -> dict:
            service, interval, run = _sharing(recipient.id)
            return service.record_delivery(interval, written, dag_id=run.dag_id, run_id=run.run_id)

        allowed, checked = gate(), preflight()
        allowed >> checked
        files = []
        for dataset in recipient.share:
            extracted = extractor(dataset)
            checked >> extracted
            files.append(extracted)
        written = manifest(files)
        registered = register(written)
        run_complete(allowed, checked, files, written, registered)

    return sharing()


for _recipient in CONFIG.recipients.recipients:
    globals()[f"sharing_{_recipient.id}"] = build(_recipient)
