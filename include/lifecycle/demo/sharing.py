"""What the demo's sharing runs did: deliveries, refusals, manifests and the register export.

A sharing run whose gate refused the delivery fails, by design: the demo
reports it as *refused* (with the rule from the sharing register), not as a
crash, and only when the register holds the refusal of that very run.
"""

from __future__ import annotations

from datetime import date, datetime


def ensure_delivery_buckets(config) -> list[str]:
    """Create the recipients' delivery buckets and the access packages' bucket in the demo's
    S3 endpoint (a real recipient owns its own)."""
    from lifecycle.connections import s3_client
    from lifecycle.demo.media import ensure_versioned_bucket

    made = []
    systems = {r.delivery.system for r in config.recipients.recipients}
    if config.requests is not None and config.requests.access is not None:
        systems.add(config.requests.access.delivery.system)
    for name in sorted(systems):
        system = config.catalog.systems[name]
        ensure_versioned_bucket(s3_client(system.conn_id), system.bucket)
        made.append(system.bucket)
    return made


def refused_by_gate(outcome, state) -> dict | None:
    """The register's refusal entry of a failed ``sharing_*`` run whose gate failed, else None."""
    if not outcome.dag_id.startswith("sharing_") or outcome.state == "success" or outcome.tasks.get("gate") != "failed":
        return None
    entries = _entries(state, outcome.run_id)
    return next((e for e in entries if e["outcome"] == "refused"), None)


def _entries(state, run_id: str) -> list[dict]:
    from lifecycle.sharing.register import SharingRegister

    return [e for e in SharingRegister(state).entries() if e["run_id"] == run_id]


def summary(outcomes, as_of: datetime) -> list[str]:
    """Lines for the demo's closing summary (empty when no sharing DAG ran)."""
    from lifecycle.config import load_config
    from lifecycle.sharing.register import SharingRegister
    from lifecycle.state import StateStore

    runs = [o for o in outcomes if o.dag_id.startswith("sharing_")]
    if not runs:
        return []
    config = load_config()
    state = StateStore.for_catalog(config.catalog)
    lines = ["", "sharing (one entry per recipient and data interval in the sharing register):"]
    example = None
    for outcome in runs:
        entries = _entries(state, outcome.run_id)
        delivered = next((e for e in entries if e["outcome"] == "delivered"), None)
        refused = next((e for e in entries if e["outcome"] == "refused"), None)
        if delivered and outcome.state == "success":
            lines.append(
                f"  delivered  {outcome.dag_id:<30} {delivered['records']:>6} record(s)  manifest {delivered['manifest']} (+ manifest.html)"
            )
            example = example or delivered["manifest"]
        elif refused:
            lines.append(
                f"  refused    {outcome.dag_id:<30} nothing delivered; rule {refused['rule']}: "
                + refused["reason"].split(f"rule {refused['rule']}:", 1)[-1].split(";")[0].strip()
            )
        else:
            lines.append(f"  FAILED     {outcome.dag_id:<30} state {outcome.state} (see the task log)")
    start = date(as_of.year, 1, 1)
    export = SharingRegister(state).export(config.catalog, start, as_of.date())
    lines.append(f"  register export {start} – {as_of.date()} ({export.rows} entries): {export.csv}")
    lines.append(f"                                               {export.html}")
    lines.append("  again for any period:  python -m lifecycle sharing register --from YYYY-MM-DD --to YYYY-MM-DD")
    if example:
        lines.append(f"  check a manifest:      python -m lifecycle manifest verify {example}")
    return lines
