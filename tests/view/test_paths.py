"""Keys from a URL never reach the filesystem unchecked: form first, then the destination's listing."""

from __future__ import annotations

import os

import pytest

from lifecycle.view import documents

BAD = [
    "",
    "../state.db",
    "retention/../../state.db",
    "retention/./x",
    "/etc/passwd",
    "retention//x",
    "retention\\..\\x",
    "s3://bucket/retention/x",
    "retention/x\x00.html",
    "state.db",
    "mail/1.eml",
    "retention",
    "x" * 2000,
]


@pytest.mark.parametrize("key", BAD, ids=range(len(BAD)))
def test_malformed_or_foreign_keys_are_refused(key):
    with pytest.raises(documents.BadKey):
        documents.checked_form(key)


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_only_listed_keys_open_and_links_out_of_the_folder_are_not_listed(world, tmp_path):
    assert documents.existing(world.sink, "certificates/abc.html") == "certificates/abc.html"
    with pytest.raises(documents.BadKey, match="no such document"):
        documents.existing(world.sink, "certificates/missing.html")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    os.symlink(secret, tmp_path / "reports" / "certificates" / "link.html")
    assert "certificates/link.html" not in world.sink.keys("certificates/")
    with pytest.raises(documents.BadKey):
        documents.existing(world.sink, "certificates/link.html")
