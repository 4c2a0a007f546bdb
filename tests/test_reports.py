"""The one JSON form of generated documents (manifests are signed over its bytes)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from lifecycle import reports

DOCUMENTS = [
    {},
    {"empty list": [], "empty object": {}, "nested": {"a": [[], {}, [{}]], "b": {"c": {"d": []}}}},
    {"text": "ünïcode 日本語 \u2028 \u2029 😀", "escapes": 'quote" backslash\\ newline\n tab\t bell\x07 del\x7f'},
    {"numbers": [0, -1, 2**70, 0.1, -0.0, 1e16, 1.5e-7, 123456789.123], "flags": [True, False, None]},
    {"when": datetime(2026, 11, 26, 7, 30, tzinfo=UTC), "day": date(2026, 11, 26), "amount": Decimal("12.50")},
    {"z": 1, "a": {"y": 2, "b": [3, {"x": 4, "c": 5}]}, "m": "keys sorted at every depth"},
    {
        "rows": [
            {"dataset": f"table_{n}", "deleted": n, "retained": None if n % 2 else {"why": "statute", "locks": []}}
            for n in range(20)
        ],
        "ledger_entries": ["ab" * 32] * 5,
    },
]


@pytest.mark.parametrize("document", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_canonical_is_the_standard_librarys_indented_sorted_form_byte_for_byte(document):
    expected = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    assert reports.canonical(document) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_canonical_refuses_what_is_not_json(value):
    with pytest.raises(ValueError, match="not JSON compliant"):
        reports.canonical({"figure": value})


def test_report_writer_writes_json_and_html_and_ledgers_their_hashes(tmp_path):
    import hashlib
    from types import SimpleNamespace

    import sqlalchemy as sa

    from lifecycle.catalog.models import Evidence, Reports
    from lifecycle.state import StateStore

    catalog = SimpleNamespace(
        model=SimpleNamespace(reports=Reports(path=str(tmp_path / "reports")), evidence=Evidence())
    )
    state = StateStore(sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}"))
    document = {
        "report": "cancellation erasure",
        "run_id": "manual/1",
        "as_of": "2026-06-01T00:00:00+00:00",
        "states": {"done": 2},
        "notices": {},
        "completed_this_run": 2,
        "certificates": [],
        "overdue": [],
        "complete_within": "30d",
    }
    name = f"cancellation/2026-06-01/{reports.safe_name('manual/1')}/report"
    written = reports.ReportWriter(catalog, state.ledger).write(
        name, document, template="cancellation_report.html.j2", kind="erasure.report", run_id="manual/1"
    )
    assert written.json.location == str(tmp_path / "reports" / "cancellation/2026-06-01/manual_1/report.json")
    stored = json.loads(open(written.json.location).read())
    assert {k: v for k, v in stored.items() if k != "attestation"} == document
    assert stored["attestation"]["kind"] == "erasure.report"
    assert "cancellation" in open(written.html.location).read().lower() and written.pdf is None
    (entry,) = state.ledger.entries(kind="erasure.report")
    for part in ("json", "html"):
        path = entry.payload[part]
        assert entry.payload[f"{part}_sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
