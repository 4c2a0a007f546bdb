"""pyiceberg's warnings that say what the store means to do, kept out of a task's log."""

from __future__ import annotations

import contextlib
import warnings


@contextlib.contextmanager
def quiet():
    """pyiceberg warns on every delete that it writes copy-on-write (as the store means it to) and
    on a delete that matched nothing (a partition an earlier call dropped): not for a task's log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Merge on read is not yet supported", category=UserWarning)
        warnings.filterwarnings("ignore", message="Delete operation did not match any records", category=UserWarning)
        yield
