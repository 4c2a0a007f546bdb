"""The one JSON form of generated documents (manifests are signed over its bytes)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser

import jinja2
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


class _Page(HTMLParser):
    """A rendered page as a reader sees it: its title, headings, and table rows as cell texts
    (each cell with its class)."""

    def __init__(self, html: str):
        super().__init__()
        self.title, self.headings, self.rows, self.paragraphs = "", [], [], []
        self._text: list[str] | None = None
        self._cell_class = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag in ("title", "h1", "h2", "td", "th", "p"):
            self._text, self._cell_class = [], dict(attrs).get("class")
        if tag == "tr":
            self.rows.append([])

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if self._text is None or tag not in ("title", "h1", "h2", "td", "th", "p"):
            return
        text, self._text = "".join(self._text).strip(), None
        if tag == "title":
            self.title = text
        elif tag in ("h1", "h2"):
            self.headings.append(text)
        elif tag == "p":
            self.paragraphs.append(text)
        else:
            self.rows[-1].append((text, self._cell_class))

    def texts(self) -> list[list[str]]:
        return [[text for text, _ in row] for row in self.rows]


CANCELLATION = {
    "report": "cancellation erasure",
    "run_id": "scheduled__2026-06-01T00:00:00+00:00",
    "as_of": "2026-06-01T00:00:00+00:00",
    "states": {"pending": 4, "done": 2, "failed": 1},
    "notices": {"erasure_completed": {"sent": 2, "uncertain": 1}, "erasure_scheduled": {"sent": 4}},
    "completed_this_run": 2,
    "certificates": ["certificates/2026-06-01/batch-1.json"],
    "overdue": [{"subject": "ab" * 32, "state": "failed", "deadline": "2026-05-31T00:00:00+00:00"}],
    "complete_within": "30d",
}


def test_the_cancellation_report_shows_each_section_with_the_documents_values():
    html = reports.render("cancellation_report.html.j2", report=CANCELLATION)
    page = _Page(html)

    assert page.title == "Cancellation erasure 2026-06-01"
    assert page.headings == ["Erasure after account cancellation", "Requests by state", "Notices", "Past the deadline"]
    assert page.paragraphs[0] == (
        "Run scheduled__2026-06-01T00:00:00+00:00, as of 2026-06-01T00:00:00+00:00. "
        "Requests must be completed within 30d."
    )
    rows = page.texts()
    states = rows[rows.index(["state", "subjects"]) + 1 :][:3]
    assert states == [["done", "2"], ["failed", "1"], ["pending", "4"]], "every state with its count, sorted"
    notices = rows[rows.index(["notice", "status", "people"]) + 1 :][:3]
    assert notices == [
        ["erasure_completed", "sent", "2"],
        ["erasure_completed", "uncertain", "1"],
        ["erasure_scheduled", "sent", "4"],
    ]
    status_classes = {row[1] for row in page.rows if row and row[0][0] == "erasure_completed"}
    assert status_classes == {("sent", None), ("uncertain", "fail")}, "only a notice in doubt is marked"
    assert "Completed in this run: 2; certificates:" in page.paragraphs
    assert "<code>certificates/2026-06-01/batch-1.json</code>" in html
    overdue = rows[rows.index(["subject (keyed hash)", "state", "deadline"]) + 1]
    assert overdue == ["abababababababab…", "failed", "2026-05-31T00:00:00+00:00"]
    assert "ab" * 32 not in html, "a subject's keyed hash is shortened on the page"
    assert "None." not in page.paragraphs


def test_a_report_without_overdue_requests_says_none():
    page = _Page(reports.render("cancellation_report.html.j2", report=CANCELLATION | {"overdue": []}))
    assert "None." in page.paragraphs
    assert ["subject (keyed hash)", "state", "deadline"] not in page.texts()


def test_values_are_escaped_in_html_and_read_back_as_written():
    run_id = 'manual__<script>alert("x")</script>&amp;'
    html = reports.render("cancellation_report.html.j2", report=CANCELLATION | {"run_id": run_id})
    assert "<script>" not in html
    assert "manual__&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;amp;" in html
    assert _Page(html).paragraphs[0].startswith(f"Run {run_id}, as of")


def test_a_value_the_template_needs_and_the_document_lacks_is_refused():
    document = {k: v for k, v in CANCELLATION.items() if k != "complete_within"}
    with pytest.raises(jinja2.UndefinedError, match="complete_within"):
        reports.render("cancellation_report.html.j2", report=document)
