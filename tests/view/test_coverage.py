"""The Coverage page: the last check's discovery result, per system, for the roles that see everything."""

from __future__ import annotations

import json
from datetime import date

import pytest

from lifecycle.discovery.coverage import ColumnVerdict, Coverage
from lifecycle.discovery.report import COVERAGE_KEY
from lifecycle.discovery.verdicts import Verdict
from tests.view.test_routes import client  # noqa: F401 (a fixture)

ENGINEER, RESPONDER = {"Authorization": "Bearer engineer"}, {"Authorization": "Bearer responder"}


def _result() -> Coverage:
    result = Coverage(date(2026, 12, 8), 1000)
    result.systems["app_db"] = {
        "tables": 12,
        "tables_not_in_catalog": 1,
        "classified": 70,
        "not_personal": 9,
        "unclassified": 2,
        "suggested": 1,
        "flagged": 1,
    }
    result.columns = [
        ColumnVerdict(
            "app_db",
            "users",
            "users",
            "mobile",
            "unclassified",
            Verdict("phone", "phone", 990, 1000),
            "basic_info",
            "null",
        ),
        ColumnVerdict("app_db", "users", "users", "notes", "not_personal", Verdict("email", "email", 870, 1000)),
        ColumnVerdict("app_db", "audit", None, "shoe_size", "unclassified", Verdict(None, None, 0, 1000)),
        ColumnVerdict("app_db", "users", "users", "tier", "not_personal", Verdict(None, None, 0, 1000)),
    ]
    return result


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_coverage_shows_counts_and_the_columns_to_review(client, world):  # noqa: F811
    empty = client.get("/privacy/coverage", headers=ENGINEER)
    assert empty.status_code == 200 and "No discovery result yet" in empty.text
    world.write(COVERAGE_KEY, json.dumps(_result().summary()))
    page = client.get("/privacy/coverage", headers=ENGINEER).text
    assert "From the check of 2026-12-08" in page
    assert "flagged: marked personal: false" in page and "notes" in page
    assert "99% of 1000" in page and "basic_info" in page and "shoe_size" in page
    assert ">tier<" not in page, "a personal: false column that looks like nothing is not listed"
    assert page.index("notes") < page.index("mobile"), "flagged columns first"
    assert client.get("/privacy/coverage", headers=RESPONDER).status_code == 403
    assert client.get("/privacy/coverage").status_code == 401
