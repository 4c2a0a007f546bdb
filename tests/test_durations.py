"""Calendar durations against day counts: a rule is refused only when it can really be shorter than its floor."""

import pytest

from lifecycle.durations import Duration


@pytest.mark.parametrize(
    "keep, floor, shorter",
    [
        ("180d", "6mo", True),  # a half year spans 181 to 184 days
        ("183d", "6mo", True),
        ("184d", "6mo", False),  # never shorter: found by the conformance suite (the bound was 28-31 days a month)
        ("6mo", "181d", False),
        ("6mo", "182d", True),
        ("365d", "1y", True),  # leap years
        ("366d", "1y", False),
        ("1y", "365d", False),
        ("3y", "1095d", False),
        ("3y", "1096d", True),
        ("30d", "1mo", True),
        ("31d", "1mo", False),
        ("26w", "6mo", True),  # 182 days
        ("6mo", "26w", True),
        ("1y", "12mo", False),  # like units compare exactly
        ("12h", "1d", True),
    ],
)
def test_a_keep_is_shorter_than_a_floor_only_when_some_date_makes_it_so(keep, floor, shorter):
    assert Duration.parse(keep).surely_shorter_than(Duration.parse(floor)) is shorter
