"""``init --from``: the demo database, with its catalog removed, becomes a configuration that
validates, scans clean, and whose categories match the demo catalog's for ≥ 90 % of its personal columns."""

from datetime import datetime

import pytest
import sqlalchemy as sa

from lifecycle import connections
from lifecycle.cli import main
from lifecycle.config import load_config
from lifecycle.demo import generate

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
        for f in demo.personal_fields(name)
    ]
    matched = sum(want == have for want, have in pairs)
    assert matched / len(pairs) >= 0.9, (matched, len(pairs))
    assert main(["init", "--from", "app_db", "--out", str(folder)]) == 1, "an existing catalog.yaml is left alone"
    assert "exists" in capsys.readouterr().err
