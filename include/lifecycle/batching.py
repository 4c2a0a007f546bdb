"""Sequences cut into pieces: IN lists a database accepts, DeleteObjects of at most 1,000 keys, inserts in pages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``, in order."""
    for first in range(0, len(items), size):
        yield items[first : first + size]
