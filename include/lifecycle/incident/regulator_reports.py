"""Each told regulator's report (HTML, PDF, JSON), with the delivery figures, and its ledger entry.

"Notified" is the run's logical time, so a rerun writes the same report; a
missed deadline prints the form's ``delay_reasons``.  The report names how it
reaches the regulator (``report_delivery`` sends it next).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from lifecycle.clock import iso_utc
from lifecycle.evidence import incident_event
from lifecycle.incident import documents
from lifecycle.incident.approval import may_send
from lifecycle.incident.finish import delivery_figures
from lifecycle.incident.report_delivery import channels, configured

if TYPE_CHECKING:
    from lifecycle.incident.services import Services


def regulator_reports(services: Services, run_id: str) -> dict:
    run = services.run(run_id)
    may_send(run)
    final = run.obligations.announcement
    delivery = {**delivery_figures(services, run), "announcement": final.to_dict() if final else None}
    docs, written = services.documents(run), {}
    for regulator in run.obligations.matched:
        how = channels(configured(services, regulator.id))
        report = documents.regulator_report(
            services.catalog, services.mail, run, regulator, delivery, draft=False, channels=how
        )
        about = {
            "incident": run.incident_id,
            "regulator": regulator.id,
            "deadline": iso_utc(regulator.deadline),
            "follow_up": run.phase == "update",
        }
        written[regulator.id] = docs.report(
            f"report.{regulator.id}",
            report,
            kind="incident.report",
            run_id=run_id,
            key=incident_event(run.incident_id, run_id, "report", regulator.id),
            about=about,
        )
    services.save(run_id, figures=replace(run.figures, reports=written))
    return {"reports": {regulator: locations["pdf"] for regulator, locations in written.items()}}
