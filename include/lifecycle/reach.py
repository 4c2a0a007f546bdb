"""Whether the parts a command needs answer, and one line when one does not.

A part is an S3 endpoint, a mail server or a database.  ``explain`` reads a
failure (its whole chain of causes: a store wraps its driver's error) and, when
the failure is that a part did not answer, says which part and how to start it;
``require`` asks the parts before a command begins (``python -m lifecycle demo
run`` runs DAGs whose tasks would each fail on their own).  The embedded
defaults' S3 endpoint and mail sink are named as such, with the command that
starts them.
"""

from __future__ import annotations

import smtplib
import socket
import urllib.parse
from dataclasses import dataclass

from lifecycle.errors import LifecycleError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
START_HINT = "start it with `make up` (or `make demo`)"


@dataclass(frozen=True)
class Part:
    kind: str  # "S3 endpoint" | "mail server" | "database"
    address: str | None  # what the user recognizes: a URL, host:port (None: not known)
    host: str | None = None
    port: int | None = None

    def down(self) -> str:
        """One sentence: this part does not answer, and how to start it."""
        embedded = _embedded(self)
        if embedded:
            return f"the {embedded} at {self.address} is not running: {START_HINT}"
        at = f" at {self.address}" if self.address else ""
        return f"the {self.kind}{at} is not answering: start it, or point its connection at one that runs"


class PartDown(LifecycleError):
    """A part a command needs does not answer (found before the command began)."""

    def __init__(self, part: Part):
        self.part = part
        super().__init__(part.down())


def _embedded(part: Part) -> str | None:
    """The name of the embedded service at the part's address, if it is one."""
    from lifecycle.devenv.env import ports

    if part.host not in LOOPBACK or part.port is None:
        return None
    try:
        mine = ports()
    except LifecycleError:
        return None
    return {
        ("S3 endpoint", mine["s3"]): "embedded S3 endpoint (moto)",
        ("mail server", mine["smtp"]): "embedded mail sink",
    }.get((part.kind, part.port))


# -------------------------------------------------------------- reading a failure


def explain(exc: BaseException) -> str | None:
    """One sentence when ``exc`` (or a cause of it) is a part that did not answer, else None."""
    part = failed_part(exc)
    return part.down() if part else None


def failed_part(exc: BaseException) -> Part | None:
    for link in _chain(exc):
        part = _s3_part(link) or _smtp_part(link) or _sql_part(link)
        if isinstance(link, PartDown):
            part = link.part
        if part:
            return part
    return None


def _chain(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _s3_part(exc: BaseException) -> Part | None:
    """botocore's connection errors carry the URL they could not reach."""
    from botocore.exceptions import ConnectionError as BotoConnectionError

    url = exc.kwargs.get("endpoint_url") if isinstance(exc, BotoConnectionError) else None
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Part("S3 endpoint", f"{parts.scheme}://{parts.netloc}", parts.hostname, port)


def _smtp_part(exc: BaseException) -> Part | None:
    """A refused or timed-out connection made by smtplib: the host and port are in its frame."""
    if not isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        return None
    frame = next(
        (
            tb.tb_frame
            for tb in _frames(exc.__traceback__)
            if tb.tb_frame.f_code.co_filename == smtplib.__file__ and "host" in tb.tb_frame.f_locals
        ),
        None,
    )
    if frame is None:
        return None
    host, port = frame.f_locals.get("host"), frame.f_locals.get("port")
    return Part("mail server", f"{host}:{port}", str(host), int(port) if port else None)


def _frames(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _sql_part(exc: BaseException) -> Part | None:
    """A database that refused or did not answer the connection (not one that refused a statement)."""
    import sqlalchemy as sa

    from lifecycle.stores.sql import transient

    if not isinstance(exc, sa.exc.DBAPIError) or exc.statement is not None or not transient(exc):
        return None
    engine = getattr(exc, "lifecycle_engine", None)
    if engine is None:
        return Part("database", None)
    url = engine.url.set(query={}, drivername=engine.url.get_backend_name())
    return Part("database", url.render_as_string(hide_password=True), url.host, url.port)


# -------------------------------------------------------------- asking before a command


def require(parts: list[Part], timeout: float = 2.0) -> None:
    """Raise ``PartDown`` for the first part that does not accept a connection."""
    for part in parts:
        try:
            socket.create_connection((part.host, part.port), timeout=timeout).close()
        except OSError:
            raise PartDown(part) from None


def parts_of(config) -> list[Part]:
    """The S3 endpoints of the catalog's s3 systems (those with an ``endpoint_url``) and the
    notifications' mail server, as their Airflow connections name them."""
    from lifecycle.connections import get_connection

    found: dict[tuple, Part] = {}
    for system in config.catalog.systems.values():
        if system.type != "s3":
            continue
        url = get_connection(system.conn_id).extra_dejson.get("endpoint_url")
        if url:
            parts = urllib.parse.urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            found[("s3", parts.hostname, port)] = Part(
                "S3 endpoint", f"{parts.scheme}://{parts.netloc}", parts.hostname, port
            )
    if config.notifications:
        conn = get_connection(config.notifications.email.conn_id)
        port = conn.port or (25 if conn.extra_dejson.get("disable_ssl") else 465)
        found[("smtp", conn.host, port)] = Part("mail server", f"{conn.host}:{port}", conn.host, port)
    return list(found.values())
