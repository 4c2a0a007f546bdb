"""The demo generator: deterministic, referentially sound, aged for the demo
configuration, and fully described by catalog.yaml."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from lifecycle.demo import generate, schema
from lifecycle.demo.__main__ import main
from lifecycle.durations import Duration

CONFIG = Path(__file__).resolve().parents[2] / "config" / "lifecycle"
AS_OF = datetime(2026, 11, 26, 12, 0, 0)
USERS = 300


def _yaml(name: str) -> dict:
    return yaml.safe_load((CONFIG / name).read_text(encoding="utf-8"))


def _sqlite(path: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{path}")


def checksums(engine: sa.Engine) -> dict[str, str]:
    """sha256 over every row of every demo table, in key order."""
    out = {}
    with engine.connect() as conn:
        for table in schema.TABLES:
            digest = hashlib.sha256()
            for row in conn.execute(sa.select(table).order_by(table.c.id)):
                digest.update(repr(tuple(row)).encode())
            out[table.name] = digest.hexdigest()
    return out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[sa.Engine, dict[str, int]]:
    engine = _sqlite(tmp_path_factory.mktemp("demo") / "app.db")
    counts = generate.seed(engine, None, None, users=USERS, as_of=AS_OF, seed=0)
    return engine, counts


def _scalar(engine: sa.Engine, query, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(query) if isinstance(query, str) else query, params).scalar()


# ----------------------------------------------------------- determinism


def test_same_arguments_give_identical_rows(seeded, tmp_path):
    engine, counts = seeded
    again = _sqlite(tmp_path / "again.db")
    assert generate.seed(again, None, None, users=USERS, as_of=AS_OF, seed=0, chunk_size=97) == counts
    assert checksums(again) == checksums(engine)


def test_another_seed_gives_other_rows(seeded, tmp_path):
    engine, _ = seeded
    other = _sqlite(tmp_path / "other.db")
    generate.seed(other, None, None, users=USERS, as_of=AS_OF, seed=1)
    assert checksums(other)["users"] != checksums(engine)["users"]


def test_counts_scale_with_users(seeded, tmp_path):
    _, big = seeded
    small = generate.seed(_sqlite(tmp_path / "small.db"), None, None, users=USERS // 4, as_of=AS_OF)
    assert small["users"] == USERS // 4 and big["users"] == USERS
    assert sum(big.values()) > 3 * sum(small.values())
    for table in ("access_logs", "devices", "orders", "chat_messages", "consents"):
        assert big[table] > 2 * small[table], table
    assert sum(big.values()) / USERS > 20  # the bulk: tens of rows per user


def test_counts_match_the_tables(seeded):
    engine, counts = seeded
    for table in schema.TABLES:
        assert _scalar(engine, sa.select(sa.func.count()).select_from(table)) == counts[table.name]


def test_refuses_to_seed_twice(seeded):
    engine, _ = seeded
    with pytest.raises(generate.DemoError, match="--reset"):
        generate.seed(engine, None, None, users=5, as_of=AS_OF)


def test_reset_then_seed(tmp_path):
    engine = _sqlite(tmp_path / "reset.db")
    generate.seed(engine, None, None, users=10, as_of=AS_OF)
    generate.reset(engine)
    assert generate.seed(engine, None, None, users=10, as_of=AS_OF)["users"] == 10


# ------------------------------------------------------ referential sense


def test_every_child_row_has_its_parent(seeded):
    engine, _ = seeded
    for table in schema.TABLES:
        for fk in table.foreign_keys:
            parent = fk.column.table
            orphans = (
                sa.select(sa.func.count())
                .select_from(table.outerjoin(parent, fk.parent == fk.column))
                .where(fk.parent.is_not(None), fk.column.is_(None))
            )
            assert _scalar(engine, orphans) == 0, f"{table.name}.{fk.parent.name} -> {parent.name}"


def test_nothing_predates_its_user_or_follows_as_of(seeded):
    engine, _ = seeded
    u = schema.users
    for table in schema.TABLES:
        stamps = [c for c in table.c if isinstance(c.type, sa.DateTime)]
        for column in stamps:
            assert _scalar(engine, sa.select(sa.func.max(column))) <= AS_OF, column
        if "user_id" in table.c and table is not u:
            created = next(c for c in stamps if c.name in {"created_at", "logged_at", "granted_at", "requested_at"})
            early = (
                sa.select(sa.func.count())
                .select_from(table.join(u, table.c.user_id == u.c.id))
                .where(created < u.c.created_at)
            )
            assert _scalar(engine, early) == 0, table.name
    m, c = schema.chat_messages, schema.conversations
    early = (
        sa.select(sa.func.count())
        .select_from(m.join(c, m.c.conversation_id == c.c.id))
        .where(m.c.sent_at < c.c.created_at)
    )
    assert _scalar(engine, early) == 0


def test_ages_spread_over_five_years(seeded):
    engine, _ = seeded
    oldest = _scalar(engine, sa.select(sa.func.min(schema.users.c.created_at)))
    newest = _scalar(engine, sa.select(sa.func.max(schema.users.c.created_at)))
    assert AS_OF - oldest > timedelta(days=3 * 365) and AS_OF - oldest < timedelta(days=5 * 366)
    assert AS_OF - newest < timedelta(days=14)


def test_people_are_varied(seeded):
    engine, _ = seeded
    u = schema.users
    with engine.connect() as conn:
        countries = dict(conn.execute(sa.select(u.c.country, sa.func.count()).group_by(u.c.country)).all())
        locales = {row[0] for row in conn.execute(sa.select(u.c.locale).distinct())}
        no_email = conn.execute(sa.select(sa.func.count()).where(u.c.email.is_(None))).scalar()
        domains = {row[0].rsplit("@", 1)[1] for row in conn.execute(sa.select(u.c.email).where(u.c.email.is_not(None)))}
        ipv6 = conn.execute(sa.select(sa.func.count()).where(u.c.last_login_ip.like("%:%"))).scalar()
    assert countries["CN"] > USERS / 3 and countries.get("DE", 0) + countries.get("FR", 0) > 0
    assert {"en", "zh-CN"} <= locales
    assert 0 < no_email < USERS / 5
    assert all(
        d == "example.cn" or d.endswith((".example.cn", "example.com", "example.net", "example.org")) for d in domains
    )
    assert ipv6 > 0


# ----------------------------------------------------- the demo's stories


def test_cancellations_pending_withdrawn_and_due(seeded):
    engine, _ = seeded
    grace = Duration.parse(_yaml("cancellation.yaml")["grace_period"])
    cutoff = grace.before(AS_OF)
    t = schema.account_cancellations
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.requested_at, t.c.withdrawn_at)).all()
    withdrawn = [r for r in rows if r.withdrawn_at is not None]
    pending = [r for r in rows if r.withdrawn_at is None and r.requested_at > cutoff]
    due = [r for r in rows if r.withdrawn_at is None and r.requested_at <= cutoff]
    assert withdrawn and pending and due
    assert all(r.requested_at < r.withdrawn_at <= r.requested_at + timedelta(days=15) for r in withdrawn)
    # one request on each side of the grace boundary, an hour away
    assert any(timedelta(0) < cutoff - r.requested_at <= timedelta(hours=1) for r in due)
    assert any(timedelta(0) < r.requested_at - cutoff <= timedelta(hours=1) for r in pending)


def test_consents_active_withdrawn_and_regranted(seeded):
    engine, _ = seeded
    t = schema.consents
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.user_id, t.c.purpose, t.c.withdrawn_at)).all()
    assert {r.purpose for r in rows} >= {"expo_2026", "marketing_email"}
    for purpose in ("expo_2026", "marketing_email"):
        assert any(r.purpose == purpose and r.withdrawn_at is None for r in rows)
        assert any(r.purpose == purpose and r.withdrawn_at is not None for r in rows)


def test_retention_rules_have_work_below_the_guardrail(seeded):
    """Each SQL rule of retention.yaml finds something expired, and less than
    max_fraction_per_run of its dataset, so the demo's first run goes through."""
    engine, _ = seeded
    retention, catalog = _yaml("retention.yaml"), _yaml("catalog.yaml")
    datasets = catalog["datasets"]
    for rule in retention["rules"]:
        applies = rule["applies_to"]
        names = set(applies.get("datasets", []))
        for category in applies.get("categories", []):
            names |= {n for n, d in datasets.items() if d.get("category") == category}
        cutoff = Duration.parse(rule["keep"]).before(AS_OF)
        for name in sorted(n for n in names if "table" in datasets[n] and not _lake(catalog, n)):
            table = schema.metadata.tables[datasets[name]["table"]]
            created = table.c[datasets[name]["created"]]
            total = _scalar(engine, sa.select(sa.func.count()).select_from(table))
            expired = _scalar(engine, sa.select(sa.func.count()).where(created < cutoff))
            assert 0 < expired < retention["max_fraction_per_run"] * total, (rule["name"], name, expired, total)


