"""Rules that span keys or files: references, subject links, statutory floors.

Each check yields ``Problem``s naming the file and key path; ``load_config``
collects them all before refusing the configuration.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from lifecycle import anonymize
from lifecycle.catalog import Catalog, LinkError
from lifecycle.config.models import AppliesTo, CatalogFile, Dataset, FieldSpec
from lifecycle.config.recipients import DELIVERY_PLACEHOLDERS, static_refusals
from lifecycle.durations import Duration
from lifecycle.errors import Problem

CATALOG, RETENTION, CANCELLATION, RECIPIENTS, INCIDENTS, NOTIFICATIONS, REQUESTS, DEADLINES = (
    "catalog.yaml",
    "retention.yaml",
    "cancellation.yaml",
    "recipients.yaml",
    "incidents.yaml",
    "notifications.yaml",
    "requests.yaml",
    "deadlines.yaml",
)
LONGEST_PRESIGNED_LINK = Duration.parse("7d")  # S3's limit for a link signed with SigV4
REGULATOR_TEMPLATE = "regulator_report"  # the cover e-mail of a regulator's report
MAIL_KEYS = ("email", "contact", "locales")
TABLE_SYSTEMS = (
    "sql",
    "iceberg",
    "delta",
)  # systems a table dataset may live in  # notifications.yaml's; older incidents.yaml files carry them


def _system(catalog: Catalog, file: str, path: str, name: str, kind: str | tuple[str, ...]) -> Iterator[Problem]:
    system = catalog.systems.get(name)
    kinds = (kind,) if isinstance(kind, str) else kind
    if system is None:
        yield Problem(file, path, f"unknown system {name!r}; the catalog has {', '.join(sorted(catalog.systems))}")
    elif system.type not in kinds:
        needed = f"{'an' if kinds[0] == 's3' else 'a'} {kinds[0]} system"
        if len(kinds) > 1:
            needed += f" (or {' or '.join(kinds[1:])})"
        yield Problem(file, path, f"system {name!r} is of type {system.type}, this needs {needed}")


def _purge_within(catalog: Catalog, file: str, key: str, promise: Duration) -> Iterator[Problem]:
    """A lake system's ``purge_after`` fits within a promise it serves: an erasure is complete
    only once the files still holding the rows are gone."""
    for name, system in catalog.systems.items():
        purge = getattr(system, "purge_after", None)
        if purge is not None and promise.surely_shorter_than(purge):
            yield Problem(
                CATALOG,
                f"systems.{name}.purge_after",
                f"{purge} is longer than {file} {key} ({promise}): the deleted rows would outlive the promise; "
                f"set purge_after to {promise} or less",
            )


def _category(catalog: Catalog, file: str, path: str, name: str | None) -> Iterator[Problem]:
    if name is not None and name not in catalog.model.categories:
        yield Problem(file, path, f"unknown category {name!r}; defined: {', '.join(sorted(catalog.model.categories))}")


def check_catalog(catalog: Catalog) -> Iterator[Problem]:
    """catalog.yaml on its own: the state and reports systems, category parents, the subject, each dataset."""
    model: CatalogFile = catalog.model
    yield from _system(catalog, CATALOG, "state", model.state, "sql")
    if model.reports.system:
        yield from _system(catalog, CATALOG, "reports.system", model.reports.system, "s3")
    for name in model.categories:
        yield from _category_parent(catalog, name)
    yield from _subject_dataset(model)
    for name, ds in model.datasets.items():
        yield from _dataset(catalog, name, ds)


def _category_parent(catalog: Catalog, name: str) -> Iterator[Problem]:
    """A category's parent is defined, and following parents never leads back to it."""
    categories = catalog.model.categories
    yield from _category(catalog, CATALOG, f"categories.{name}.parent", categories[name].parent)
    lineage, current = [name], categories[name].parent
    while current in categories:
        if current in lineage:
            yield Problem(
                CATALOG,
                f"categories.{name}.parent",
                f"category parents form a cycle: {' -> '.join(lineage + [current])}",
            )
            break
        lineage.append(current)
        current = categories[current].parent


def _subject_dataset(model: CatalogFile) -> Iterator[Problem]:
    subject = model.subject
    if subject.dataset not in model.datasets:
        yield Problem(CATALOG, "subject.dataset", f"unknown dataset {subject.dataset!r}")
    elif not model.datasets[subject.dataset].is_table:
        yield Problem(CATALOG, "subject.dataset", f"the subject dataset {subject.dataset!r} must be a table")


