"""The demo's sample incident: a dry run, then the approved run, and what to look at.

``python -m lifecycle.demo run`` runs ``incident_notification`` twice (the
trigger form below, first with ``dry_run`` on, then off, an hour later) unless
``--conf`` gives a form of its own.  The sample names the demo's datasets,
so it lives here, not in the engine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

DAG_ID = "incident_notification"


def form(as_of: datetime, *, dry_run: bool) -> dict:
    """A leak of two weeks of access logs, discovered two hours before the run."""
    as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    return {
        "incident_id": f"INC-{as_of:%Y%m%d}-DEMO",
        "title": "Access log export exposed",
        "discovered_at": (as_of - timedelta(hours=2)).isoformat(),
        "occurred_from": (as_of - timedelta(days=21)).isoformat(),
        "occurred_to": (as_of - timedelta(days=7)).isoformat(),
        "cause": "A misconfigured export job copied access logs to a storage bucket that could be read from the internet.",
        "affected_datasets": ["access_logs"],
        "affected_categories": [],
        "impact": "Someone could learn which pages of the app you used, when, and from which IP address.",
        "measures_taken": "We closed the bucket, deleted the copies, rotated the export credentials and asked an external firm to review our storage settings.",
        "precautions": "Be careful with e-mails or calls that mention your recent activity on MIC, and never share your password.",
        "remedies": "We will review any suspicious activity on your account on request, free of charge.",
        "channels": ["email", "letter", "telephone", "announcement"],
        "phase": "initial",
        "dry_run": dry_run,
    }


def runs(dag_ids: list[str], as_of: datetime, conf: str | None) -> Iterator[tuple[str, datetime, dict | None]]:
    """(dag id, logical date, conf) of each run ``demo run`` makes."""
    given = _conf(conf)
    for dag_id in dag_ids:
        if dag_id != DAG_ID or given is not None:
            yield dag_id, as_of, given
        else:
            yield dag_id, as_of, form(as_of, dry_run=True)
            yield dag_id, as_of + timedelta(hours=1), form(as_of, dry_run=False)


def _conf(text: str | None) -> dict | None:
    if not text:
        return None
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    return json.loads(text)


def prepare(config, client_for) -> None:
    """Create the announcement bucket (demo only: in production it is the public site's)."""
    from lifecycle.demo.media import ensure_versioned_bucket

    if config.incidents and config.incidents.announcement:
        system = config.catalog.systems[config.incidents.announcement.system]
        ensure_versioned_bucket(client_for(system.conn_id), system.bucket)


def summary(outcomes) -> list[str]:
    """What an incident responder looks at after the runs."""
    lines = []
    for outcome in outcomes:
        result = outcome.returned.get("finish") if outcome.dag_id == DAG_ID else None
        if not result:
            continue
        reports = os.environ.get("LIFECYCLE_VAR_DIR", "var") + "/reports"
        lines += [
            f"\nincident {result['incident_id']} ({result['phase']}, {result['outcome']}):",
            f"  affected {result['affected']}, newly notified {result['newly_notified']}; e-mails sent {result['emails_sent']}, "
            f"undeliverable {result['undeliverable']}, deferred {result['deferred']}; letters {result['letters']}, "
            f"telephone {result['telephone']}, no contact {result['no_contact']}",
            f"  carried from earlier runs (owed) {result.get('carried_owed', 0)}; still owed by this run "
            f"{result.get('owed', 0)}, by the incident {result.get('owed_in_incident', 0)}; uncertain "
            f"{result.get('uncertain', 0)}",
            f"  regulators: {', '.join(result['regulators']) or 'none'}",
            *(
                [f"  decision:     not to notify: {result['decision_reason']}"]
                if result.get("decision") == "not_notify"
                else []
            ),
            f"  documents:    {reports}/{result['folder']}/"
            + (" (preview/ only: dry run)" if result["outcome"] == "dry run" else ""),
        ]
        if result["outcome"] != "dry run":
            lines += [
                f"  mails:        {os.environ.get('LIFECYCLE_MAIL_DIR', 'var/mail')}/",
                f"  announcement: {result['announcement'] or 'not published'}",
            ]
            lines += [
                f"  report:       {reports}/{result['folder']}/report.{r}.pdf (and .html, .json)"
                for r in result["regulators"]
            ]
            lines += [
                f"  delivered:    {r} by {', '.join(f'{c} ({s})' for c, s in d['channels'].items())} at {d['at']}, "
                f"deadline {d['deadline']}{' (late)' if d['late'] else ''}"
                for r, d in result.get("reports_delivered", {}).items()
            ]
    return lines
