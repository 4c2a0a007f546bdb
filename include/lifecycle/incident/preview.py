"""The preview: one e-mail per locale, the announcement and each told regulator's report, as drafts.

A dry run ends here; the responder reads these before triggering again (or
approving).  The e-mail is rendered without a name ("Dear customer").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lifecycle.incident import documents
from lifecycle.incident.models import Figures
from lifecycle.incident.report_delivery import channels, configured
from lifecycle.mail import render_notice

if TYPE_CHECKING:
    from lifecycle.incident.services import Services


def preview(services: Services, run_id: str) -> dict:
    run = services.run(run_id)
    mail, catalog = services.mail, services.catalog
    docs = services.documents(run)
    context = documents.notice_context(catalog, mail, run.form, run.scope)
    written = {}
    for locale in mail.locales:
        notice = render_notice(documents.NOTICE_TEMPLATE, locale, mail.locales[0], name=None, **context)
        written[f"email.{locale}.txt"] = docs.write_text(
            f"preview/email.{locale}.txt", f"Subject: {notice.subject}\n\n{notice.text}", "text/plain; charset=utf-8"
        )
        if notice.html:
            written[f"email.{locale}.html"] = docs.write_text(
                f"preview/email.{locale}.html", notice.html, "text/html; charset=utf-8"
            )
    written["announcement.html"] = docs.write_text(
        "preview/announcement.html", documents.announcement(catalog, mail, run), "text/html; charset=utf-8"
    )
    for regulator in run.obligations.matched:
        how = channels(configured(services, regulator.id))
        report = documents.regulator_report(catalog, mail, run, regulator, None, draft=True, channels=how)
        for kind, location in docs.report(f"preview/report.{regulator.id}", report).items():
            written[f"report.{regulator.id}.{kind}"] = location
    services.save(run_id, figures=Figures(preview=written))
    return {"documents": len(written), "folder": docs.folder + "/preview", "dry_run": run.form.dry_run}
