"""The public announcement: the fallback decided again with the mails' outcomes, and the notice if it fires.

At ``obligations`` the fallback is decided from reach (for the preview);
here the people whose mail was undeliverable, deferred or uncertain count as
unreachable too.  The notice is published when the rule fires or the form
chose the announcement, unless the run recorded the decision not to notify:
then nothing is published, and the ledger says whether the rule would have fired.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from lifecycle.errors import LifecycleError
from lifecycle.incident import documents
from lifecycle.incident.approval import may_send
from lifecycle.incident.lists import unreached
from lifecycle.incident.models import Published, Run
from lifecycle.incident.obligations import fallback

if TYPE_CHECKING:
    from lifecycle.incident.services import Services


def announce(services: Services, run_id: str) -> dict:
    """Decide the fallback finally and, when it fires or was chosen, publish the notice."""
    run = services.run(run_id)
    may_send(run)
    form, obligations = run.form, run.obligations
    delivered = services.state.incidents.delivery_counts(run_id)
    decision = fallback(
        services.incidents.fallback,
        obligations.affected_total,
        len(unreached(services.state, run_id)),
        run.scope.new,
        "announcement" in form.channels,
    )
    if not run.notifies:
        withheld = f"decision not_notify: no public announcement ({form.decision_reason})"
        decision = replace(decision, publish=False, reasons=(*decision.reasons, withheld))
    published = _publish(services, run) if decision.publish else None
    final = decision.announced(published, delivered)
    services.save(run_id, obligations=replace(obligations, announcement=final))
    services.record(
        "announcement",
        {
            "incident": form.incident_id,
            "fires": final.fires,
            "published": published.location if published else None,
            "reasons": list(final.reasons),
        },
        run,
    )
    return {"fires": final.fires, "published": published.url if published else None}


def _publish(services: Services, run: Run) -> Published:
    target = services.incidents.announcement
    if target is None:
        raise LifecycleError("the announcement must be published, but incidents.yaml has no announcement {system, key}")
    key = target.key.format(incident_id=run.incident_id)
    store = services.stores(target.system)
    html = documents.announcement(services.catalog, services.mail, run)
    store.put_bytes(key, html.encode("utf-8"), content_type="text/html; charset=utf-8")
    endpoint = getattr(getattr(store.client, "meta", None), "endpoint_url", None)
    url = f"{endpoint.rstrip('/')}/{store.bucket}/{key}" if endpoint else f"s3://{store.bucket}/{key}"
    return Published(system=target.system, location=f"s3://{store.bucket}/{key}", url=url)
