"""The people an incident affects, found set-based and classified inside the database.

One DISTINCT query per affected dataset along its join path (objects: one
listing of the static prefix), or an S3 object of ids; then one query per
chunk of ids for how each person can be reached (``email``; only ``phone`` or
``post``; ``none``), country and locale.  Ids and counts leave the stores,
never addresses.  People already notified in an earlier run are kept but
not ``new``.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from lifecycle.errors import LifecycleError, TerminalStoreError
from lifecycle.incident.form import IncidentForm
from lifecycle.incident.models import Scope
from lifecycle.incident.owed import carried
from lifecycle.incident.register import earlier_subjects
from lifecycle.state.incidents import AffectedPerson
from lifecycle.stores.contract import Selection

if TYPE_CHECKING:
    from lifecycle.incident.services import Services

log = logging.getLogger(__name__)


@dataclass
class _Found:
    """The ids an incident's scope names, and the rows behind them."""

    ids: set[str] = field(default_factory=set)
    rows_by_dataset: dict[str, int] = field(default_factory=dict)
    records_by_category: Counter = field(default_factory=Counter)


def resolve(services: Services, run_id: str) -> dict:
    """Store the people affected (ids, reach, country, locale, batch); a rerun returns what is stored."""
    run = services.run(run_id)
    if run.scope:
        return run.scope.summary()
    form = run.form
    found = _listed(services, form.subjects_uri) if form.subjects_uri else _in_window(services, form)
    owed, released = carried(services.state, run)
    earlier = earlier_subjects(services.state, form.incident_id, run_id)
    people = _people(services, found.ids | owed | released, earlier, owed | released)
    services.state.incidents.replace_subjects(run_id, form.incident_id, people)  # a crash before the scope: again
    scope = _scope(form, found, people, services.incidents.batch_size, carried=(len(owed), len(released)))
    services.save(run_id, scope=scope)
    services.record(
        "resolved", {k: v for k, v in scope.to_dict().items() if k != "datasets"} | {"incident": form.incident_id}, run
    )
    log.info(
        "incident %s: %d affected, %d new, %d owed by earlier runs, %d in doubt released, reach %s",
        form.incident_id,
        scope.affected,
        scope.new,
        scope.owed,
        scope.released,
        scope.reach,
    )
    return scope.summary()


def affected_datasets(services: Services, form: IncidentForm) -> list[str]:
    catalog = services.catalog
    chosen = catalog.resolve(list(form.affected_categories), list(form.affected_datasets))
    return [d for d in chosen if catalog.dataset(d).personal and catalog.dataset(d).created]


def _categories(services: Services, form: IncidentForm, dataset: str) -> list[str]:
    """The dataset's categories the incident involves: all of them when the dataset was named."""
    catalog = services.catalog
    found = catalog.categories_of(dataset)
    if dataset in form.affected_datasets or not form.affected_categories:
        return sorted(found)
    return sorted(c for c in found if any(catalog.is_within(c, a) for a in form.affected_categories))


def _in_window(services: Services, form: IncidentForm) -> _Found:
    """Distinct subject ids with a row (or object) created in [occurred_from, occurred_to], per dataset."""
    found = _Found()
    window = Selection(created_within=(form.occurred_from, form.occurred_to))
    for dataset in affected_datasets(services, form):
        store = services.stores.of(dataset)
        with store.snapshot():
            found.ids |= set(store.count_by_subject(dataset, window))
            rows = store.count(dataset, window)
        found.rows_by_dataset[dataset] = rows
        for category in _categories(services, form, dataset):
            found.records_by_category[category] += rows
    return found


def _listed(services: Services, uri: str) -> _Found:
    """The ids in an S3 object of one subject id per line (``#`` comments, CSV's first column)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    systems = [name for name, s in services.catalog.systems.items() if s.type == "s3" and s.bucket == bucket]
    if not systems:
        known = sorted(s.bucket for s in services.catalog.systems.values() if s.bucket)
        raise LifecycleError(
            f"subjects_uri: bucket {bucket!r} is not a system in catalog.yaml (known: {', '.join(known)})"
        )
    try:
        data = services.stores(systems[0]).get_bytes(key)
    except TerminalStoreError as exc:
        raise LifecycleError(f"subjects_uri: cannot read {uri}: {exc.reason}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LifecycleError(f"subjects_uri: {uri} is not UTF-8 text (one subject id per line)") from None
    lines = (line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return _Found(ids={line.split(",")[0].strip() for line in lines})


def _people(services: Services, ids: set[str], earlier: set[str], owed: set[str]) -> list[AffectedPerson]:
    """Each id the people's dataset holds, with how they can be reached, numbered into send
    batches: the new, and those earlier runs still owe a notice (``owed``)."""
    people = [
        AffectedPerson(
            subject_id=subject,
            new=subject not in earlier,
            reach="email" if email else "phone" if phone else "post" if address else "none",
            country=country,
            locale=locale,
            owed=subject in owed and subject in earlier,
        )
        for subject, email, phone, address, country, locale in services.people().reach(sorted(ids))
    ]
    people.sort(key=lambda p: (len(p.subject_id), p.subject_id))
    size, mailed = services.incidents.batch_size, itertools.count()
    return [replace(p, batch=next(mailed) // size) if p.mailable else p for p in people]


def _scope(
    form: IncidentForm, found: _Found, people: list[AffectedPerson], batch_size: int, *, carried: tuple[int, int]
) -> Scope:
    """The run's counts: ``affected`` are the people its scope found; those carried from
    earlier runs (``owed``, ``released``) are counted apart."""
    new = [p for p in people if p.new]
    mailable = sum(p.mailable for p in people)
    affected = [p for p in people if p.subject_id in found.ids]
    return Scope(
        affected=len(affected),
        new=len(new),
        already_notified=len(affected) - len(new),
        owed=carried[0],
        released=carried[1],
        unknown_ids=len(found.ids - {p.subject_id for p in people}),
        datasets=found.rows_by_dataset,
        records_by_category=dict(found.records_by_category),
        categories=tuple(sorted(set(form.affected_categories) | set(found.records_by_category))),
        reach=dict(Counter(p.reach for p in new)),
        by_country=dict(Counter(p.country or "unknown" for p in new)),
        by_locale=dict(Counter(p.locale or "unknown" for p in new)),
        batches=-(-mailable // batch_size),
    )
