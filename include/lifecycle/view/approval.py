"""The approval you can read: the Markdown body of ``incident_notification``'s ``approve`` task.

Rendered when the task starts (a plugin macro: ``macros.privacy_view.approval_body(ti)``)
from the incident register and the preview the run wrote: the counts, each
regulator's deadline, whether the public announcement fires, and the English
notice as people will get it (their name in place of "customer"), with a link
to the Incident page for the other languages.  Counts only: nobody is named.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from lifecycle.view.incidents import run_folder

INCIDENT_PAGE = "/privacy/incidents/{incident}?run={run}"


def approval_body(ti) -> str:
    """The body for the task instance ``ti`` of an incident run (in the worker, at render time)."""
    from lifecycle.config import load_config
    from lifecycle.reports import ReportSink
    from lifecycle.state import StateStore

    config = load_config()
    state = StateStore.for_catalog(config.catalog)
    locales = list(config.notifications.locales) if config.notifications else ["en"]
    return render_body(state, ReportSink(config.catalog), ti.run_id, locales, base=_base_path())


def _base_path() -> str:
    try:
        from urllib.parse import urlsplit

        from airflow.configuration import conf

        return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    except Exception:
        return ""


def _hours(later: datetime, earlier: datetime) -> str:
    hours = (later - earlier).total_seconds() / 3600
    return f"{hours:.0f} h after the run's time" if hours >= 0 else f"{-hours:.0f} h before the run's time (missed)"


def render_body(state, sink, run_id: str, locales: list[str], *, base: str = "") -> str:
    from lifecycle.incident.models import Run

    row = state.incidents.run(run_id)
    if row is None:
        return "This run is not in the incident register: reject it."
    run = Run.from_row(row)
    form, scope, duty = run.form, run.scope, run.obligations
    page = base + INCIDENT_PAGE.format(incident=quote(run.incident_id, safe=""), run=quote(run_id, safe=""))
    lines = [
        _ask(run),
        "",
        f"*{form.title}*: phase {run.phase}, discovered {form.discovered_at.isoformat()[:16].replace('T', ' ')} UTC.",
        "",
    ]
    if scope is not None:
        reach = scope.reach
        lines += [
            f"- **People to notify**: {scope.new:,} (affected {scope.affected:,}, already notified "
            f"{scope.already_notified:,})",
            f"- **Reached by**: e-mail {reach.get('email', 0):,} · telephone {reach.get('phone', 0):,} · "
            f"letter {reach.get('post', 0):,} · no contact {reach.get('none', 0):,}",
        ]
        if scope.owed or scope.released:
            lines.append(
                f"- **Also told now**: {scope.owed:,} an interrupted earlier run never reached; "
                f"{scope.released:,} uncertain released ({form.resend_reason or 'no reason'})"
            )
    if duty is not None:
        told = duty.matched
        if told:
            for r in told:
                lines.append(
                    f"- **Regulator**: {r.name}: by {r.deadline.isoformat()[:16].replace('T', ' ')} UTC "
                    f"({_hours(r.deadline, run.as_of)}; {r.deadline_after_discovery} from discovery)"
                )
        else:
            lines.append("- **Regulators**: none of the configured regulators must be told")
        fallback = duty.fallback
        verdict = "fires" if fallback.fires else ("chosen" if fallback.publish else "does not fire")
        lines.append(f"- **Public announcement**: {verdict} ({'; '.join(fallback.reasons) or 'no rule met'})")
    notice = _notice(sink, run.incident_id, run_id, locales)
    lines += ["", f"**The notice in {notice[0]}**, as each person gets it (with their name):", ""]
    # a quote, line by line (two trailing spaces: a hard line break), headings in bold
    quoted = [f"> **{t}**  " if t.isupper() else f"> {t}  " if t else ">" for t in notice[1].splitlines()]
    lines += quoted or ["> (no preview written)"]
    lines += [
        "",
        f"Other languages, the announcement and the regulators' reports: [Incident page]({page})",
        "",
        "Reject, or no answer in time, ends the run with nothing sent.",
    ]
    return "\n".join(lines)


def _ask(run) -> str:
    """What approving does: send the notices, or record the decision not to notify (with its reason)."""
    if run.notifies:
        return f"**Approve to send the notices of incident {run.incident_id} now.**"
    return (
        f"**Approve the decision not to notify the people affected by incident {run.incident_id}**: "
        f"{run.form.decision_reason}. No notice, contact list or announcement goes out; a regulator whose "
        "conditions hold still gets its report (below)."
    )


def _notice(sink, incident_id: str, run_id: str, locales: list[str]) -> tuple[str, str]:
    """``(locale, text)`` of the preview e-mail in English (else the first language)."""
    ordered = sorted(locales, key=lambda loc: (not loc.startswith("en"), locales.index(loc)))
    folder = run_folder(incident_id, run_id)
    for locale in ordered:
        try:
            return locale, sink.read(f"{folder}preview/email.{locale}.txt").decode("utf-8", "replace")
        except (OSError, LookupError):
            continue
        except Exception:  # S3: no such key
            continue
    return (ordered[0] if ordered else "en"), ""
