"""Discovery: detectors measured on a generated corpus (precision and recall per kind), the
suggestion scan on every backend through the store's ``Sampling`` ability, its YAML patch (no
values, catalog.yaml untouched) and ``scan --suggest`` on the command line."""

from collections import Counter
from datetime import date

import pytest
import sqlalchemy as sa
import yaml

from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.cli import main
from lifecycle.discovery import patch, report
from lifecycle.discovery.coverage import suggest
from lifecycle.discovery.detectors import DETECTORS, NAME_CUES, iso7064_mod11_2
from lifecycle.discovery.verdicts import category_for, detectors_at, judge, strategy_for
from lifecycle.stores.sql import SqlStore
from tests.config import sample
from tests.stores.test_sql import meta
from tests.support import pii_corpus
from tests.test_cli import setup  # noqa: F401 (a fixture)

AS_OF = date(2026, 12, 8)


def confusion() -> Counter:
    """(truth, verdict) -> columns, over the generated corpus."""
    detectors = detectors_at(AS_OF)
    found: Counter = Counter()
    for truth, values in pii_corpus.corpus(columns_per_kind=12, values=200):
        found[(truth, judge("t", "c", values, detectors).kind)] += 1
    return found


def test_each_kind_is_found_with_precision_and_recall_on_the_generated_corpus():
    table = confusion()
    for kind in pii_corpus.KNOWN:
        true_positive = table[(kind, kind)]
        said = sum(n for (_, verdict), n in table.items() if verdict == kind)
        actual = sum(n for (truth, _), n in table.items() if truth == kind)
        assert said and true_positive / said >= 0.95, (kind, "precision", table)
        assert true_positive / actual >= 0.9, (kind, "recall", table)
    for name in pii_corpus.LOOK_ALIKES:
        assert table[(f"look-alike:{name}", None)] >= 11, (name, table)


def test_detectors_check_more_than_the_pattern():
    by_name = {d.name: d for d in DETECTORS}
    body = "11010519491231002"
    assert iso7064_mod11_2(body) == "X"
    assert by_name["prc_resident_id"].matches(body + "X")
    assert not by_name["prc_resident_id"].matches(body + "3"), "a wrong check character"
    assert not by_name["prc_resident_id"].matches("110105" + "19491331" + "002" + "X"), "no 31st of the 13th month"
    assert by_name["payment_card"].matches("4111 1111 1111 1111")
    assert not by_name["payment_card"].matches("4111 1111 1111 1112"), "Luhn"
    assert not by_name["payment_card"].matches("9111 1111 1111 1116"), "no issuer starts with 9"
    assert by_name["imei"].matches("490154203237518") and not by_name["imei"].matches("490154203237519")
    assert by_name["phone"].matches("+86 138 0013 8000")
    assert not by_name["phone"].matches("+86 000 0000 0000"), "not in China's numbering plan"
    assert not by_name["phone"].matches("13800138000"), "bare digits: as likely an order number"
    assert not by_name["email"].matches("a@b"), "a domain needs a dot and a top-level label"
    assert by_name["ipv6"].matches("2001:db8::1") and not by_name["ipv6"].matches("00:1a:2b:3c:4d:5e")
    assert by_name["mac_address"].matches("00:1a:2b:3c:4d:5e") and not by_name["mac_address"].matches(
        "00:00:00:00:00:00"
    )
    assert detectors_at(AS_OF)[8].matches("1990-05-17") and not detectors_at(AS_OF)[8].matches("2020-05-17")
    text = by_name["free_text"]
    assert text.matches("please call me on +86 138 0013 8000 after five")
    assert not text.matches("order SO1234567890 of sku AX-1234-XL shipped, v1.2.3.4")


def test_column_names_tell_names_addresses_and_passwords():
    def cue(table, column):
        return next((c.kind for c in NAME_CUES if c.names(table, column)), None)

    assert cue("customers", "first_name") == "person_name" and cue("users", "name") == "person_name"
    assert cue("products", "name") is None, "a bare name is a person's only in a table of people"
    assert cue("orders", "shipping_address") == "postal_address" and cue("devices", "mac_address") is None
    assert cue("users", "ip_address") is None and cue("users", "password_hash") == "password"


