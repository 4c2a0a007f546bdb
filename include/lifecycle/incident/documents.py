"""Documents of an incident: previews, the announcement, regulator reports, contact lists.

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

from lifecycle import reports

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


def safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


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

    def __init__(self, catalog, incident_id: str, run_id: str):
        self.sink = reports.ReportSink(catalog)
        self.folder = f"incidents/{safe(incident_id)}/{safe(run_id)}"

    def write_text(self, name: str, text: str, content_type: str) -> str:
        return self.sink.write(f"{self.folder}/{name}", text.encode("utf-8"), content_type=content_type).location

    def write_bytes(self, name: str, data: bytes, content_type: str) -> str:
        return self.sink.write(f"{self.folder}/{name}", data, content_type=content_type).location

    def report(self, name: str, document: dict) -> dict[str, str]:
        """HTML, PDF (same template) and JSON of one regulator report."""
        html = reports.render("incident_report.html.j2", report=document, items=LEGAL_ITEMS, pdf_font=None)
        for_pdf = reports.render("incident_report.html.j2", report=document, items=LEGAL_ITEMS, pdf_font="Helvetica")
        if any(c >= "\u2e80" for c in for_pdf):  # CJK text: the CID font has the glyphs (its Latin is cramped)
            for_pdf = reports.render("incident_report.html.j2", report=document, items=LEGAL_ITEMS, pdf_font=PDF_FONT)
        return {
            "html": self.write_text(f"{name}.html", html, "text/html; charset=utf-8"),
            "pdf": self.write_bytes(f"{name}.pdf", pdf(for_pdf), "application/pdf"),
            "json": self.write_bytes(f"{name}.json", reports.canonical(document), "application/json"),
        }
