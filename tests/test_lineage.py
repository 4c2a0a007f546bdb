"""Lineage: a catalog dataset's Asset URI per system kind, and events with counts only."""

from airflow.sdk import Asset
from airflow.sdk.execution_time.context import OutletEventAccessors

from lifecycle import lineage
from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.config import load_config
from lifecycle.erasure.records import StepDone, StepPlan, StepRecords
from lifecycle.erasure.steps import erasure_steps
from lifecycle.state import StateStore

SUBJECTS = ("u-1001", "u-1002")


def _catalog(tmp_path) -> Catalog:
    return Catalog(
        CatalogFile.model_validate(
            {
                "systems": {
                    "crm": {"type": "sql", "conn_id": "crm"},
                    "media": {"type": "s3", "conn_id": "media_s3", "bucket": "acme-media"},
                    "lake": {
                        "type": "iceberg",
                        "catalog": {"path": str(tmp_path / "catalog.db")},
                        "warehouse": str(tmp_path / "warehouse"),
                    },
                    "delta": {"type": "delta", "location": str(tmp_path / "delta")},
                },
                "categories": {"contact": {}, "usage": {}},
                "subject": {"dataset": "users", "key": "id", "contact": {"email": "email"}},
                "datasets": {
                    "users": {
                        "system": "crm",
                        "table": "sales.users",
                        "primary_key": "id",
                        "fields": {"email": {"category": "contact"}},
                    },
                    "avatars": {"system": "media", "prefix": "people/{subject}/avatar/", "category": "contact"},
                    "uploads": {"system": "media", "prefix": "{subject}/", "category": "usage"},
                    "events": {
                        "system": "lake",
                        "table": "app.events",
                        "primary_key": "id",
                        "subject": "user_id -> users.id",
                        "category": "usage",
                    },
                    "clicks": {
                        "system": "delta",
                        "table": "clicks/2026",
                        "primary_key": "id",
                        "subject": "user_id -> users.id",
                        "category": "usage",
                    },
                },
            }
        )
    )


def test_each_system_kind_has_its_uri_scheme_and_the_dataset_its_name(tmp_path):
    catalog = _catalog(tmp_path)
    uris = {name: lineage.asset_uri(catalog, name) for name in catalog.datasets}
    assert uris == {
        "users": "x-lifecycle-sql://crm/sales/users",
        "avatars": "s3://acme-media/people",
        "uploads": "s3://acme-media/",
        "events": "x-lifecycle-iceberg://lake/app/events",
        "clicks": "x-lifecycle-delta://delta/clicks/2026",
    }
    for name, uri in uris.items():  # Airflow keeps them as written (no normalization changes them)
        made = lineage.asset(catalog, name)
        assert (made.name, made.uri, made.extra["system"]) == (f"lifecycle.{name}", uri, catalog.dataset(name).system)
        assert Asset(name=made.name, uri=uri).uri == uri


def test_the_demo_catalog_has_one_distinct_uri_per_dataset():
    catalog = load_config().catalog
    uris = [lineage.asset_uri(catalog, name) for name in catalog.datasets]
    assert len(set(uris)) == len(uris) == len(catalog.datasets)


def test_a_retention_unit_that_changed_nothing_emits_nothing_and_counts_are_named_by_kind(tmp_path):
    catalog = _catalog(tmp_path)
    changes = lineage.retention_changes
    assert changes(catalog, {"dataset": "users", "action": "delete", "rows": 0, "batches": 1}) == {}
    assert changes(catalog, {"dataset": "users", "action": "anonymize", "rows": 7, "batches": 1}) == {
        "users": {"action": "anonymize", "rows_anonymized": 7}
    }
    objects = {"dataset": "avatars", "action": "delete", "rows": 5, "batches": 1, "objects": 2, "locked": 1}
    assert changes(catalog, objects) == {
        "avatars": {"action": "delete", "versions_deleted": 5, "objects_removed": 2, "locked": 1}
    }
    # only older versions went: no key left empty, nothing locked (Applied.to_json leaves both out)
    assert changes(catalog, {"dataset": "avatars", "action": "delete", "rows": 3, "batches": 1}) == {
        "avatars": {"action": "delete", "versions_deleted": 3, "objects_removed": 0, "locked": 0}
    }


def test_erasure_events_carry_the_batch_counts_and_never_a_subject(engine, tmp_path):
    catalog, state = _catalog(tmp_path), StateStore(engine)
    records = StepRecords(state.ledger, "b-1", "run-1")
    for plan, done in (
        (StepPlan("events", "delete", {s: 3 for s in SUBJECTS}), StepDone("events", "delete", rows=6)),
        (StepPlan("clicks", "delete", {}), StepDone("clicks", "delete", rows=0)),  # nothing of theirs: no event
        (StepPlan("avatars", "delete", versions={s: 2 for s in SUBJECTS}), None),
        (None, StepDone("avatars", "delete", versions=3, locked={SUBJECTS[0]: [{"key": f"{SUBJECTS[0]}/a"}]})),
        (StepPlan("users", "anonymize", {s: 1 for s in SUBJECTS}, keys=SUBJECTS), StepDone("users", "anonymize", 2)),
    ):
        if plan:
            records.plan(plan)
        if done:
            records.record_done(done)
    records.flush()
    changes = lineage.erasure_changes(state.ledger, "b-1")
    assert changes == {
        "events": {"action": "delete", "rows_deleted": 6},
        "avatars": {"action": "delete", "versions_deleted": 3, "locked": 1},
        "users": {"action": "anonymize", "rows_anonymized": 2},
    }
    assert lineage.erasure_changes(state.ledger, "b-2") == {}

    events = OutletEventAccessors()
    lineage.add_events(events, catalog, changes)
    emitted = {
        e.dest_asset_key.name: (e.source_alias_name, e.extra)
        for name in catalog.datasets
        for e in events[lineage.alias(name)].asset_alias_events
    }
    assert set(emitted) == {"lifecycle.events", "lifecycle.avatars", "lifecycle.users"}
    assert emitted["lifecycle.users"] == ("lifecycle.users.changes", {"action": "anonymize", "rows_anonymized": 2})
    text = repr(emitted)
    assert not any(s in text for s in SUBJECTS)


def test_an_erasure_declares_every_dataset_its_steps_can_change():
    config = load_config()
    assert lineage.personal_datasets(config.catalog) == sorted(s.dataset for s in erasure_steps(config))
