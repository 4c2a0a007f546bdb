"""Errors that name what is wrong and where.

``Problem`` is one finding (file, key path, message).  ``ConfigError`` carries
every problem found in one pass, so a user fixes them all at once.  Terminal
errors fail a task at once; transient ones (``TransientError``) may be retried.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class LifecycleError(Exception):
    """A terminal error: retrying will not help."""


class TransientError(LifecycleError):
    """A failure that may pass on retry (a store unreachable, a lock timeout)."""


class ConfigError(LifecycleError):
    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")
