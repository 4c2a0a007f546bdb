"""The embedded defaults behind ``make demo`` and ``make up``.

Everything runs on this machine, under one state folder (``<repo>/var``, or
``$LIFECYCLE_VAR_DIR``)::

    var/airflow/    AIRFLOW_HOME: airflow.cfg, airflow.db (SQLite), task logs
    var/app.db      the demo app's database (connection app_db)
    var/state.db    the lifecycle's ledger and registers (connection lifecycle_state)
    var/mail/       every mail the SMTP sink received, one .eml each
    var/run/        pidfiles of the background services
    var/log/        their logs

Background services (detached processes, each in its own process group):

    s3              moto in server mode: S3 at http://127.0.0.1:$LIFECYCLE_S3_PORT (5055)
    mail            lifecycle.mailsink at 127.0.0.1:$LIFECYCLE_SMTP_PORT (1025)
    api-server, scheduler, dag-processor, triggerer   (``start --airflow``)
                    Airflow, UI/API at http://127.0.0.1:$LIFECYCLE_API_PORT (8080)

The *cluster* profile (``LIFECYCLE_PROFILE=cluster``, what ``make cluster``
uses) is the production shape on loopback: Airflow's metadata, the app
database and the state store on PostgreSQL, CeleryExecutor with Redis as the
broker, ``$LIFECYCLE_WORKERS`` (2) Celery workers (services ``worker-1`` ...),
and the FAB auth manager with the roles of ``config/roles.json`` and one user
per role (passwords generated into ``var/airflow/users.json``).  Its settings:

    LIFECYCLE_PG_URL      postgresql://postgres@127.0.0.1:5432   (trust auth, creates the databases)
    LIFECYCLE_DB_PREFIX   lifecycle   -> databases <prefix>_airflow, <prefix>_app, <prefix>_state
    LIFECYCLE_REDIS_URL   redis://127.0.0.1:6379/0
    LIFECYCLE_WORKERS     2

Commands (``python -m lifecycle dev ...``; ``python -m lifecycle.devenv ...`` is the same)::

    start [--airflow]   start what is not running yet, wait until it answers
    stop                stop every service that has a pidfile
    status              what runs (exit 0 when s3 and mail run, else 3)
    env                 ``export`` lines for the embedded defaults
    run -- CMD ...      run CMD under the embedded defaults (venv bin on PATH)

Python callers get the same values from :func:`environment`.  The parts:
``env`` (values, paths), ``services`` (what each service is and when it
answers), ``processes`` (pidfiles, launching, stopping), ``bootstrap``
(Airflow's database, the cluster's databases, roles and users), ``commands``
(start, stop, status and the command line).

All keys below are demo values for a loopback-only sandbox; nothing here is
meant for production.
"""

from lifecycle.devenv.bootstrap import airflow_login, cluster_users
from lifecycle.devenv.commands import add_commands, start, status, stop
from lifecycle.devenv.env import (
    AIRFLOW_SERVICES,
    CLUSTER_USERS,
    CORE_SERVICES,
    HOST,
    PORTS,
    REPO,
    DevenvError,
    child_environment,
    cluster_databases,
    cluster_settings,
    environment,
    ports,
    shell_exports,
    var_dir,
)
from lifecycle.devenv.processes import running_pid
from lifecycle.devenv.services import Service, airflow_services, services

__all__ = [
    "AIRFLOW_SERVICES",
    "CLUSTER_USERS",
    "CORE_SERVICES",
    "HOST",
    "PORTS",
    "REPO",
    "DevenvError",
    "Service",
    "add_commands",
    "airflow_login",
    "airflow_services",
    "child_environment",
    "cluster_databases",
    "cluster_settings",
    "cluster_users",
    "environment",
    "ports",
    "running_pid",
    "services",
    "shell_exports",
    "start",
    "status",
    "stop",
    "var_dir",
]