def test_rows_sit_on_the_retention_boundaries(seeded):
    engine, _ = seeded
    logs = schema.access_logs.c.logged_at
    for boundary in (timedelta(days=180), Duration.parse("6mo").before(AS_OF)):
        at = AS_OF - boundary if isinstance(boundary, timedelta) else boundary
        near = _scalar(
            engine, sa.select(sa.func.count()).where(logs.between(at - timedelta(days=2), at + timedelta(days=2)))
        )
        assert near > 0


def test_demo_holds(seeded):
    engine, _ = seeded
    holds = generate.demo_holds(USERS)
    assert holds == generate.demo_holds(USERS) and len(holds) == 3
    plan = generate.plan(USERS)
    whole = [h for h in holds if h[1] is None]
    assert whole and plan.cancellations[whole[0][0]] == "due"
    catalog = _yaml("catalog.yaml")["datasets"]
    floors = {"orders": "3y", "access_logs": "6mo"}
    for subject, datasets, reason in holds:
        assert 1 <= subject <= USERS and reason
        for name in datasets or []:
            assert name in catalog
            table = schema.metadata.tables[name]
            created = table.c[catalog[name]["created"]]
            cutoff = Duration.parse(floors[name]).before(AS_OF)
            held_old = sa.select(sa.func.count()).where(table.c.user_id == subject, created < cutoff)
            assert _scalar(engine, held_old) > 0, (subject, name)


