"""scan: the catalog against a live schema, on every backend."""

import sqlalchemy as sa

from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.scan import scan, scan_report
from tests.config import sample
from tests.stores.test_sql import meta


def _catalog():
    model = dict(sample.CATALOG, datasets={k: v for k, v in sample.CATALOG["datasets"].items() if k != "orders"})
    model["datasets"]["chat_messages"] = dict(model["datasets"]["chat_messages"])
    return Catalog(CatalogFile.model_validate(model))


def test_scan_reports_unclassified_missing_and_uncataloged(engine):
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE audit_trail (id INTEGER PRIMARY KEY, note VARCHAR(20))"))
        conn.execute(sa.text("ALTER TABLE users ADD COLUMN shoe_size INTEGER"))
    findings = [str(f) for f in scan(_catalog(), {"app_db": engine})]
    assert findings == [
        "app_db: audit_trail: table is not in the catalog; add it as a dataset (personal: false if it holds nothing personal)",
        "app_db: users.shoe_size: not classified; add it to datasets.users.fields with a category or personal: false",
    ]


def test_scan_reports_columns_the_catalog_names_but_the_table_lacks(engine):
    meta.create_all(engine)
    catalog = _catalog()
    catalog.datasets["access_logs"].fields["user_agent"] = catalog.datasets["access_logs"].fields["path"]
    findings = [str(f) for f in scan(catalog, {"app_db": engine})]
    assert findings == [
        "app_db: access_logs.user_agent: named by datasets.access_logs.fields.user_agent but not in the table"
    ]


def test_scan_checks_that_strategies_fit_their_columns(engine):
    meta.create_all(engine)
    model = sample.CATALOG | {}
    model = {**sample.CATALOG, "datasets": {k: v for k, v in sample.CATALOG["datasets"].items() if k != "orders"}}
    users = dict(model["datasets"]["users"])
    users["fields"] = {**users["fields"], "created_at": {"category": "basic_info", "anonymize": "truncate_ip"}}
    users["created"] = None
    model["datasets"] = {**model["datasets"], "users": users}
    findings = [str(f) for f in scan(Catalog(CatalogFile.model_validate(model)), {"app_db": engine})]
    assert any("users.created_at: anonymize truncate_ip needs a text column" in f for f in findings), findings
    assert (
        any("users.email: anonymize hmac needs a text column of at least 64 characters" in f for f in findings) is False
    )


def test_scan_of_a_matching_schema_is_clean(engine):
    meta.create_all(engine)
    assert scan(_catalog(), {"app_db": engine}) == []


def _with(**datasets):
    """The scan catalog plus ``datasets`` (name -> dataset mapping)."""
    model = {
        **sample.CATALOG,
        "datasets": {k: v for k, v in sample.CATALOG["datasets"].items() if k != "orders"} | datasets,
    }
    return Catalog(CatalogFile.model_validate(model))


def _create(engine, *statements):
    meta.create_all(engine)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


# ------------------------------------------------------------ personal: false


AUDIT = {"system": "app_db", "table": "audit_events", "primary_key": "id", "personal": False}


def test_a_personal_false_table_needs_no_column_list(engine):
    _create(engine, "CREATE TABLE audit_events (id INTEGER PRIMARY KEY, kind VARCHAR(20), note VARCHAR(200))")
    report = scan_report(_with(audit_events=AUDIT), {"app_db": engine})
    assert report.findings == []
    assert [str(n) for n in report.notes] == [
        "app_db: audit_events: personal: false; columns not classified (informational): kind, note"
    ]


def test_a_personal_false_table_still_has_the_columns_it_names(engine):
    _create(engine, "CREATE TABLE audit_events (id INTEGER PRIMARY KEY, kind VARCHAR(20))")
    audit = {**AUDIT, "created": "logged_at", "fields": {"kind": {"personal": False}}}
    findings = [str(f) for f in scan(_with(audit_events=audit), {"app_db": engine})]
    assert findings == ["app_db: audit_events.logged_at: named by datasets.audit_events.created but not in the table"]


