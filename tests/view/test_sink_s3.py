"""The reports destination read back from S3 (moto over HTTP): keys under the prefix, relative."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lifecycle.catalog.models import Reports
from lifecycle.reports import ReportSink
from lifecycle.view import documents


@pytest.fixture
def sink(s3_store):
    sink = ReportSink.__new__(ReportSink)
    sink.reports, sink.catalog, sink._made = Reports(system="reports_s3", prefix="lifecycle/"), SimpleNamespace(), set()
    sink.__dict__["_store"] = s3_store  # what open_store(catalog, "reports_s3") returns
    return sink


def test_keys_and_read_on_s3(sink, s3_store):
    sink.write("certificates/a.html", b"<p>a</p>", content_type="text/html")
    sink.write("incidents/I/r/preview/email.en.txt", b"Dear customer", content_type="text/plain")
    s3_store.put_bytes("elsewhere/b.html", b"not ours", content_type="text/html")
    assert sink.keys() == ["certificates/a.html", "incidents/I/r/preview/email.en.txt"]
    assert sink.keys("incidents/") == ["incidents/I/r/preview/email.en.txt"]
    assert sink.read("certificates/a.html") == b"<p>a</p>"
    assert documents.existing(sink, "certificates/a.html") == "certificates/a.html"
    with pytest.raises(documents.BadKey):
        documents.existing(sink, "certificates/../elsewhere/b.html")
    folders = documents.folders(sink, "incidents", contact_lists=False)
    assert [f.folder for f in folders] == ["incidents/I/r/preview"]
