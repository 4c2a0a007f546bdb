"""scan: the catalog against a live schema, on every backend."""

import sqlalchemy as sa

from lifecycle.catalog import Catalog
from lifecycle.config.models import CatalogFile
from lifecycle.scan import scan
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
    assert findings == ["app_db: access_logs.user_agent: named by datasets.access_logs.fields.user_agent but not in the table"]


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
    assert any("users.email: anonymize hmac needs a text column of at least 64 characters" in f for f in findings) is False


def test_scan_of_a_matching_schema_is_clean(engine):
    meta.create_all(engine)
    assert scan(_catalog(), {"app_db": engine}) == []
