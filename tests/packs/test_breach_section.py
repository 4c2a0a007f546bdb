"""The pack's breach register: an incident the responders decided not to notify is in it, with its
reason, beside a notified one; the pack still checks out."""

from __future__ import annotations

import json

import pytest

from lifecycle.packs import build_pack, verify_pack
from tests.incident.test_incident import world as world  # the fixture: app database, bucket, mail sink
from tests.packs.test_packs import NOVEMBER
from tests.registers.test_breaches import QUIET, REASON, _incidents


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_the_breach_register_of_the_pack_holds_the_not_notified_incident_and_its_reason(world, tmp_path, monkeypatch):
    config, engine, state, store, sink = world
    monkeypatch.setenv("LIFECYCLE_VAR_DIR", str(tmp_path / "var"))  # checkpoints: none but this test's
    _incidents(config, engine, state, store, sink)
    build_pack(config, state, NOVEMBER.start, NOVEMBER.end, tmp_path / "pack")
    register = json.loads((tmp_path / "pack" / "records" / "breach_register.json").read_bytes())
    quiet = next(i for i in register["incidents"] if i["incident_id"] == QUIET)
    assert quiet["decision"]["decision"] == "not_notify" and quiet["decision"]["reason"] == REASON
    assert len(register["incidents"]) == 2 and REASON in (tmp_path / "pack/records/breach_register.html").read_text()
    assert verify_pack(config, NOVEMBER, tmp_path / "pack").ok
