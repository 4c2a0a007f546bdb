"""Every date and time column type of the three backends, wherever the catalog names a time:
``created`` (retention cutoffs, incident windows), cancellation ``requested_at`` /
``withdrawn_at`` (erasure intake), consent ``granted`` / ``withdrawn`` (sharing's consent
filter, withdrawing), a requests table's ``requested_at`` (subject request intake)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from lifecycle.config import load_config
from lifecycle.erasure import Erasure
from lifecycle.errors import LifecycleError
from lifecycle.health import schema_matches
from lifecycle.rights.intake import _table_requests
from lifecycle.state import StateStore
from lifecycle.stores import open_store
from lifecycle.stores.contract import Selection
from lifecycle.stores.sql import SqlStore
from tests.config import sample

AS_OF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DUE, PENDING, WITHDRAWN, LATE_WITHDRAWAL = 1, 2, 3, 4


def _epoch(scale: int):
    return lambda when: round(when.timestamp() * scale)


_PLUS_2 = timezone(timedelta(hours=2))


def _text(when: datetime) -> str:
    """ISO text as an application may write it: with an offset other than UTC."""
    return when.astimezone(_PLUS_2).isoformat()


# (id, backends, column type, times declaration, how a value is written)
TYPES = [
    ("timestamp", {"sqlite", "postgresql", "mariadb"}, lambda: sa.DateTime(), None, lambda w: w.replace(tzinfo=None)),
    ("timestamptz", {"postgresql"}, lambda: postgresql.TIMESTAMP(timezone=True), None, lambda w: w.astimezone(_PLUS_2)),
    ("mariadb-timestamp", {"mariadb"}, lambda: mysql.TIMESTAMP(fsp=6), None, lambda w: w.replace(tzinfo=None)),
    ("date", {"sqlite", "postgresql", "mariadb"}, lambda: sa.Date(), None, lambda w: w.date()),
    ("sqlite-text", {"sqlite"}, lambda: sa.Text(), None, _text),
    ("epoch-seconds", {"sqlite", "postgresql", "mariadb"}, lambda: sa.BigInteger(), "epoch_seconds", _epoch(1)),
    ("epoch-millis", {"sqlite", "postgresql", "mariadb"}, lambda: sa.BigInteger(), "epoch_milliseconds", _epoch(1000)),
]


def _tables(kind) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    meta = sa.MetaData()

    def when(name):
        return sa.Column(name, kind(), nullable=True)

    users = sa.Table(
        "users",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(100)),
        when("created_at"),
    )
    visits = sa.Table(
        "visits",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),
        when("visited_at"),
    )
    cancellations = sa.Table(
        "account_cancellations",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),
        when("requested_at"),
        when("withdrawn_at"),
    )
    consents = sa.Table(
        "consents",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),
        sa.Column("purpose", sa.String(40)),
        when("granted_at"),
        when("withdrawn_at"),
    )
    requests = sa.Table(
        "privacy_requests",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.Integer),
        sa.Column("kind", sa.String(24)),
        when("requested_at"),
    )
    return meta, {t.name: t for t in (users, visits, cancellations, consents, requests)}


def _files(tmp_path, declared: str | None) -> dict:
    times = {"times": dict.fromkeys(("requested_at", "withdrawn_at"), declared)} if declared else {}

    def dated(column):
        return {"times": {column: declared}} if declared else {}

    catalog = {
        "systems": {
            "app_db": {"type": "sql", "conn_id": "app_db"},
            "state": {"type": "sql", "conn_id": "lifecycle_state"},
        },
        "purposes": sample.CATALOG["purposes"],
        "categories": {
            c: {"title": c, "purposes": ["account"]}
            for c in ("basic_info", "access_records", "account_records", "consents")
        },
        "subject": {"dataset": "users", "key": "id", "contact": {"email": "email"}},
        "reports": {"path": str(tmp_path / "reports")},
        "datasets": {
            "users": {
                "system": "app_db",
                "table": "users",
                "primary_key": "id",
                "created": "created_at",
                "fields": {"email": {"category": "basic_info", "anonymize": "redact"}},
                **dated("created_at"),
            },
            "visits": {
                "system": "app_db",
                "table": "visits",
                "primary_key": "id",
                "subject": "user_id -> users.id",
                "created": "visited_at",
                "category": "access_records",
                **dated("visited_at"),
            },
            "account_cancellations": {
                "system": "app_db",
                "table": "account_cancellations",
                "primary_key": "id",
                "subject": "user_id -> users.id",
                "created": "requested_at",
                "category": "account_records",
                "fields": {"withdrawn_at": {}},
                **times,
            },
            "consents": {
                "system": "app_db",
                "table": "consents",
                "primary_key": "id",
                "subject": "user_id -> users.id",
                "category": "consents",
                "consent": {"purpose": "purpose", "granted": "granted_at", "withdrawn": "withdrawn_at"},
                **({"times": dict.fromkeys(("granted_at", "withdrawn_at"), declared)} if declared else {}),
            },
            "privacy_requests": {
                "system": "app_db",
                "table": "privacy_requests",
                "primary_key": "id",
                "personal": False,
                "fields": {c: {"personal": False} for c in ("user_id", "kind", "requested_at")},
                **dated("requested_at"),
            },
        },
    }
    return {
        "catalog.yaml": catalog,
        "retention.yaml": {
            "rules": [{"name": "visits-30d", "applies_to": {"datasets": ["visits"]}, "keep": "30d", "action": "delete"}]
        },
        "cancellation.yaml": {
            "requests": {
                "dataset": "account_cancellations",
                "subject": "user_id",
                "requested_at": "requested_at",
                "withdrawn_at": "withdrawn_at",
            },
            "grace_period": "15d",
            "complete_within": "30d",
            "default_action": "delete",
        },
        "notifications.yaml": {
            "email": {"conn_id": "smtp_default", "from": "Privacy <privacy@example.com>"},
            "contact": {"name": "Privacy officer", "email": "privacy@example.com"},
        },
        "requests.yaml": {
            "intake": {
                "requests": {
                    "dataset": "privacy_requests",
                    "id": "id",
                    "subject": "user_id",
                    "kind": "kind",
                    "requested_at": "requested_at",
                }
            }
        },
    }


def _seed(engine, tables, write) -> None:
    day = timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(
            tables["users"].insert(),
            [{"id": u, "email": f"u{u}@example.com", "created_at": write(AS_OF - 400 * day)} for u in range(1, 6)],
        )
        conn.execute(  # 30d retention: 3 visits older (32d), 2 younger (28d)
            tables["visits"].insert(),
            [{"id": v, "user_id": 1, "visited_at": write(AS_OF - (32 if v <= 3 else 28) * day)} for v in range(1, 6)],
        )
        conn.execute(
            tables["account_cancellations"].insert(),
            [
                {"id": 1, "user_id": DUE, "requested_at": write(AS_OF - 20 * day), "withdrawn_at": None},
                {"id": 2, "user_id": PENDING, "requested_at": write(AS_OF - 5 * day), "withdrawn_at": None},
                {
                    "id": 3,
                    "user_id": WITHDRAWN,
                    "requested_at": write(AS_OF - 20 * day),
                    "withdrawn_at": write(AS_OF - 18 * day),
                },
                {  # withdrawn after the grace ended: the erasure goes on
                    "id": 4,
                    "user_id": LATE_WITHDRAWAL,
                    "requested_at": write(AS_OF - 40 * day),
                    "withdrawn_at": write(AS_OF - 3 * day),
                },
            ],
        )
        conn.execute(
            tables["consents"].insert(),
            [
                {"id": 1, "user_id": 1, "purpose": "expo", "granted_at": write(AS_OF - 50 * day), "withdrawn_at": None},
                {
                    "id": 2,
                    "user_id": 2,
                    "purpose": "expo",
                    "granted_at": write(AS_OF - 50 * day),
                    "withdrawn_at": write(AS_OF - 10 * day),
                },
                {"id": 3, "user_id": 3, "purpose": "expo", "granted_at": write(AS_OF + 5 * day), "withdrawn_at": None},
            ],
        )
        conn.execute(
            tables["privacy_requests"].insert(),
            [
                {"id": 1, "user_id": 1, "kind": "access", "requested_at": write(AS_OF - 2 * day)},
                {"id": 2, "user_id": 2, "kind": "access", "requested_at": write(AS_OF + 2 * day)},
            ],
        )


def _cases():
    for name, backends, kind, declared, write in TYPES:
        for backend in sorted(backends):
            yield pytest.param(backend, (kind, declared, write), id=f"{backend}-{name}")


@pytest.fixture
def world(case, engine, tmp_path, connect, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", "time-columns-test-hmac-key-0123456789")
    kind, declared, write = case
    meta, tables = _tables(kind)
    meta.create_all(engine)
    _seed(engine, tables, write)
    url = engine.url
    if engine.dialect.name == "postgresql":  # a session zone far from UTC: instants must not depend on it
        url = url.update_query_dict({"options": "-c timezone=Asia/Shanghai"})
    connect("app_db", url)
    config = load_config(sample.write(tmp_path / "config", _files(tmp_path, declared)))
    state_engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    state = StateStore(state_engine, dataset_names=set(config.catalog.datasets))
    yield config, engine, state
    state_engine.dispose()


@pytest.mark.parametrize("backend_url, case", list(_cases()), indirect=["backend_url"], scope="session")
def test_every_time_column_type_works_wherever_the_catalog_names_a_time(world):
    config, engine, state = world
    assert schema_matches(config)["findings"] == 0
    store = open_store(config.catalog, "app_db")
    day = timedelta(days=1)

    # retention's cutoff and an incident's window on ``created``
    assert store.count("visits", Selection(older_than=AS_OF - 30 * day)) == 3
    assert store.count("visits", Selection(created_within=(AS_OF - 30 * day, AS_OF))) == 2
    assert store.count_by_subject("users", Selection(created_within=(AS_OF - 401 * day, AS_OF - 399 * day)))

    # consent in force at the run's time (sharing's filter), the periods, withdrawing
    consenting = {row[0] for rows in store.stream("users", ["id"], consent=("consents", "expo", AS_OF)) for row in rows}
    assert consenting == {"1"}
    periods = store.consent_periods("consents", "2", "expo")
    assert [p.withdrawn.date() for p in periods] == [(AS_OF - 10 * day).date()]
    assert all(p.granted.tzinfo is not None for p in periods)
    assert store.withdraw_consent("consents", "1", "expo", AS_OF) == 1
    assert store.withdraw_consent("consents", "1", "expo", AS_OF) == 0
    (period,) = store.consent_periods("consents", "1", "expo")
    assert period.withdrawn is not None and period.withdrawn.date() == AS_OF.date() and not period.in_force(AS_OF)

    # a requests table's requested_at: asked by the run's time is taken in, later waits
    from lifecycle.rights import SubjectRights

    _table_requests(SubjectRights(config, state), "scheduled__2026-06-01", AS_OF)
    assert state.requests.known(["privacy_requests:1", "privacy_requests:2"]) == {"privacy_requests:1"}

    # cancellation intake: requested_at / withdrawn_at against the run's time
    result = Erasure(config, state).intake("scheduled__2026-06-01", AS_OF)
    states = {r.subject_id: r.state for r in state.erasures.all()}
    assert states == {
        str(DUE): "erasing",
        str(PENDING): "pending",
        str(WITHDRAWN): "withdrawn",
        str(LATE_WITHDRAWAL): "erasing",
    }
    assert result.batches
    record = {r.subject_id: r for r in state.erasures.all()}[str(DUE)]
    assert record.requested_at.startswith((AS_OF - 20 * day).date().isoformat())

    for batch in result.batches:
        Erasure(config, state).erase(batch, AS_OF, run_id="scheduled__2026-06-01")
    assert {r.subject_id: r.state for r in state.erasures.all()}[str(DUE)] == "done"
    assert store.count_by_subject("users", Selection(subjects=(str(DUE), str(LATE_WITHDRAWAL)))) == {}


def test_a_number_named_as_a_time_without_a_declaration_is_refused_by_scan(engine, tmp_path, connect):
    meta, tables = _tables(sa.BigInteger)
    meta.create_all(engine)
    connect("app_db", engine.url)
    config = load_config(sample.write(tmp_path / "config", _files(tmp_path, None)))
    with pytest.raises(LifecycleError, match="nothing was changed"):
        schema_matches(config)
    from lifecycle.scan import scan, time_columns

    findings = [str(f) for f in scan(config.catalog, {"app_db": engine}, times=time_columns(config))]
    assert any(
        "account_cancellations.requested_at: named as a time by" in f and "epoch_seconds" in f for f in findings
    ), findings
    assert any("privacy_requests.requested_at" in f and "requests.yaml" in f for f in findings), findings


def test_a_date_column_compares_by_the_instants_utc_date(engine, tmp_path, connect):
    """A row dated D is older than an instant only once D is over; it is in a window its day meets."""
    meta, tables = _tables(sa.Date)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(tables["users"].insert(), [{"id": 1, "email": "a@example.com", "created_at": date(2026, 5, 1)}])
    connect("app_db", engine.url)
    config = load_config(sample.write(tmp_path / "config", _files(tmp_path, None)))
    store = SqlStore(engine, config.catalog)
    assert store.count("users", Selection(older_than=datetime(2026, 5, 1, 23, 0, tzinfo=UTC))) == 0
    assert store.count("users", Selection(older_than=datetime(2026, 5, 2, 0, 0, tzinfo=UTC))) == 1
    window = (datetime(2026, 5, 1, 18, 0, tzinfo=UTC), datetime(2026, 5, 1, 19, 0, tzinfo=UTC))
    assert store.count("users", Selection(created_within=window)) == 1


def test_a_table_partitioned_on_epoch_numbers_goes_the_row_path(engine, tmp_path, connect):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL declarative partitions")
    meta, _ = _tables(sa.BigInteger)
    meta.create_all(engine)
    seconds = _epoch(1)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE visits"))
        conn.execute(
            sa.text(
                "CREATE TABLE visits (id INTEGER NOT NULL, user_id INTEGER, visited_at BIGINT NOT NULL, "
                "PRIMARY KEY (id, visited_at)) PARTITION BY RANGE (visited_at)"
            )
        )
        conn.execute(sa.text(f"CREATE TABLE visits_old PARTITION OF visits FOR VALUES FROM (0) TO ({seconds(AS_OF)})"))
        conn.execute(
            sa.text(f"CREATE TABLE visits_new PARTITION OF visits FOR VALUES FROM ({seconds(AS_OF)}) TO (MAXVALUE)")
        )
        conn.execute(sa.text("INSERT INTO users (id) VALUES (1)"))
        conn.execute(
            sa.text("INSERT INTO visits VALUES (1, 1, :old), (2, 1, :young)"),
            {"old": seconds(AS_OF - timedelta(days=40)), "young": seconds(AS_OF - timedelta(days=2))},
        )
    connect("app_db", engine.url)
    config = load_config(sample.write(tmp_path / "config", _files(tmp_path, "epoch_seconds")))
    store = open_store(config.catalog, "app_db")
    try:
        assert store.partitions("visits") == []
        assert store.count("visits", Selection(older_than=AS_OF - timedelta(days=30))) == 1
    finally:
        with engine.begin() as conn:  # the partitions go with their table
            conn.execute(sa.text("DROP TABLE visits CASCADE"))