def test_categories_come_from_the_catalogs_vocabulary_and_strategies_fit():
    categories = CatalogFile.model_validate(sample.CATALOG).categories
    assert category_for("email", categories) == "basic_info"
    assert category_for("ip_address", categories) == "network_identification"
    assert category_for("password", categories) == "credentials"
    assert category_for("payment_card", categories) == "transaction_records"
    assert category_for("imei", categories) == "network_identification", "no device category: the next word"
    assert category_for("free_text", categories) == "free_text", "no word matches: the kind, to be added"
    assert category_for("imei", categories, {"imei": "basic_info"}) == "basic_info"
    assert strategy_for("email", ("null", "redact"), True) == "redact", "hmac needs 64 characters"
    assert strategy_for("phone", ("null", "redact"), False) == "redact", "NOT NULL: not null"
    assert strategy_for("date_of_birth", ("null", "generalize_date"), True) == {
        "strategy": "generalize_date",
        "to": "year",
    }


def _catalog():
    model = dict(sample.CATALOG, datasets={k: v for k, v in sample.CATALOG["datasets"].items() if k != "orders"})
    return Catalog(CatalogFile.model_validate(model))


EMAILS = [f"person{i}@example.com" for i in range(60)]


def _world(engine):
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE users ADD COLUMN mobile VARCHAR(40)"))
        conn.execute(sa.text("ALTER TABLE users ADD COLUMN shoe_size INTEGER"))
        conn.execute(
            sa.text("CREATE TABLE audit_trail (id INTEGER PRIMARY KEY, client_ip VARCHAR(45), note VARCHAR(40))")
        )
        for i, address in enumerate(EMAILS):
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, email, name, tier, mobile, shoe_size) VALUES (:i, :e, 'P', :t, :m, :s)"
                ),
                {"i": i, "e": address, "t": address, "m": f"+86 138 0013 {8000 + i}", "s": 36 + i % 10},
            )
            conn.execute(
                sa.text("INSERT INTO audit_trail (id, client_ip, note) VALUES (:i, :ip, 'login')"),
                {"i": i, "ip": f"10.0.{i}.7"},
            )


def test_suggest_samples_unclassified_and_flags_personal_false_on_every_backend(engine, tmp_path):
    _world(engine)
    catalog = _catalog()
    store = SqlStore(engine, catalog, "app_db")
    coverage = suggest(catalog, lambda system: store, as_of=AS_OF, sample_size=50)
    found = {(c.table, c.column): c for c in coverage.columns}
    assert found[("users", "mobile")].verdict.kind == "phone" and found[("users", "mobile")].suggested
    assert found[("users", "mobile")].verdict.sampled == 50, "bounded by the sample size"
    assert found[("users", "shoe_size")].verdict.kind is None
    assert found[("users", "tier")].flagged and found[("users", "tier")].verdict.kind == "email"
    assert found[("audit_trail", "client_ip")].verdict.kind == "ip_address"
    assert found[("audit_trail", "client_ip")].category == "network_identification"
    assert ("users", "email") not in found, "classified columns are not sampled"
    counts = coverage.systems["app_db"]
    assert counts["tables_not_in_catalog"] == 1 and counts["flagged"] == 1
    assert counts["unclassified"] == 5 and counts["suggested"] == 2, counts  # mobile, audit_trail.client_ip

    text = patch.render(coverage, catalog.model.categories)
    written = yaml.safe_load(text)
    assert written["datasets"]["users"]["fields"]["mobile"] == {"category": "basic_info", "anonymize": "null"}
    assert written["datasets"]["users"]["fields"]["shoe_size"] == {"personal": False}
    assert written["datasets"]["audit_trail"]["table"] == "audit_trail"
    assert "FLAGGED: marked personal: false" in text and "phone: phone accepted 100% of 50 sampled value(s)" in text
    assert not any(value in text for value in EMAILS + ["+86 138", "10.0."]), "no sampled value in the patch"
    summary = str(coverage.summary())
    assert not any(value in summary for value in EMAILS[:3] + ["+86 138", "10.0."])


