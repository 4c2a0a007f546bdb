"""Documents of an incident: the notice's text, the announcement, regulator reports, contact lists.

Everything is rendered by the one renderer (``lifecycle.reports``) and
written through the ``ReportSink``; a PDF is made from the same HTML as the
HTML report (xhtml2pdf, with reportlab's CID font for Chinese text).
Reports and the announcement are built from counts and the responder's
facts only: nothing about a person goes into them.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lifecycle import reports
from lifecycle.clock import iso_utc

if TYPE_CHECKING:
    from lifecycle.catalog import Catalog
    from lifecycle.config.notifications import NotificationsFile
    from lifecycle.incident.form import IncidentForm
    from lifecycle.incident.models import RegulatorDecision, Run, Scope

NOTICE_TEMPLATE = "incident_notice"  # include/lifecycle/templates/mail/incident_notice.<locale>.{txt,html}.j2
PDF_FONT = "STSong-Light"  # reportlab's built-in CID font: Chinese glyphs (used when a report has CJK text)

# The legal items each report answers, in the order regulators read them.
LEGAL_ITEMS = [
    (
        "nature",
        "GDPR art. 33(3)(a); PIPL art. 57(1)",
        "Nature of the breach: what happened, categories and approximate numbers of people and records",
    ),
    (
        "contact",
        "GDPR art. 33(3)(b); PIPL art. 57(4)",
        "Name and contact details of the data protection officer or other contact point",
    ),
    ("consequences", "GDPR art. 33(3)(c); PIPL art. 57(1)", "Likely consequences (possible harm)"),
    (
        "measures",
        "GDPR art. 33(3)(d); PIPL art. 57(2)",
        "Measures taken or proposed, including to mitigate adverse effects",
    ),
    ("individuals", "PIPL art. 57(3); GDPR art. 34(2)", "What individuals can do to reduce harm, and remedies offered"),
    (
        "timeline",
        "GDPR art. 33(1); PRC incident reporting measures",
        "Timeline: occurred, discovered, notified, deadline, and reasons for any delay",
    ),
]


@functools.cache
def _register_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    pdfmetrics.registerFont(UnicodeCIDFont(PDF_FONT))


def pdf(html: str) -> bytes:
    """The PDF of an HTML document (the same template as the HTML report)."""
    from xhtml2pdf import pisa

    _register_font()
    out = io.BytesIO()
    result = pisa.CreatePDF(html, dest=out, encoding="utf-8")
    if result.err:
        raise RuntimeError(f"PDF rendering failed with {result.err} error(s)")
    return out.getvalue()


def csv_bytes(header: list[str], rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


class Documents:
    """Writes an incident run's documents under ``incidents/<id>/<run>/``."""

    def __init__(self, catalog, incident_id: str, run_id: str, ledger=None):
        self.sink, self.writer = reports.ReportSink(catalog), reports.ReportWriter(catalog, ledger)
        self.folder = f"incidents/{reports.safe_name(incident_id)}/{reports.safe_name(run_id)}"

    def write_text(self, name: str, text: str, content_type: str) -> str:
        return self.sink.write(f"{self.folder}/{name}", text.encode("utf-8"), content_type=content_type).location

    def write_bytes(self, name: str, data: bytes, content_type: str) -> str:
        return self.sink.write(f"{self.folder}/{name}", data, content_type=content_type).location

    def read(self, name: str) -> bytes:
        """A document of the run as the reports destination holds it (what a regulator is sent)."""
        return self.sink.read(f"{self.folder}/{name}")

    def report(self, name: str, document: dict, **evidence) -> dict[str, str]:
        """HTML, PDF (same template) and JSON of one regulator report; ``evidence`` (``kind``,
        ``run_id``, ``key``, ``about``): the ledger entry of a final report."""
        for_pdf = reports.render("incident_report.html.j2", report=document, items=LEGAL_ITEMS, pdf_font="Helvetica")
        if any(c >= "\u2e80" for c in for_pdf):  # CJK text: the CID font has the glyphs (its Latin is cramped)
            for_pdf = reports.render("incident_report.html.j2", report=document, items=LEGAL_ITEMS, pdf_font=PDF_FONT)
        written = self.writer.write(
            f"{self.folder}/{name}",
            document,
            template="incident_report.html.j2",
            pdf=pdf(for_pdf),
            items=LEGAL_ITEMS,
            pdf_font=None,
            **evidence,
        )
        return {"html": written.html.location, "pdf": written.pdf.location, "json": written.json.location}


