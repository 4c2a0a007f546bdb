"""``init --from``: the demo database, with its catalog removed, becomes a configuration that
validates, scans clean, and whose categories match the demo catalog's for ≥ 90 % of its personal columns."""

from datetime import datetime

import pytest
import sqlalchemy as sa

from lifecycle import connections
from lifecycle.cli import main
from lifecycle.config import load_config
from lifecycle.demo import generate
from lifecycle.discovery.defaults import FILES
from tests.support import sample_app

AS_OF = datetime(2026, 12, 1)


@pytest.fixture
def demo_db(tmp_path, monkeypatch):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    generate.seed(engine, None, None, users=120, as_of=AS_OF, seed=0)
    with engine.connect() as conn:
        emails = [row[0] for row in conn.execute(sa.text("SELECT email FROM users WHERE email IS NOT NULL LIMIT 5"))]
    engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_APP_DB", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("AIRFLOW_CONN_LIFECYCLE_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    connections.forget()
    yield tmp_path, emails
    connections.forget()


def test_init_scaffolds_a_configuration_that_validates_and_matches_the_demo(demo_db, capsys):
    tmp, emails = demo_db
    folder = tmp / "config"
    assert main(["init", "--from", "app_db", "--out", str(folder), "--sample", "300"]) == 0
    text = (folder / "catalog.yaml").read_text()
    assert not any(e in text for e in emails), "no sampled value in the scaffold"
    assert main(["--config", str(folder), "validate"]) == 0
    assert main(["--config", str(folder), "scan"]) == 0, capsys.readouterr().out
    got = load_config(folder).catalog
    demo = load_config().catalog
    assert got.subject.dataset == "users" and got.dataset("devices").subject.dataset == "users"
    assert str(got.dataset("chat_messages").subject) == "conversation_id -> conversations.id"
    pairs = [
        (f.category, {g.column: g.category for g in got.personal_fields(name)}.get(f.column))
        for name in demo.table_datasets
        if demo.system_of(name).type == "sql"  # the lake's tables are not in the database init reads
        for f in demo.personal_fields(name)
    ]
    matched = sum(want == have for want, have in pairs)
    assert matched / len(pairs) >= 0.9, (matched, len(pairs))
    written = load_config(folder)
    demo_config = load_config()
    assert written.cancellation.requests == demo_config.cancellation.requests, "the demo's cancellations table"
    assert written.cancellation.schedule is None, "no erasure runs before someone sets a schedule"
    assert written.requests.intake.requests == demo_config.requests.intake.requests, "the demo's requests table"
    assert (
        written.requests.intake.schedule is None and not written.retention.rules and not written.recipients.recipients
    )
    for name in FILES:
        lines = (folder / name).read_text().splitlines()
        assert lines[0].startswith(f"# {name}: ") and "docs/configuration.md" in lines[0] + lines[1], name
        assert sum("#" in line for line in lines) >= 4, f"{name} says what to edit"
    assert main(["init", "--from", "app_db", "--out", str(folder)]) == 1, "an existing catalog.yaml is left alone"
    assert "exists" in capsys.readouterr().err


def test_init_without_a_table_of_cancellations_leaves_cancellation_yaml_out_and_says_why(
    engine, connect, tmp_path, capsys
):
    """A schema with no cancellations and no requests table (the sample app), on each backend."""
    own = [
        sample_app.users,
        sample_app.access_logs,
        sample_app.conversations,
        sample_app.chat_messages,
        sample_app.orders,
    ]
    sample_app.meta.create_all(engine, tables=own)  # not the tables other test modules add to the shared metadata
    with engine.begin() as conn:
        conn.execute(sample_app.users.insert(), [{"id": n, "email": f"p{n}@mail.example"} for n in range(1, 21)])
    connect("sample_app", engine.url)
    connect("lifecycle_state", sa.URL.create("sqlite", database=str(tmp_path / "state.db")))
    folder = tmp_path / "config"
    assert main(["init", "--from", "sample_app", "--out", str(folder), "--sample", "50"]) == 0
    out = capsys.readouterr().out
    assert "not written: cancellation.yaml: no table of account cancellations found" in out
    assert sorted(p.name for p in folder.iterdir()) == sorted({"catalog.yaml", *FILES} - {"cancellation.yaml"})
    assert main(["--config", str(folder), "validate"]) == 0, capsys.readouterr()
    config = load_config(folder)
    assert config.cancellation is None and config.requests.intake is None
    assert "# intake:" in (folder / "requests.yaml").read_text()