def test_the_check_keeps_its_result_and_fails_with_the_list(engine, tmp_path):
    _world(engine)
    catalog = _catalog()
    store = SqlStore(engine, catalog, "app_db")

    class Sink:
        def __init__(self):
            self.written = {}

        def write(self, key, data, *, content_type):
            self.written[key] = data

        def read(self, key):
            return self.written[key]

    sink = Sink()
    with pytest.raises(Exception, match=r"5 column\(s\) not classified and 1 personal: false") as failed:
        report.check(catalog, sink, as_of=AS_OF, sample_size=20, open_store=lambda system: store)
    assert "person0@" not in str(failed.value)
    kept = report.last_coverage(sink)
    assert kept["systems"]["app_db"]["flagged"] == 1 and kept["as_of"] == "2026-12-08"


def test_scan_suggest_writes_the_patch_and_leaves_the_catalog_alone(setup, capsys):  # noqa: F811
    args, tmp = setup
    app = sa.create_engine(f"sqlite:///{tmp / 'app.db'}")
    with app.begin() as conn:
        conn.execute(sa.text("ALTER TABLE users ADD COLUMN mobile VARCHAR(40)"))
        for i in range(30):
            conn.execute(
                sa.text("INSERT INTO users (id, email, tier, mobile) VALUES (:i, :e, 'gold', :m)"),
                {"i": i, "e": f"p{i}@example.com", "m": f"+86 139 1234 {5600 + i}"},
            )
    app.dispose()
    catalog_file = tmp / "config" / "catalog.yaml"
    before = catalog_file.read_bytes()
    out = tmp / "suggested.yaml"
    assert main(args + ["scan", "--suggest", "--sample", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "app_db: users.mobile: not classified (phone: phone accepted 100% of 20 sampled value(s)" in printed
    assert f"patch written to {out}" in printed and "+86" not in printed and "+86" not in out.read_text()
    assert yaml.safe_load(out.read_text())["datasets"]["users"]["fields"]["mobile"]["category"] == "basic_info"
    assert catalog_file.read_bytes() == before


def test_scan_suggest_refuses_a_bad_option(setup, capsys):  # noqa: F811
    args, _ = setup
    with pytest.raises(SystemExit):
        main(args + ["scan", "--suggest", "--sample", "lots"])
    assert "--sample 'lots': a number of rows from 1 to 100000" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ["scan", "--suggest", "--category", "email"])
    assert "write KIND=CATEGORY" in capsys.readouterr().err


def test_a_name_alone_does_not_flag_a_personal_false_column(engine):
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE users ADD COLUMN first_name VARCHAR(40)"))
        conn.execute(sa.text("INSERT INTO users (id, tier, first_name) VALUES (1, 'gold', 'gold')"))
    model = dict(sample.CATALOG, datasets={k: v for k, v in sample.CATALOG["datasets"].items() if k != "orders"})
    users = dict(model["datasets"]["users"])
    users["fields"] = {**users["fields"], "first_name": {"personal": False}}
    catalog = Catalog(CatalogFile.model_validate({**model, "datasets": {**model["datasets"], "users": users}}))
    store = SqlStore(engine, catalog, "app_db")
    found = {c.column: c for c in suggest(catalog, lambda s: store, as_of=AS_OF, sample_size=10).columns}
    assert found["first_name"].verdict.kind == "person_name" and not found["first_name"].flagged


def test_suggest_samples_the_sql_systems_and_leaves_lake_tables_to_scan(engine, tmp_path):
    """A lake system (Iceberg, Delta) has no sampling: its columns are compared by ``scan``, and
    discovery goes on over the SQL systems."""
    _world(engine)
    model = dict(sample.CATALOG, datasets={k: v for k, v in sample.CATALOG["datasets"].items() if k != "orders"})
    model["systems"] = {
        **model["systems"],
        "lake": {"type": "delta", "location": str(tmp_path / "delta"), "purge_after": "0"},
    }
    model["datasets"] = {
        **model["datasets"],
        "clicks": {"system": "lake", "table": "clicks", "primary_key": "id", "subject": "user_id -> users.id"},
    }
    catalog = Catalog(CatalogFile.model_validate(model))
    store = SqlStore(engine, catalog, "app_db")

    def open_store(system):
        assert system == "app_db", f"discovery opened {system!r}"
        return store

    coverage = suggest(catalog, open_store, as_of=AS_OF, sample_size=10)
    assert set(coverage.systems) == {"app_db"}
    assert ("users", "mobile") in {(c.table, c.column) for c in coverage.columns}
