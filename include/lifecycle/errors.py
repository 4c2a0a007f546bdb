"""Errors that name what is wrong and where, classified once: terminal or transient.

``Terminal`` and ``Transient`` are marker classes (as dlt's): a task retries
an error only when it is ``Transient`` (a store unreachable, a timeout, a
deadlock, throttling); everything else — configuration, SQL programming
errors, a missing table, a bug — fails the task at once, with a message that
names the dataset, the system and what was being done.  Each store turns its
driver's exceptions into a ``StoreError`` of the right kind (``classify`` in
the SQL, S3 and mail adapters), so the decision is made in one place per store.

``Problem`` is one configuration finding (file, key path, message);
``ConfigError`` carries every problem found in one pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass


class Terminal:
    """Marker: retrying will not help."""


class Transient:
    """Marker: the same call may succeed later (retry with a delay)."""


class LifecycleError(Exception):
    """An error of the lifecycle, terminal unless it is also ``Transient``."""


class TransientError(LifecycleError, Transient):
    """A failure that may pass on retry (a store unreachable, a lock timeout)."""


class StoreError(LifecycleError):
    """A store refused or failed an operation on a dataset.

    The message names the system, the dataset (when there is one) and the
    purpose of the statement or request, then the store's own reason.
    """

    def __init__(self, system: str, dataset: str | None, purpose: str, reason: str):
        self.system, self.dataset, self.purpose, self.reason = system, dataset, purpose, reason
        where = f"system {system!r}" + (f", dataset {dataset!r}" if dataset else "")
        super().__init__(f"{where}: {purpose}: {reason}")


class TerminalStoreError(StoreError, Terminal):
    """The store refused for good (a missing table or bucket, a SQL error, access denied)."""


class TransientStoreError(StoreError, Transient):
    """The store could not answer now (connection refused, timeout, deadlock, throttling, 5xx)."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, Transient)


@contextlib.contextmanager
def store_failures(
    system: str,
    dataset: str | None,
    purpose: str,
    *,
    catching: tuple[type, ...],
    transient: Callable[[BaseException], bool],
    describe: Callable[[BaseException], str],
):
    """Inside, a driver's failure (``catching``) becomes a ``StoreError`` of the kind ``transient``
    decides, naming the system, the dataset and ``purpose``; ``describe`` gives the driver's reason."""
    try:
        yield
    except StoreError:
        raise
    except catching as exc:
        kind = TransientStoreError if transient(exc) else TerminalStoreError
        raise kind(system, dataset, purpose, describe(exc)) from exc


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class ConfigError(LifecycleError, Terminal):
    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")