def contact(mail: NotificationsFile, form: IncidentForm) -> dict:
    """Whom people and regulators may ask: the form's contact, else the configured officer."""
    if form.contact:
        return {"name": form.contact["name"], "email": form.contact["email"], "phone": form.contact.get("phone")}
    return {"name": mail.contact.name, "email": mail.contact.email, "phone": mail.contact.phone}


def category_titles(catalog: Catalog, categories) -> list[str]:
    model = catalog.model.categories
    return [model[c].title or c.replace("_", " ") if c in model else c for c in categories]


def notice_context(catalog: Catalog, mail: NotificationsFile, form: IncidentForm, scope: Scope) -> dict:
    """What the notice, the announcement and the previews say, shared by every person and language."""
    return {
        "incident": form.facts(),
        "incident_id": form.incident_id,
        "title": form.title,
        "follow_up": form.phase == "update",
        "discovered_on": form.discovered_at.date().isoformat(),
        "occurred_from": form.occurred_from.date().isoformat() if form.occurred_from else None,
        "occurred_to": form.occurred_to.date().isoformat() if form.occurred_to else None,
        "categories": category_titles(catalog, scope.categories),
        "contact": contact(mail, form),
    }


def announcement(catalog: Catalog, mail: NotificationsFile, run: Run) -> str:
    """The public notice: one section per configured locale."""
    return reports.render(
        "incident_announcement.html.j2",
        locales=mail.locales,
        affected=run.obligations.affected_total,
        **notice_context(catalog, mail, run.form, run.scope),
    )


def regulator_report(
    catalog: Catalog,
    mail: NotificationsFile,
    run: Run,
    regulator: RegulatorDecision,
    delivery: dict | None,
    draft: bool,
    channels: Sequence[str] = (),
) -> dict:
    """One regulator's report: the legal items from the facts, counts and decisions; nobody's details.
    ``channels``: how the report reaches the regulator (e-mail to its contact, upload to its system),
    at the run's logical time, the "notified" of the timeline."""
    form, scope, obligations = run.form, run.scope, run.obligations
    notified_at = iso_utc(run.as_of)
    met = run.as_of <= regulator.deadline
    titles = category_titles(catalog, scope.categories)
    return {
        "report": "personal information security incident report",
        "draft": draft,
        "follow_up": form.phase == "update",
        "phase": form.phase,
        "regulator": {"id": regulator.id, "name": regulator.name, "contact": regulator.contact},
        "why_told": list(regulator.reasons),
        "incident": {
            "id": form.incident_id,
            "title": form.title,
            "cause": form.cause,
            "impact": form.impact,
            "measures_taken": form.measures_taken,
            "precautions": form.precautions,
            "remedies": form.remedies,
        },
        "contact": contact(mail, form),
        "timeline": {
            "occurred_from": iso_utc(form.occurred_from) if form.occurred_from else None,
            "occurred_to": iso_utc(form.occurred_to) if form.occurred_to else None,
            "discovered_at": iso_utc(form.discovered_at),
            "notified_at": notified_at,
            "deadline": iso_utc(regulator.deadline),
            "deadline_after_discovery": regulator.deadline_after_discovery,
            "deadline_met": met,
            "delay_reasons": None if met else (form.delay_reasons or "not given"),
            "delivered_by": list(channels),
        },
        "scope": {
            "people_affected_this_report": scope.affected,
            "people_newly_notified": scope.new,
            "people_owed_by_earlier_runs": scope.owed,  # told now: an earlier run was interrupted
            "people_affected_total": obligations.affected_total,
            "by_country": scope.by_country,
            "records_by_category": {t: scope.records_by_category.get(c, 0) for c, t in zip(scope.categories, titles)},
            "categories": titles,
        },
        "channels": list(form.channels),
        "announcement": obligations.fallback.to_dict(),
        "delivery": delivery or "not sent yet",
        **_withheld(form),
    }


def _withheld(form: IncidentForm) -> dict:
    """A report of a run that recorded the decision not to notify says so, with the reason (GDPR art. 34(3))."""
    if form.notifies:
        return {}
    return {"people_notice": {"decision": form.decision, "reason": form.decision_reason}}
