"""Load and validate the lifecycle configuration (SPEC §3).

``load_config()`` reads every file, checks shape and cross-references, and
either returns a ``Config`` or raises one ``ConfigError`` listing every
problem with its file and key path.  Each file has a module of its own
holding its models and its checks (``config.retention`` for retention.yaml,
...); catalog.yaml's are the catalog's (``catalog.models``, ``catalog.checks``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from lifecycle.catalog import Catalog
from lifecycle.catalog.checks import check_catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.config.cancellation import CancellationFile, check_cancellation
from lifecycle.config.deadlines import DeadlinesFile, check_deadlines
from lifecycle.config.incidents import IncidentsFile, check_incidents
from lifecycle.config.loader import config_dir, parse_model, read_yaml
from lifecycle.config.mail import check_mail
from lifecycle.config.notifications import NotificationsFile
from lifecycle.config.recipients import RecipientsFile, check_recipients
from lifecycle.config.requests import RequestsFile, check_requests
from lifecycle.config.retention import RetentionFile, check_retention
from lifecycle.errors import ConfigError, Problem

# file -> (model, required); optional files switch their DAG off when absent.
FILES = {
    "catalog.yaml": (CatalogFile, True),
    "retention.yaml": (RetentionFile, False),
    "cancellation.yaml": (CancellationFile, False),
    "recipients.yaml": (RecipientsFile, False),
    "incidents.yaml": (IncidentsFile, False),
    "notifications.yaml": (NotificationsFile, False),
    "requests.yaml": (RequestsFile, False),
    "deadlines.yaml": (DeadlinesFile, False),  # absent: lifecycle_deadlines runs with the defaults
}


@dataclass(frozen=True)
class Config:
    directory: Path
    catalog_file: CatalogFile
    retention: RetentionFile
    cancellation: CancellationFile | None
    recipients: RecipientsFile
    incidents: IncidentsFile | None
    notifications: NotificationsFile | None  # mail to people: notifications.yaml (or incidents.yaml's older keys)
    requests: RequestsFile | None = None  # a person's own requests (subject_request DAG)
    deadlines: DeadlinesFile = field(
        default_factory=DeadlinesFile
    )  # what lifecycle_deadlines watches for, and how far ahead

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.catalog_file)


def collect(directory: str | os.PathLike | None = None) -> tuple[dict, list[Problem], Path]:
    """Parse every file; return the models that parsed and every problem."""
    folder = config_dir(directory)
    models: dict[str, object] = {}
    problems: list[Problem] = []
    if not folder.is_dir():
        return models, [Problem(str(folder), "", "configuration folder not found (set LIFECYCLE_CONFIG_DIR)")], folder
    for file, (model, required) in FILES.items():
        path = folder / file
        if not path.exists() and not required:
            continue
        data, found = read_yaml(path)
        problems += found
        if not found:
            parsed, found = parse_model(file, data, model)
            problems += found
            if parsed is not None:
                models[file] = parsed
    if "catalog.yaml" in models:
        catalog = Catalog(models["catalog.yaml"])
        problems += check_catalog(catalog)
        for file, check in (
            ("retention.yaml", check_retention),
            ("cancellation.yaml", check_cancellation),
            ("recipients.yaml", check_recipients),
            ("incidents.yaml", check_incidents),
            ("requests.yaml", check_requests),
        ):
            if file in models:
                problems += check(catalog, models[file])
    problems += check_mail(models, notifications(models))
    problems += check_deadlines(models, notifications(models))
    return models, problems, folder


def notifications(models: dict) -> NotificationsFile | None:
    """The mail settings: notifications.yaml, else the ``email``, ``contact`` and ``locales``
    an incidents.yaml written before notifications.yaml existed carries."""
    if "notifications.yaml" in models:
        return models["notifications.yaml"]
    incidents = models.get("incidents.yaml")
    if incidents is None or incidents.email is None or incidents.contact is None:
        return None
    return NotificationsFile(email=incidents.email, contact=incidents.contact, locales=incidents.locales or ["en"])


def load_deadlines(directory: str | os.PathLike | None = None) -> DeadlinesFile:
    """``deadlines.yaml`` alone (its defaults when absent): what ``lifecycle_deadlines``' DAG file needs
    at parse time.  Its tasks load and check every file when they run."""
    path = config_dir(directory) / "deadlines.yaml"
    if not path.exists():
        return DeadlinesFile()
    data, problems = read_yaml(path)
    parsed, found = parse_model(path.name, data, DeadlinesFile) if not problems else (None, [])
    if problems or found:
        raise ConfigError(problems + found)
    return parsed


def load_config(directory: str | os.PathLike | None = None) -> Config:
    models, problems, folder = collect(directory)
    if problems:
        raise ConfigError(problems)
    return Config(
        directory=folder,
        catalog_file=models["catalog.yaml"],
        retention=models.get("retention.yaml", RetentionFile()),
        cancellation=models.get("cancellation.yaml"),
        recipients=models.get("recipients.yaml", RecipientsFile()),
        incidents=models.get("incidents.yaml"),
        notifications=notifications(models),
        requests=models.get("requests.yaml"),
        deadlines=models.get("deadlines.yaml", DeadlinesFile()),
    )