def test_a_personal_false_table_without_subject_needs_no_key(engine):
    _create(engine, "CREATE TABLE audit_events (kind VARCHAR(20), note VARCHAR(200))")
    audit = {k: v for k, v in AUDIT.items() if k != "primary_key"}
    report = scan_report(_with(audit_events=audit), {"app_db": engine})
    assert report.findings == []
    assert [n.columns for n in report.notes] == [("kind", "note")]


# ------------------------------------------------------------ one orderable key column


ORDER_ITEMS = {
    "system": "app_db",
    "table": "order_items",
    "primary_key": "order_id",
    "subject": "user_id -> users.id",
    "category": "transaction_records",
    "fields": {"sku": {}, "line": {"personal": False}, "order_id": {"personal": False}},
}
COMPOSITE = (
    "CREATE TABLE order_items (order_id INTEGER NOT NULL, line INTEGER NOT NULL, user_id INTEGER, "
    "sku VARCHAR(20), PRIMARY KEY (order_id, line))"
)


def test_a_composite_primary_key_is_refused(engine):
    _create(engine, COMPOSITE)
    findings = [str(f) for f in scan(_with(order_items=ORDER_ITEMS), {"app_db": engine})]
    assert findings == [
        "app_db: order_items: primary key is (order_id, line): composite keys are not supported; "
        "add a single-column unique key (a surrogate id) and name it as datasets.order_items.primary_key"
    ]


def test_a_surrogate_unique_key_beside_a_composite_primary_key_is_accepted(engine):
    _create(
        engine,
        COMPOSITE.replace("sku VARCHAR(20),", "sku VARCHAR(20), id INTEGER NOT NULL,"),
        "CREATE UNIQUE INDEX order_items_id ON order_items (id)",
    )
    items = {**ORDER_ITEMS, "primary_key": "id"}
    assert scan(_with(order_items=items), {"app_db": engine}) == []


def test_a_key_that_is_not_unique_is_refused(engine):
    _create(
        engine,
        "CREATE TABLE events (id INTEGER PRIMARY KEY, code VARCHAR(20) NOT NULL, user_id INTEGER, "
        "UNIQUE (code, user_id))",
    )
    events = {
        "system": "app_db",
        "table": "events",
        "primary_key": "code",
        "subject": "user_id -> users.id",
        "category": "access_records",
        "fields": {"id": {"personal": False}},
    }
    findings = [str(f) for f in scan(_with(events=events), {"app_db": engine})]
    assert findings == [
        "app_db: events: primary_key 'code' is not unique in the table; "
        "name the primary key column or a unique column as datasets.events.primary_key"
    ]


def test_a_single_column_unique_constraint_is_a_key_if_not_null(engine):
    _create(
        engine,
        "CREATE TABLE events (seq INTEGER, code VARCHAR(20) NOT NULL UNIQUE, user_id INTEGER, ref VARCHAR(20) UNIQUE)",
    )
    events = {
        "system": "app_db",
        "table": "events",
        "primary_key": "code",
        "subject": "user_id -> users.id",
        "category": "access_records",
        "fields": {"seq": {}, "ref": {}},
    }
    assert scan(_with(events=events), {"app_db": engine}) == []
    findings = [
        str(f)
        for f in scan(
            _with(events={**events, "primary_key": "ref", "fields": {"seq": {}, "code": {}}}), {"app_db": engine}
        )
    ]
    assert findings == [
        "app_db: events.ref: primary_key 'ref' allows NULL, and a row whose key is NULL is in no "
        "key range: make the column NOT NULL or name another"
    ]


def test_a_personal_false_table_s_named_key_is_checked(engine):
    _create(engine, "CREATE TABLE audit_events (id INTEGER, kind VARCHAR(20))")
    findings = [str(f) for f in scan(_with(audit_events=AUDIT), {"app_db": engine})]
    assert findings == [
        "app_db: audit_events: primary_key 'id' is not unique in the table; "
        "name the primary key column or a unique column as datasets.audit_events.primary_key"
    ]
