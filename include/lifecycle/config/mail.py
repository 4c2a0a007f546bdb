"""The rule across files: mail is configured once (notifications.yaml) for every file that sends notices."""

from __future__ import annotations

from collections.abc import Iterator

from lifecycle.config.cancellation import CANCELLATION
from lifecycle.config.incidents import INCIDENTS, REGULATOR_TEMPLATE
from lifecycle.config.notifications import NOTIFICATIONS
from lifecycle.config.requests import REQUESTS
from lifecycle.errors import Problem
from lifecycle.paths import TEMPLATES

MAIL_KEYS = ("email", "contact", "locales")  # notifications.yaml's; older incidents.yaml files carry them


def check_mail(models: dict, notifications) -> Iterator[Problem]:
    """Mail is configured once (notifications.yaml) for every DAG that writes to people, with
    a template in every locale for every notice that can be sent."""
    incidents, cancellation, requests = models.get(INCIDENTS), models.get(CANCELLATION), models.get(REQUESTS)
    if NOTIFICATIONS in models and incidents is not None:
        for key in MAIL_KEYS:
            if getattr(incidents, key) is not None:
                yield Problem(INCIDENTS, key, f"mail is configured in {NOTIFICATIONS}; remove {key} here")
    notices = _notices(incidents, cancellation, requests)
    if notifications is None:
        for file, key in sorted({(file, key) for file, key, _ in notices}):
            yield Problem(file, key, f"notices need mail settings: add {NOTIFICATIONS} (email: conn_id, from; contact)")
        return
    source = NOTIFICATIONS if NOTIFICATIONS in models else INCIDENTS
    if not notifications.locales:
        yield Problem(source, "locales", "name at least one locale")
    if incidents is not None:
        for i, regulator in enumerate(incidents.regulators):
            if regulator.locale is not None and regulator.locale not in notifications.locales:
                yield Problem(
                    INCIDENTS,
                    f"regulators[{i}].locale",
                    f"{regulator.locale!r} is not one of {source}'s locales ({', '.join(notifications.locales)})",
                )
    for i, locale in enumerate(notifications.locales):
        for file, key, template in notices:
            if not (TEMPLATES / "mail" / f"{template}.{locale}.txt.j2").exists():
                yield Problem(
                    source,
                    f"locales[{i}]",
                    f"{locale!r} has no {template.replace('_', ' ')} template "
                    f"(include/lifecycle/templates/mail/{template}.{locale}.txt.j2{'' if file == INCIDENTS else ', ' + file + ': ' + key}); "
                    "add one or remove the locale",
                )


def _notices(incidents, cancellation, requests) -> list[tuple[str, str, str]]:
    """(file, key, template) of every notice the configuration can send."""
    found = []
    if incidents is not None:
        found.append((INCIDENTS, "email", "incident_notice"))
        mailed = [i for i, r in enumerate(incidents.regulators) if r.contact]
        if mailed:
            found.append((INCIDENTS, f"regulators[{mailed[0]}].contact", REGULATOR_TEMPLATE))
    if cancellation is not None:
        for kind in ("scheduled", "completed"):
            template = getattr(cancellation.notify, kind)
            if template:
                found.append((CANCELLATION, f"notify.{kind}", template))
    if requests is not None:
        for kind, template in requests.notify.model_dump().items():
            if template and (kind != "access_ready" or requests.access is not None):
                found.append((REQUESTS, f"notify.{kind}", template))
    return found