def _dataset(catalog: Catalog, name: str, ds: Dataset) -> Iterator[Problem]:
    """One dataset: its system and category, its fields, then how a person's rows or objects are found."""
    where = f"datasets.{name}"
    yield from _system(catalog, CATALOG, f"{where}.system", ds.system, TABLE_SYSTEMS if ds.is_table else "s3")
    yield from _category(catalog, CATALOG, f"{where}.category", ds.category)
    if not ds.personal and (ds.category or any(f.personal for f in ds.fields.values())):
        yield Problem(
            CATALOG,
            where,
            "personal: false, yet it has a category or personal fields; mark those fields personal: false",
        )
    for column, spec in ds.fields.items():
        yield from _field(catalog, ds, f"{where}.fields.{column}", spec)
    if ds.is_table:
        yield from _subject_chain(catalog, name, ds)
    else:
        yield from _object_dataset(catalog, where, ds)
    if ds.inventory is not None:
        if ds.is_table:
            yield Problem(CATALOG, f"{where}.inventory", "only an object dataset (prefix) has an S3 Inventory")
        yield from _system(catalog, CATALOG, f"{where}.inventory.system", ds.inventory.system, "s3")
        if ds.inventory.prefix and not ds.inventory.prefix.endswith("/"):
            yield Problem(
                CATALOG,
                f"{where}.inventory.prefix",
                f"{ds.inventory.prefix!r} must end with '/': <destination prefix>/<source bucket>/<configuration id>/",
            )


def _field(catalog: Catalog, ds: Dataset, fpath: str, spec: FieldSpec) -> Iterator[Problem]:
    """A field's category (its own or the dataset's, if personal) and its anonymize strategy."""
    yield from _category(catalog, CATALOG, f"{fpath}.category", spec.category)
    if ds.personal and spec.personal and not (spec.category or ds.category):
        yield Problem(
            CATALOG,
            f"{fpath}.category",
            "personal field without a category, and the dataset has no whole-row category",
        )
    if spec.anonymize:
        apath = f"{fpath}.anonymize"
        if spec.anonymize.strategy not in anonymize.STRATEGIES:
            yield Problem(
                CATALOG,
                apath,
                f"unknown strategy {spec.anonymize.strategy!r}; valid: {', '.join(anonymize.STRATEGIES)}",
            )
        else:
            for message in anonymize.option_problems(spec.anonymize):
                yield Problem(CATALOG, apath, message)
        if not ds.is_table:
            yield Problem(CATALOG, apath, "objects in S3 cannot be anonymized field by field; use delete")


def _subject_chain(catalog: Catalog, name: str, ds: Dataset) -> Iterator[Problem]:
    """A personal table other than the subject's links to the subject; a SQL table within its own
    system, so a person's rows can be found with one SQL join."""
    model = catalog.model
    if not ds.personal or name == model.subject.dataset:
        return
    where = f"datasets.{name}"
    try:
        hops = catalog.path_to_subject(name)
    except LinkError as exc:
        hops = ()
        yield Problem(CATALOG, f"{where}.subject", f"does not reach the subject: {exc}")
    if ds.system in model.systems and model.systems[ds.system].type == "sql":  # a lake table resolves hop by hop
        apart = sorted({h.target for h in hops if model.datasets[h.target].system != ds.system})
        if apart:
            yield Problem(
                CATALOG,
                f"{where}.subject",
                f"the chain to the subject crosses into another system ({', '.join(apart)}); a chain must stay in {ds.system!r} so it can be joined in SQL",
            )


def _object_dataset(catalog: Catalog, where: str, ds: Dataset) -> Iterator[Problem]:
    """An object dataset finds its person through ``{subject}`` in the prefix, and is dated by last_modified."""
    placeholders = catalog.prefix_fields(ds.prefix)
    if placeholders - {"subject"}:
        yield Problem(
            CATALOG,
            f"{where}.prefix",
            f"unknown placeholder(s) {sorted(placeholders - {'subject'})}; only {{subject}} is allowed",
        )
    if ds.personal and "subject" not in placeholders:
        yield Problem(
            CATALOG,
            f"{where}.prefix",
            "a personal object dataset needs {subject} in its prefix, so a person's objects can be found",
        )
    if ds.subject:
        yield Problem(
            CATALOG,
            f"{where}.subject",
            "an object dataset reaches its person through {subject} in the prefix, not a subject link",
        )
    if ds.created not in (None, "last_modified"):
        yield Problem(CATALOG, f"{where}.created", f"{ds.created!r}: objects are dated by last_modified only")


def _keyed(catalog: Catalog, file: str, path: str, name: str) -> Iterator[Problem]:
    """A table the engine deletes from or reads in key order needs its one key column."""
    ds = catalog.datasets.get(name)
    if ds is not None and ds.is_table and not ds.primary_key:
        yield Problem(
            file,
            path,
            f"dataset {name!r} has no primary_key in catalog.yaml; the engine works in ranges "
            "of one unique column: name it as primary_key",
        )


