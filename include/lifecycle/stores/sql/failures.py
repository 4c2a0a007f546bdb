"""How SQL failures are classified: which may pass on retry, and what a message may quote."""

from __future__ import annotations

import sqlalchemy as sa

# PostgreSQL SQLSTATE classes and codes that a retry may get past
_PG_TRANSIENT_CLASSES = ("08", "40", "53", "57")  # connection, rollback (serialization, deadlock), resources, operator
_PG_TRANSIENT_CODES = {"55P03"}  # lock not available
# MySQL/MariaDB error numbers that a retry may get past
_MYSQL_TRANSIENT = {1040, 1053, 1205, 1213, 1927, 2002, 2003, 2005, 2006, 2013, 2026, 2055, 4031}
# a connection refused for good: a retry would be refused again
_CONNECT_TERMINAL = ("does not exist", "authentication failed", "no pg_hba.conf", "access denied", "unknown database")


def transient(exc: BaseException) -> bool:
    """Whether a SQLAlchemy/DBAPI failure may pass on retry."""
    if isinstance(exc, sa.exc.TimeoutError):  # the connection pool was exhausted
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return isinstance(exc, (ConnectionError, TimeoutError))
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    code = getattr(orig, "pgcode", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
    if code:
        return code[:2] in _PG_TRANSIENT_CLASSES or code in _PG_TRANSIENT_CODES
    number = orig.args[0] if getattr(orig, "args", None) and isinstance(orig.args[0], int) else None
    if number is not None:
        return number in _MYSQL_TRANSIENT
    text = str(orig).lower()
    if "database is locked" in text or "database table is locked" in text:  # SQLite
        return True
    if isinstance(exc, sa.exc.OperationalError) and not any(t in text for t in _CONNECT_TERMINAL):
        return "connect" in text or "timeout" in text or "timed out" in text or "server closed" in text
    return False


def failure_text(exc: BaseException) -> str:
    """The driver's own first line, never the statement or its parameters.  Errors about data
    (a duplicate entry, a value of the wrong shape) may quote the value, which may be personal:
    of those only the code and the names of the constraint, table and column are kept."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(exc, (sa.exc.IntegrityError, sa.exc.DataError)) and not _names_only(orig):
        diag = getattr(orig, "diag", None)
        names = [
            f"{what} {getattr(diag, attr)}"
            for what, attr in (("constraint", "constraint_name"), ("table", "table_name"), ("column", "column_name"))
            if diag is not None and getattr(diag, attr, None)
        ]
        code = getattr(orig, "pgcode", None) or (orig.args[0] if getattr(orig, "args", None) else "")
        return f"{type(orig).__name__} {code} ({', '.join(names) or 'the value is withheld'})"
    first = (str(orig).strip().splitlines() or [""])[0]
    return f"{type(orig).__name__}: {first}"[:500]


def _names_only(orig) -> bool:
    """Foreign-key refusals name tables and constraints only: PostgreSQL's first line
    (23503; the key values are on its DETAIL line), MySQL's 1216/1217/1451/1452."""
    code = getattr(orig, "pgcode", None)
    if code:
        return code == "23503"
    return bool(getattr(orig, "args", None)) and orig.args[0] in (1216, 1217, 1451, 1452)