# ------------------------------------------------------- catalog coverage


def _lake(catalog: dict, dataset: str) -> bool:
    """A dataset of the analytics lake (an Iceberg or Delta system), not of the app's database."""
    return catalog["systems"][catalog["datasets"][dataset]["system"]]["type"] in ("iceberg", "delta")


def test_catalog_names_every_column():
    catalog = _yaml("catalog.yaml")
    subject = catalog["subject"]
    cataloged = {}
    for name, ds in catalog["datasets"].items():
        if "table" not in ds:
            assert "{subject}" in ds["prefix"]
            if ds["system"] == "media":
                assert ds["prefix"].split("/")[0] + "/" in generate.MEDIA_PREFIXES
            continue
        if _lake(catalog, name):  # the analytics lake's tables: tests/demo/test_lake.py
            continue
        table = schema.metadata.tables[ds["table"]]
        structural = {ds["primary_key"], ds.get("created")}
        if ds.get("subject"):
            structural.add(ds["subject"].split("->")[0].strip())
        if name == subject["dataset"]:
            structural.add(subject["key"])
        fields = set(ds.get("fields") or {})
        columns = {c.name for c in table.c}
        assert columns - structural - fields == set(), f"{name}: columns not in catalog.yaml"
        assert fields | (structural - {None}) <= columns, f"{name}: catalog.yaml names columns the table lacks"
        assert not fields & structural, f"{name}: structural columns listed again under fields"
        cataloged[ds["table"]] = name
    assert set(cataloged) == set(schema.metadata.tables), "every demo table is a dataset"


def test_catalog_links_follow_the_foreign_keys():
    catalog = _yaml("catalog.yaml")
    datasets = catalog["datasets"]
    for name, ds in datasets.items():
        if "subject" not in ds or _lake(catalog, name):
            continue
        column, target = (part.strip() for part in ds["subject"].split("->"))
        target_ds, target_col = target.split(".")
        fk = next(iter(schema.metadata.tables[ds["table"]].c[column].foreign_keys))
        assert (fk.column.table.name, fk.column.name) == (datasets[target_ds]["table"], target_col), name


