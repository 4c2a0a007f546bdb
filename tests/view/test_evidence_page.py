"""The Evidence page: each evidence pack with its period, build, deliveries and what the verifier
finds now; each ledger checkpoint with its status; for the roles that see everything."""

from __future__ import annotations

from datetime import date

import pytest

from lifecycle import checkpoints
from lifecycle.packs import build_pack
from tests.view.test_routes import client  # noqa: F401 (a fixture)

ENGINEER, RESPONDER = {"Authorization": "Bearer engineer"}, {"Authorization": "Bearer responder"}


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_the_evidence_page_lists_packs_and_checkpoints_with_what_the_verifier_finds(client, world, tmp_path):  # noqa: F811
    empty = client.get("/privacy/evidence", headers=ENGINEER)
    assert empty.status_code == 200 and "No pack yet" in empty.text and "No checkpoint yet" in empty.text
    world.state.ledger.append("test.entry", {"n": 1}, key="test:1")
    checkpoints.publish(
        world.config.catalog, world.state.ledger, time="2026-11-20T00:00:00+00:00", dag_id="d", run_id="r"
    )
    build_pack(world.config, world.state, date(2026, 11, 1), date(2026, 11, 30))
    page = client.get("/privacy/evidence", headers=ENGINEER).text
    assert "2026-11-01 – 2026-11-30" in page and "verified" in page and "nobody yet" in page
    assert "packs/2026-11-01_2026-11-30/" in page and "not recorded" not in page, "the build's ledger entry"
    assert "signed, and the ledger extends it" in page

    pack = tmp_path / "evidence" / "packs" / "2026-11-01_2026-11-30"
    (pack / "records" / "sharing_register.json").write_text("{}")
    page = client.get("/privacy/evidence", headers=ENGINEER).text
    assert "FAILED: records/sharing_register.json: does not hash" in page
    assert client.get("/privacy/evidence", headers=RESPONDER).status_code == 403
    assert client.get("/privacy/evidence").status_code == 401
