"""The task process's heap while a batch runs."""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def loaded_objects_frozen():
    """Keep what the task process loaded before the work (Airflow, SQLAlchemy,
    boto3, the config: some 270,000 objects) out of the collector's full passes
    while a batch runs.  A batch's own objects start full passes; each pass
    over the loaded ones would cost 0.1-0.3 s of a worker's time and free
    nothing (``gc.freeze``).  Objects an outer caller froze stay frozen."""
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()