def test_cli_seeds_through_the_airflow_connection(tmp_path, monkeypatch, capsys):
    from lifecycle import connections

    monkeypatch.setenv("AIRFLOW_CONN_APP_DB", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("AIRFLOW_CONN_LIFECYCLE_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    connections.forget()
    try:
        assert main(["seed", "--users", "12", "--as-of", "2026-11-26", "--no-s3"]) == 0
        out = capsys.readouterr().out
        assert "users" in out and " 12" in out and "rows" in out
        holds = next(line for line in out.splitlines() if line.startswith("legal_holds"))
        assert int(holds.split()[-1]) == len({subject for subject, _, _ in generate.demo_holds(12)})
        assert main(["seed", "--users", "12", "--no-s3"]) == 2  # already seeded
        assert main(["seed", "--users", "12", "--no-s3", "--reset"]) == 0
    finally:
        connections.forget()


# --------------------------------------------------------- other engines


def _server_engine(kind: str):
    """A fresh, private schema (PostgreSQL) or database (MariaDB) on loopback, or None."""
    name = f"demo_gen_{uuid.uuid4().hex[:8]}"
    if kind == "postgresql":
        admin = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/test")
        create, drop = f'CREATE SCHEMA "{name}"', f'DROP SCHEMA "{name}" CASCADE'
        url = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
        kwargs = {"connect_args": {"options": f"-csearch_path={name}"}}
    else:
        admin = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/test")
        create, drop = f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4", f"DROP DATABASE `{name}`"
        url, kwargs = f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4", {}
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(create))
    except Exception:
        admin.dispose()
        return None, None

    def cleanup():
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(drop))
        admin.dispose()

    engine = sa.create_engine(url, **kwargs)
    return engine, cleanup


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_same_rows_on_every_engine(kind, tmp_path):
    engine, cleanup = _server_engine(kind)
    if engine is None:
        pytest.skip(f"no {kind} at 127.0.0.1")
    try:
        lite = _sqlite(tmp_path / "lite.db")
        assert generate.seed(engine, None, None, users=40, as_of=AS_OF) == generate.seed(
            lite, None, None, users=40, as_of=AS_OF
        )
        assert checksums(engine) == checksums(lite)
        with engine.begin() as conn:  # the app can still insert: sequences moved past the seeded ids
            new_id = conn.execute(
                schema.users.insert().values(account="new_buyer", locale="en", tier="free", created_at=AS_OF)
            ).inserted_primary_key[0]
        assert new_id == 41
    finally:
        cleanup()


# -------------------------------------------------------------------- S3


def test_media_bucket_is_versioned_with_versions_and_delete_markers(tmp_path):
    from tests.support.s3 import moto_client, moto_server

    bucket = f"t-media-{uuid.uuid4().hex[:8]}"  # moto's state is shared by every server in this process
    with moto_server() as endpoint:
        client = moto_client(endpoint)
        engine = _sqlite(tmp_path / "app.db")
        counts = generate.seed(engine, client, bucket, users=40, as_of=AS_OF)
        assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        versions, markers = [], []
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            versions += page.get("Versions", [])
            markers += page.get("DeleteMarkers", [])
        assert len(versions) == counts["s3_versions"] > counts["s3_objects"] > 0
        assert len(markers) == counts["s3_delete_markers"] > 0
        keys = {v["Key"] for v in versions}
        assert len(keys) == counts["s3_objects"]
        assert {k.split("/")[0] + "/" for k in keys} == set(generate.MEDIA_PREFIXES)
        assert all(1 <= int(k.split("/")[1]) <= 40 for k in keys)
        with engine.connect() as conn:  # every photo flag has its object, and no object lacks its flag
            photos = {
                f"inquiries/{u}/{i}.jpg"
                for i, u in conn.execute(
                    sa.select(schema.inquiries.c.id, schema.inquiries.c.user_id).where(schema.inquiries.c.has_photo)
                )
            }
        assert photos == {k for k in keys if k.startswith("inquiries/")}
        # a user due for erasure has objects under every prefix
        due = sorted(u for u, s in generate.plan(40).cancellations.items() if s.startswith("due"))
        for prefix in generate.MEDIA_PREFIXES:
            assert any(k.startswith(f"{prefix}{due[0]}/") for k in keys), prefix

        generate.reset(engine, client, bucket)
        left = client.list_object_versions(Bucket=bucket)
        assert not left.get("Versions") and not left.get("DeleteMarkers")
