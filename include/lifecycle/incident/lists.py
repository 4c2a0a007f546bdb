"""Letter and telephone lists of the people e-mail did not reach: internal work lists (CSV).

Not reached are the run's new people without an e-mail address and those
whose mail was ``undeliverable`` (5xx), stayed ``deferred`` (4xx after every
retry) or is ``uncertain`` (a killed run).  The lists hold names, addresses
and phone numbers; they are written to the reports destination.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from lifecycle.incident.approval import may_send
from lifecycle.incident.documents import csv_bytes
from lifecycle.incident.models import ContactLists

if TYPE_CHECKING:
    from lifecycle.incident.services import Services
    from lifecycle.state import StateStore

UNDELIVERED = ("undeliverable", "deferred", "uncertain")
CSV = "text/csv; charset=utf-8"


def unreached(state: StateStore, run_id: str) -> list[tuple[str, str]]:
    """(subject, why) of the run's new people not reached by e-mail."""
    incidents = state.incidents
    return [(s, "no e-mail address") for s in incidents.not_emailed(run_id)] + [
        (s, f"e-mail {status}") for s, status in incidents.undelivered(run_id, UNDELIVERED)
    ]


def contact_lists(services: Services, run_id: str) -> dict:
    """Write the lists the form's channels ask for; returns their counts and locations.  A run
    that recorded the decision not to notify writes none: nobody is to be contacted."""
    run = services.run(run_id)
    may_send(run)
    if not run.notifies:
        return {"decision": run.form.decision, "files": {}}
    channels = run.form.channels
    people = unreached(services.state, run_id)
    contacts = services.people().contacts([s for s, _ in people], ("name", "address", "phone", "locale", "country"))
    letters, calls, no_contact = [], [], 0
    for subject, why in sorted(people, key=lambda p: (len(p[0]), p[0])):
        person = contacts.get(subject, {})
        address = person.get("address") if "letter" in channels else None
        phone = person.get("phone") if "telephone" in channels else None
        name, locale, country = (person.get(f) or "" for f in ("name", "locale", "country"))
        if address:
            letters.append([subject, name, address, locale, country, why])
        if phone:
            calls.append([subject, name, phone, locale, country, why])
        no_contact += not (address or phone)
    docs, files = services.documents(run), {}
    if "letter" in channels:
        header = ["subject_id", "name", "address", "locale", "country", "why"]
        files["letters"] = docs.write_bytes("letters.csv", csv_bytes(header, letters), CSV)
    if "telephone" in channels:
        header = ["subject_id", "name", "phone", "locale", "country", "why"]
        files["telephone"] = docs.write_bytes("telephone.csv", csv_bytes(header, calls), CSV)
    lists = ContactLists(letters=len(letters), telephone=len(calls), no_contact=no_contact, files=files)
    services.save(run_id, figures=replace(run.figures, lists=lists))
    return lists.to_dict()