def _applies_to(catalog: Catalog, file: str, path: str, applies: AppliesTo) -> Iterator[Problem]:
    for i, category in enumerate(applies.categories):
        yield from _category(catalog, file, f"{path}.categories[{i}]", category)
    for i, dataset in enumerate(applies.datasets):
        if dataset not in catalog.datasets:
            yield Problem(file, f"{path}.datasets[{i}]", f"unknown dataset {dataset!r}")


def _anonymizable(catalog: Catalog, file: str, path: str, targets: dict) -> Iterator[Problem]:
    for name, fields in targets.items():
        if not catalog.dataset(name).is_table:
            yield Problem(file, path, f"anonymize cannot apply to object dataset {name!r}; objects are deleted")
            continue
        for field in fields:
            if field.spec.anonymize is None:
                yield Problem(
                    file,
                    path,
                    f"anonymize applies to {name!r}, but its personal field {field.column!r} has no anonymize strategy in catalog.yaml",
                )


def check_retention(catalog: Catalog, retention) -> Iterator[Problem]:
    for kind, items in (("rules", retention.rules), ("statutory", retention.statutory)):
        for name, count in Counter(item.name for item in items).items():
            if count > 1:
                yield Problem(RETENTION, kind, f"name {name!r} is used {count} times; names must be unique")
    floors = []
    for i, floor in enumerate(retention.statutory):
        yield from _applies_to(catalog, RETENTION, f"statutory[{i}].applies_to", floor.applies_to)
        floors.append((floor, set(catalog.resolve(floor.applies_to.categories, floor.applies_to.datasets))))
    owner: dict[str, tuple[int, str]] = {}
    for i, rule in enumerate(retention.rules):
        path = f"rules[{i}]"
        yield from _applies_to(catalog, RETENTION, f"{path}.applies_to", rule.applies_to)
        targets = catalog.rule_targets(rule.applies_to.categories, rule.applies_to.datasets, rule.action)
        datasets = list(targets)
        if not datasets:
            yield Problem(RETENTION, f"{path}.applies_to", f"rule {rule.name!r} applies to no dataset")
        for name in datasets:
            if name in owner:
                yield Problem(
                    RETENTION,
                    f"{path}.applies_to",
                    f"dataset {name!r} is already covered by rules[{owner[name][0]}] ({owner[name][1]}); a dataset may have one retention rule",
                )
            owner.setdefault(name, (i, rule.name))
            if not catalog.dataset(name).created and catalog.dataset(name).is_table:
                yield Problem(
                    RETENTION,
                    f"{path}.applies_to",
                    f"dataset {name!r} has no created column in catalog.yaml, so its age is unknown",
                )
            yield from _keyed(catalog, RETENTION, f"{path}.applies_to", name)
        for floor, covered in floors:
            hit = sorted(covered.intersection(datasets))
            if hit and rule.keep.surely_shorter_than(floor.minimum):
                yield Problem(
                    RETENTION,
                    f"{path}.keep",
                    f"{rule.keep} is shorter than the statutory minimum {floor.minimum} ({', '.join(hit)}: {floor.basis})",
                )
        if rule.action == "anonymize":
            yield from _anonymizable(catalog, RETENTION, f"{path}.action", targets)


def check_cancellation(catalog: Catalog, cancellation) -> Iterator[Problem]:
    requests = cancellation.requests
    if requests.dataset not in catalog.datasets:
        yield Problem(CANCELLATION, "requests.dataset", f"unknown dataset {requests.dataset!r}")
    elif not catalog.dataset(requests.dataset).is_table:
        yield Problem(CANCELLATION, "requests.dataset", f"{requests.dataset!r} must be a table dataset")
    else:
        yield from _keyed(catalog, CANCELLATION, "requests.dataset", requests.dataset)
    if not cancellation.grace_period.surely_shorter_than(cancellation.complete_within):
        yield Problem(
            CANCELLATION,
            "complete_within",
            f"{cancellation.complete_within} leaves no time after the grace period {cancellation.grace_period}",
        )
    yield from _purge_within(catalog, CANCELLATION, "complete_within", cancellation.complete_within)
    for i, override in enumerate(cancellation.overrides):
        yield from _applies_to(catalog, CANCELLATION, f"overrides[{i}].applies_to", override.applies_to)
        if override.action == "anonymize":
            targets = catalog.rule_targets(override.applies_to.categories, override.applies_to.datasets, "anonymize")
            yield from _anonymizable(catalog, CANCELLATION, f"overrides[{i}].action", targets)


