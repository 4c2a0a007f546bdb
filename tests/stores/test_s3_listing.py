"""Listing the prefixes of a batch of people side by side (moto in server mode over HTTP):
everything under every prefix, at most ``list_concurrency`` at once, and all or nothing."""

from __future__ import annotations

import threading
import time

import pytest

from lifecycle.catalog import Catalog
from lifecycle.catalog.models import CatalogFile
from lifecycle.errors import TerminalStoreError
from lifecycle.stores.contract import Selection
from lifecycle.stores.s3 import S3Store
from tests.config import sample

PEOPLE = [str(n) for n in range(1, 13)]


class Watched(S3Store):
    """Counts the people's listings under way at once; ``failing``: a prefix listed from a bucket that
    does not exist, so moto itself refuses it."""

    failing: str | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock, self.now, self.most, self.prefixes = threading.Lock(), 0, 0, []

    def list_versions(self, prefix, **kwargs):
        if prefix == "chats/":  # the dataset's own prefix, listed first to judge what listing it costs
            yield from super().list_versions(prefix, **kwargs)
            return
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.prefixes.append(prefix)
        try:
            time.sleep(0.05)  # a listing's round trip, long enough to see them overlap
            if prefix == self.failing:
                yield from S3Store(self.client, "t-no-such-bucket", self.catalog, self.system).list_versions(
                    prefix, **kwargs
                )
            else:
                yield from super().list_versions(prefix, **kwargs)
        finally:
            with self.lock:
                self.now -= 1


@pytest.fixture
def photos(s3_store):
    store = Watched(s3_store.client, s3_store.bucket, Catalog(CatalogFile.model_validate(sample.CATALOG)), "media")
    for person in PEOPLE + ["99"]:
        for n in range(2):
            store.client.put_object(Bucket=store.bucket, Key=f"chats/{person}/{n}.jpg", Body=b"x")
    store.client.put_object(Bucket=store.bucket, Key="chats/1/0.jpg", Body=b"second version")
    store.list_budget = 1  # the dataset's prefix holds more than the people's listings would cost
    return store


def test_people_prefixes_are_listed_side_by_side_and_each_is_listed_whole(photos):
    photos.list_concurrency = 4
    counts = photos.count_by_subject("chat_photos", Selection(subjects=tuple(PEOPLE)))
    assert counts == dict.fromkeys(PEOPLE, 2), "every key of every person, and no one else's"
    assert sorted(photos.prefixes) == sorted(f"chats/{p}/" for p in PEOPLE)
    assert photos.most == 4, "four listings at a time, never more"


def test_one_at_a_time_where_the_system_says_so(photos):
    photos.list_concurrency = 1
    assert photos.count("chat_photos", Selection(subjects=tuple(PEOPLE))) == 2 * len(PEOPLE)
    assert photos.most == 1


def test_one_failed_listing_fails_the_whole_selection_naming_its_prefix(photos):
    photos.list_concurrency = 4
    photos.failing = "chats/7/"
    with pytest.raises(TerminalStoreError, match=r"list object versions under 'chats/7/' .*NoSuchBucket"):
        photos.count_by_subject("chat_photos", Selection(subjects=tuple(PEOPLE)))


def test_the_system_setting_reaches_the_store_and_a_bad_one_is_refused_naming_its_key(tmp_path, s3_conn_id):
    import copy

    from lifecycle.config import load_config
    from lifecycle.errors import ConfigError
    from lifecycle.stores import open_store

    files = copy.deepcopy(sample.FILES)
    files["catalog.yaml"]["systems"]["media"].update(list_concurrency=3, conn_id=s3_conn_id)
    config = load_config(sample.write(tmp_path / "good", files))
    assert open_store(config.catalog, "media").list_concurrency == 3

    files["catalog.yaml"]["systems"]["media"]["list_concurrency"] = 0
    with pytest.raises(ConfigError) as caught:
        load_config(sample.write(tmp_path / "bad", files))
    assert any(
        p.file == "catalog.yaml" and "systems.media.list_concurrency" in p.path for p in caught.value.problems
    ), [str(p) for p in caught.value.problems]
