"""Shared fixtures: real SQL backends (SQLite, PostgreSQL, MariaDB).

PostgreSQL and MariaDB are used at the URLs in ``LIFECYCLE_TEST_POSTGRES_URL``
and ``LIFECYCLE_TEST_MARIADB_URL`` (defaults: 127.0.0.1, trust/root).  Each
test session works in a database of its own, dropped at the end.  Without a
server, its tests skip with a one-line reason; with
``LIFECYCLE_REQUIRE_SERVERS=1`` (CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid

import pytest
import sqlalchemy as sa

from lifecycle.stores.s3 import S3Store
from tests.support.s3 import aws_connection, moto_server

# Airflow reads its home when first imported (connections, DagBag): keep the
# suite's Airflow files out of the developer's ~/airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="lifecycle-test-airflow-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# The Ed25519 key every signed document is signed with (catalog evidence.signing_conn_id's default).
TEST_EVIDENCE_KEY = "bGlmZWN5Y2xlLXRlc3QtZXZpZGVuY2Uta2V5LTAwMDA="  # base64 of 32 bytes
os.environ.setdefault(
    "AIRFLOW_CONN_LIFECYCLE_EVIDENCE_SIGNING", json.dumps({"conn_type": "generic", "password": TEST_EVIDENCE_KEY})
)

SERVER_URLS = {
    "postgresql": os.environ.get(
        "LIFECYCLE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get("LIFECYCLE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
BACKENDS = ["sqlite", "postgresql", "mariadb"]


def _server_database(backend: str):
    """Create a throwaway database on the server; return (url, drop)."""
    admin_url = sa.make_url(SERVER_URLS[backend])
    name = f"lifecycle_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        reason = f"{backend} not reachable at {admin_url.render_as_string(hide_password=True)}: {str(exc.orig).splitlines()[0]}"
        if os.environ.get("LIFECYCLE_REQUIRE_SERVERS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)

    def drop():
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()

    return admin_url.set(database=name), drop


@pytest.fixture(scope="session")
def backend_url(request, tmp_path_factory):
    """A session-wide empty database URL per backend (indirect parameter)."""
    backend = request.param
    if backend == "sqlite":
        yield sa.URL.create("sqlite", database=str(tmp_path_factory.mktemp("sqlite") / "test.db"))
        return
    url, drop = _server_database(backend)
    yield url
    drop()


@pytest.fixture
def engine(backend_url):
    """An engine on the backend's database, emptied after the test."""
    kwargs = {"connect_args": {"timeout": 60}} if backend_url.get_backend_name() == "sqlite" else {}
    eng = sa.create_engine(backend_url, **kwargs)
    yield eng
    meta = sa.MetaData()
    meta.reflect(eng)
    meta.drop_all(eng)
    eng.dispose()


def pytest_generate_tests(metafunc):
    """Any test that takes ``backend_url`` (directly or through ``engine``) runs on every backend."""
    if "backend_url" in metafunc.fixturenames and not any(
        m.name == "parametrize" and "backend_url" in m.args[0] for m in metafunc.definition.iter_markers()
    ):
        metafunc.parametrize("backend_url", BACKENDS, indirect=True, scope="session")


# ---------------------------------------------------------------- S3 (moto server over HTTP)


@pytest.fixture(scope="session")
def s3_endpoint():
    with moto_server() as endpoint_url:
        yield endpoint_url


@pytest.fixture
def s3_conn_id(s3_endpoint, monkeypatch):
    """A connection id of its own per test: lifecycle.connections caches one
    client per id, so no test sees another's client (or its event hooks)."""
    conn_id = f"s3_test_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", aws_connection(s3_endpoint))
    return conn_id


def _bucket_name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def s3_store(s3_conn_id):
    """A store over a new, empty, versioned bucket."""
    store = S3Store.from_connection(s3_conn_id, _bucket_name())
    store.client.create_bucket(Bucket=store.bucket)
    store.client.put_bucket_versioning(Bucket=store.bucket, VersioningConfiguration={"Status": "Enabled"})
    return store


@pytest.fixture
def locked_s3_store(s3_conn_id):
    """A store over a new bucket with Object Lock enabled (hence versioned)."""
    store = S3Store.from_connection(s3_conn_id, _bucket_name())
    store.client.create_bucket(Bucket=store.bucket, ObjectLockEnabledForBucket=True)
    return store


# ------------------------------------------------------- Airflow connections, as tasks read them


def sql_connection(url: sa.URL) -> str:
    """The value of an ``AIRFLOW_CONN_<ID>`` variable for a SQL system at ``url`` (JSON form)."""
    import json

    return json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": url.render_as_string(hide_password=False)}})


@pytest.fixture
def connect(monkeypatch):
    """``connect(conn_id, value)`` defines an Airflow connection the way a deployment does
    (``AIRFLOW_CONN_<ID>``): the code under test opens its stores by system name through it,
    as a task does.  Engines and clients made from them are closed after the test."""
    from lifecycle import connections

    connections.forget()

    def define(conn_id: str, value) -> None:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}", sql_connection(value) if isinstance(value, sa.URL) else value
        )

    yield define
    connections.forget()


# ---------------------------------------------------------------- parallel runs (pytest-xdist)

# Tests that share one expensive session fixture, whatever their module: one worker runs them all.
_SHARED_SCOPES = {"tests/deploy/": "tests/deploy (one cluster)"}
# Modules whose tests take longest in all: handed out first, so that no worker starts one last.
_FIRST = (
    "tests/package/",
    "tests/deploy/",
    "tests/airflow/test_failed_runs.py",
    "tests/airflow/test_incident_dag.py",
    "tests/conformance/test_dags.py",
    "tests/airflow/",
    "tests/conformance/",
)


def _scope(nodeid: str) -> str:
    """The unit a worker takes whole: a module, or a group of modules sharing a fixture."""
    path = nodeid.split("::", 1)[0]
    return next((scope for prefix, scope in _SHARED_SCOPES.items() if path.startswith(prefix)), path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``pytest -n N`` (``make test``): each module's tests run on one worker, so module and
    session fixtures (an Airflow world, a cluster) are built once per worker that needs them."""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # keep the order of pytest_collection_modifyitems

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """The longest modules first (a stable sort: the order within a module is kept)."""
    rank = {prefix: n for n, prefix in enumerate(_FIRST)}

    def order(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return min((n for prefix, n in rank.items() if path.startswith(prefix)), default=len(_FIRST))

    items.sort(key=order)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """A worker's conformance figures (``tests/conformance/conftest.py``), kept by the controller."""
    for name in ("conformance_timings", "conformance_partitions"):
        if name in getattr(node, "workeroutput", {}):
            setattr(node.config, f"_{name}", node.workeroutput[name])


def pytest_terminal_summary(terminalreporter, config):
    """The conformance suite's figures, when it ran."""
    timings = getattr(config, "_conformance_timings", None)
    if timings:
        terminalreporter.write_line(
            "conformance: seconds spent in worlds per backend: "
            + ", ".join(f"{b} {s:.1f}" for b, s in sorted(timings.items()))
        )
    partitions = getattr(config, "_conformance_partitions", None)
    if partitions:
        terminalreporter.write_line(
            "conformance: retention worlds' partitioned tables and partitions dropped whole: "
            + ", ".join(f"{b} {t} / {d}" for b, (t, d) in sorted(partitions.items()))
        )