def check_requests(catalog: Catalog, requests) -> Iterator[Problem]:
    yield from _purge_within(catalog, REQUESTS, "respond_within", requests.respond_within)
    if requests.intake is not None:
        table = requests.intake.requests
        path = "intake.requests"
        if table.dataset not in catalog.datasets:
            yield Problem(REQUESTS, f"{path}.dataset", f"unknown dataset {table.dataset!r}")
        elif not catalog.dataset(table.dataset).is_table:
            yield Problem(REQUESTS, f"{path}.dataset", f"{table.dataset!r} must be a table dataset")
        else:
            known = set(catalog.dataset(table.dataset).fields) | catalog.structural_columns(table.dataset)
            for key in ("id", "subject", "kind", "requested_at", "categories", "purpose"):
                column = getattr(table, key)
                if column is not None and column not in known:
                    yield Problem(
                        REQUESTS,
                        f"{path}.{key}",
                        f"{column!r} is not a column of dataset {table.dataset!r} in catalog.yaml",
                    )
    if requests.access is not None:
        delivery = requests.access.delivery
        yield from _system(catalog, REQUESTS, "access.delivery.system", delivery.system, "s3")
        placeholders = catalog.prefix_fields(delivery.prefix)
        if "request_id" not in placeholders or placeholders - {"request_id", "subject"}:
            yield Problem(
                REQUESTS,
                "access.delivery.prefix",
                f"{delivery.prefix!r} must hold {{request_id}} (one folder per request) and no placeholder but {{subject}}",
            )
        if delivery.encryption == "aws:kms" and not delivery.kms_key_id:
            yield Problem(REQUESTS, "access.delivery.kms_key_id", "aws:kms encryption needs kms_key_id")
        if LONGEST_PRESIGNED_LINK.surely_shorter_than(requests.access.link_expires):
            yield Problem(
                REQUESTS,
                "access.link_expires",
                f"{requests.access.link_expires} is longer than a presigned S3 link can live (7d)",
            )


def check_recipients(catalog: Catalog, recipients) -> Iterator[Problem]:
    for name, count in Counter(r.id for r in recipients.recipients).items():
        if count > 1:
            yield Problem(RECIPIENTS, "recipients", f"id {name!r} is used {count} times; ids must be unique")
    for i, recipient in enumerate(recipients.recipients):
        path = f"recipients[{i}]"
        yield from _system(catalog, RECIPIENTS, f"{path}.delivery.system", recipient.delivery.system, "s3")
        for refusal in static_refusals(recipient, catalog):
            yield Problem(RECIPIENTS, f"{path}.{refusal.key}", refusal.reason)
        placeholders = catalog.prefix_fields(recipient.delivery.prefix)
        if placeholders - DELIVERY_PLACEHOLDERS:
            yield Problem(
                RECIPIENTS,
                f"{path}.delivery.prefix",
                f"unknown placeholder(s) {sorted(placeholders - DELIVERY_PLACEHOLDERS)}; "
                f"allowed: {', '.join('{' + p + '}' for p in sorted(DELIVERY_PLACEHOLDERS))}",
            )
        elif not placeholders:
            yield Problem(
                RECIPIENTS,
                f"{path}.delivery.prefix",
                "needs {ds} or {start}/{end}, so each data interval has keys of its own",
            )


def check_incidents(catalog: Catalog, incidents) -> Iterator[Problem]:
    if incidents.announcement:
        yield from _system(catalog, INCIDENTS, "announcement.system", incidents.announcement.system, "s3")
    for name, count in Counter(r.id for r in incidents.regulators).items():
        if count > 1:
            yield Problem(INCIDENTS, "regulators", f"id {name!r} is used {count} times; ids must be unique")
    for i, regulator in enumerate(incidents.regulators):
        for j, category in enumerate(regulator.when.categories):
            yield from _category(catalog, INCIDENTS, f"regulators[{i}].when.categories[{j}]", category)
        if regulator.contact is None and regulator.delivery is None:
            yield Problem(
                INCIDENTS,
                f"regulators[{i}]",
                f"regulator {regulator.id!r} has neither contact (an e-mail address) nor delivery "
                "{system, prefix}: its report could not reach it; give one or both",
            )
        if regulator.delivery is not None:
            yield from _system(catalog, INCIDENTS, f"regulators[{i}].delivery.system", regulator.delivery.system, "s3")


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
    from lifecycle.reports import TEMPLATES

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
                    f"(include/templates/mail/{template}.{locale}.txt.j2{'' if file == INCIDENTS else ', ' + file + ': ' + key}); "
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


def check_deadlines(models: dict, notifications) -> Iterator[Problem]:
    """A deadlines.yaml that asks for the summary mail needs the mail settings."""
    deadlines = models.get(DEADLINES)
    if deadlines is not None and deadlines.notify and notifications is None:
        yield Problem(
            DEADLINES,
            "notify",
            f"the summary to the privacy contact needs mail settings: add {NOTIFICATIONS} "
            "(email: conn_id, from; contact), or write notify: false",
        )
