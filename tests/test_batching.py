"""Sequences cut into pieces (IN lists, DeleteObjects, insert pages)."""

from __future__ import annotations

import pytest

from lifecycle.batching import chunks


@pytest.mark.parametrize("length, size, sizes", [(0, 3, []), (2, 3, [2]), (3, 3, [3]), (7, 3, [3, 3, 1])])
def test_chunks_cover_the_sequence_in_order_with_no_piece_over_size(length, size, sizes):
    items = list(range(length))
    pieces = list(chunks(items, size))
    assert [len(p) for p in pieces] == sizes
    assert [x for p in pieces for x in p] == items
