"""Foreign keys onto personal tables from tables the lifecycle does not erase (uncataloged, or
``personal: false``): refused by ``scan`` and every preflight before anything changes, unless
their ``ON DELETE`` lets the rows go, which the preflight says and the erase then relies on."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lifecycle.config import load_config
from lifecycle.erasure import Erasure
from lifecycle.errors import LifecycleError
from lifecycle.health import schema_matches
from lifecycle.scan import scan, scan_report
from lifecycle.state import StateStore
from lifecycle.stores import open_store
from lifecycle.stores.contract import Selection
from tests.config import sample
from tests.test_time_columns import AS_OF, DUE, _files, _seed, _tables

TICKETS = {"system": "app_db", "table": "support_tickets", "primary_key": "id", "personal": False}


def _world(engine, tmp_path, connect, monkeypatch, *, on_delete: str | None, nullable=True, cataloged=True):
    monkeypatch.setenv("AIRFLOW_VAR_LIFECYCLE_HMAC_KEY", "inbound-keys-test-hmac-key-0123456789")
    meta, tables = _tables(sa.DateTime)
    sa.Table(
        "support_tickets",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete=on_delete), nullable=nullable),
    )
    meta.create_all(engine)
    _seed(engine, tables, lambda w: w.replace(tzinfo=None))
    with engine.begin() as conn:
        conn.execute(meta.tables["support_tickets"].insert(), [{"id": t, "user_id": t % 5 + 1} for t in range(10)])
    connect("app_db", engine.url)
    files = _files(tmp_path, None)
    if cataloged:
        files["catalog.yaml"]["datasets"]["support_tickets"] = TICKETS
    config = load_config(sample.write(tmp_path / "config", files))
    state = StateStore(
        sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}"), dataset_names=set(config.catalog.datasets)
    )
    return config, state


def _tickets(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT id, user_id FROM support_tickets ORDER BY id"))]


@pytest.mark.parametrize("cataloged", [True, False], ids=["personal-false", "uncataloged"])
def test_a_key_from_a_table_the_lifecycle_does_not_erase_is_refused_before_anything_changes(
    engine, tmp_path, connect, monkeypatch, cataloged
):
    config, state = _world(engine, tmp_path, connect, monkeypatch, on_delete=None, cataloged=cataloged)
    findings = [str(f) for f in scan(config.catalog, {"app_db": engine})]
    why = "dataset 'support_tickets' is personal: false" if cataloged else "the table is not in the catalog"
    assert (
        "app_db: support_tickets.user_id: foreign key support_tickets(user_id) -> users(id) (ON DELETE NO ACTION) "
        f"points at rows the lifecycle deletes, from a table it does not erase ({why}): deleting them would fail. "
        "Catalog support_tickets as a personal dataset with a subject link (subject: <column> -> <dataset>.<column>), "
        "or declare the key ON DELETE CASCADE (or SET NULL on nullable columns) if the database may remove or "
        "unlink those rows"
    ) in findings
    before = _tickets(engine)
    with pytest.raises(LifecycleError, match="nothing was changed"):
        schema_matches(config)  # cancellation_erasure's, subject_request's, incident_notification's preflight
    with pytest.raises(LifecycleError, match="nothing was changed"):
        schema_matches(config, ["visits", "users"])  # retention's: the key points at one of its datasets
    assert state.erasures.all() == [] and _tickets(engine) == before
    if cataloged:  # a run that deletes nothing (incident, sharing) is not stopped by it
        assert schema_matches(config, deleting=False)["findings"] == 0


def test_a_retention_preflight_not_touching_the_referred_table_is_not_stopped_by_the_key(
    engine, tmp_path, connect, monkeypatch
):
    config, _ = _world(engine, tmp_path, connect, monkeypatch, on_delete=None)
    assert schema_matches(config, ["visits"])["findings"] == 0


def test_set_null_on_a_not_null_column_is_refused(engine, tmp_path, connect, monkeypatch):
    if engine.dialect.name == "mysql":
        pytest.skip("MariaDB refuses to create such a key")
    config, _ = _world(engine, tmp_path, connect, monkeypatch, on_delete="SET NULL", nullable=False)
    findings = [str(f) for f in scan(config.catalog, {"app_db": engine})]
    assert any("(ON DELETE SET NULL on a NOT NULL column)" in f for f in findings), findings


@pytest.mark.parametrize("on_delete", ["CASCADE", "SET NULL"])
def test_a_key_whose_on_delete_lets_rows_go_is_said_and_the_erase_completes(
    engine, tmp_path, connect, monkeypatch, on_delete
):
    config, state = _world(engine, tmp_path, connect, monkeypatch, on_delete=on_delete)
    report = scan_report(config.catalog, {"app_db": engine})
    assert report.findings == []
    effect = "deleted with it" if on_delete == "CASCADE" else "unlinked (set to NULL)"
    said = schema_matches(config)["handled_by_the_database"]
    assert said == [
        f"app_db: support_tickets(user_id) -> users(id) ON DELETE {on_delete}: rows of support_tickets pointing "
        f"at a deleted users row are {effect} by the database"
    ]
    result = Erasure(config, state).intake("scheduled__2026-06-01", AS_OF)
    for batch in result.batches:
        Erasure(config, state).erase(batch, AS_OF, run_id="scheduled__2026-06-01")
    assert {r.subject_id: r.state for r in state.erasures.all()}[str(DUE)] == "done"
    assert open_store(config.catalog, "app_db").count_by_subject("users", Selection(subjects=(str(DUE),))) == {}
    owners = {user for _, user in _tickets(engine)}
    assert DUE not in owners
    assert (None in owners) == (on_delete == "SET NULL")
