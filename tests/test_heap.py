"""The task process's heap while a batch runs: what was loaded before it kept out of full collections."""

from __future__ import annotations

import gc
import weakref

from lifecycle.heap import loaded_objects_frozen


class _Cycle:
    """Garbage only the collector can free: it refers to itself."""

    def __init__(self):
        self.itself = self


def test_objects_loaded_before_a_batch_are_left_out_of_collections_and_released_after():
    assert gc.get_freeze_count() == 0
    loaded_cycle = _Cycle()
    loaded = weakref.ref(loaded_cycle)
    with loaded_objects_frozen():
        assert gc.get_freeze_count() > 1000, "what the process had loaded is in the permanent generation"
        del loaded_cycle
        batch = weakref.ref(_Cycle())
        gc.collect()
        assert batch() is None, "the batch's own garbage is still collected"
        assert loaded() is not None, "a full pass leaves the loaded objects alone"
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert loaded() is None, "after the batch, the loaded objects are collectable again"


def test_an_outer_freeze_is_left_as_it_was():
    gc.freeze()
    try:
        with loaded_objects_frozen():
            pass
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
