from datetime import UTC, datetime, timedelta, timezone

from lifecycle.clock import aware_utc, iso_utc, naive_utc

EAST = timezone(timedelta(hours=8))


def test_naive_means_utc():
    naive = datetime(2026, 3, 1, 12, 0)
    assert aware_utc(naive) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert naive_utc(naive) is naive
    assert iso_utc(naive) == "2026-03-01T12:00:00+00:00"


def test_other_zones_are_converted():
    beijing_noon = datetime(2026, 3, 1, 12, 0, tzinfo=EAST)
    assert aware_utc(beijing_noon).hour == 4 and aware_utc(beijing_noon).tzinfo is UTC
    assert naive_utc(beijing_noon) == datetime(2026, 3, 1, 4, 0)
    assert iso_utc(beijing_noon) == "2026-03-01T04:00:00+00:00"
