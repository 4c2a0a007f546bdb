"""What a failure means, decided in one place: retry it or not, and one line that says what failed.

Each store classifies its driver's errors (``stores.sql.transient``,
``stores.s3.transient``, ``mail.transient``); this module asks them all, so
a task (``runs.terminal_errors``) and the CLI treat a failure the same way,
whichever store it came from, the state store included.
"""

from __future__ import annotations

from lifecycle.errors import LifecycleError, is_transient


def retryable(exc: BaseException) -> bool:
    """Whether a failure may pass on retry: the stores' and the mailer's classification."""
    if is_transient(exc):
        return True
    from lifecycle import mail
    from lifecycle.stores import s3, sql

    return sql.transient(exc) or s3.transient(exc) or mail.transient(exc)


def describe(exc: BaseException) -> str:
    """One line for a terminal failure: the lifecycle's own message, else the error's type and
    first line (never a SQL statement's parameters, which may hold personal values)."""
    if isinstance(exc, LifecycleError):
        return str(exc)
    from lifecycle.stores import sql

    if isinstance(exc, sql.sa.exc.SQLAlchemyError):
        return sql.failure_text(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:1000]
