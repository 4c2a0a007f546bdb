"""The reports destination read back from S3 (moto over HTTP): keys under the prefix, relative."""

from __future__ import annotations

import copy

import pytest

from lifecycle.config import load_config
from lifecycle.reports import ReportSink
from lifecycle.view import documents
from tests.config import sample


@pytest.fixture
def sink(s3_store, s3_conn_id, tmp_path):
    """The sink of a catalog whose reports go to ``s3_store``'s bucket under a prefix, through its connection."""
    files = copy.deepcopy(sample.FILES)
    catalog = files["catalog.yaml"]
    catalog["systems"]["reports_s3"] = {"type": "s3", "conn_id": s3_conn_id, "bucket": s3_store.bucket}
    catalog["reports"] = {"system": "reports_s3", "prefix": "lifecycle/"}
    return ReportSink(load_config(sample.write(tmp_path / "config", files)).catalog)


def test_keys_and_read_on_s3(sink, s3_store):
    written = sink.write("certificates/a.html", b"<p>a</p>", content_type="text/html")
    assert written.location == f"s3://{s3_store.bucket}/lifecycle/certificates/a.html"
    assert s3_store.get_bytes("lifecycle/certificates/a.html") == b"<p>a</p>", (
        "under the prefix, in the catalog's bucket"
    )
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
