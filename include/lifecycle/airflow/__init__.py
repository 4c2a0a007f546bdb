"""The lifecycle in an Airflow deployment: ``build_dags`` for a dags folder's one file, and the
Privacy view plugin (``lifecycle.airflow.plugin``, registered through the ``airflow.plugins``
entry point, so installing the package is enough for Airflow to load it).

A dags folder needs one file::

    from lifecycle.airflow import build_dags

    build_dags(globals())  # or build_dags(globals(), config_dir="/opt/airflow/config/lifecycle")
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib import resources
from pathlib import Path

from lifecycle.config.loader import ENV_DIR
from lifecycle.config.loader import config_dir as default_config_dir
from lifecycle.errors import ConfigError, Problem

#: The DAG definitions (``lifecycle/airflow/dags/<name>.py``); each builds its DAGs from the configuration.
DEFINITIONS = (
    "lifecycle_checks",
    "lifecycle_deadlines",
    "retention_expiry",
    "cancellation_erasure",
    "subject_request",
    "incident_notification",
    "sharing",
)


def build_dags(namespace: dict, config_dir: str | os.PathLike | None = None) -> dict:
    """Build every lifecycle DAG the configuration asks for and put each in ``namespace``
    (a dags file's ``globals()``) under its dag_id; returns them by dag_id.

    ``config_dir`` (default ``$LIFECYCLE_CONFIG_DIR``, else ``config/lifecycle`` of the
    working directory) is also set as ``$LIFECYCLE_CONFIG_DIR`` of this process, so the
    tasks, which parse the same dags file before they run, read the same configuration.
    The definitions are executed afresh on every call: each parse of the dags file
    builds its DAGs from the configuration as it is then."""
    folder = default_config_dir(config_dir).resolve()
    if not folder.is_dir():
        hint = f"no such folder: pass config_dir= to build_dags or set {ENV_DIR} to the folder with catalog.yaml"
        raise ConfigError([Problem(str(folder), "", hint)])
    os.environ[ENV_DIR] = str(folder)
    from airflow.sdk import DAG

    built = {}
    for name in DEFINITIONS:
        module = _execute(name)
        built.update({value.dag_id: value for value in vars(module).values() if isinstance(value, DAG)})
    namespace.update(built)
    return built


def _execute(name: str):
    """The definition module ``name``, executed now (never a cached import)."""
    path = Path(str(resources.files(__name__).joinpath("dags", f"{name}.py")))
    spec = importlib.util.spec_from_file_location(f"{__name__}.dags.{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
