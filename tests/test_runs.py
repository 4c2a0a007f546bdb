"""The task-process helpers every DAG shares."""

from __future__ import annotations

import gc

from lifecycle.runs import loaded_objects_frozen


def test_objects_loaded_before_a_batch_are_left_out_of_collections_and_released_after():
    assert gc.get_freeze_count() == 0
    with loaded_objects_frozen():
        loaded = gc.get_freeze_count()
        assert loaded > 1000, "everything the process had loaded is in the permanent generation"
        garbage = [[] for _ in range(1000)]
        assert gc.get_freeze_count() == loaded, "the batch's own objects stay collectable"
        del garbage
    assert gc.get_freeze_count() == 0


def test_an_outer_freeze_is_left_as_it_was():
    gc.freeze()
    try:
        with loaded_objects_frozen():
            pass
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
