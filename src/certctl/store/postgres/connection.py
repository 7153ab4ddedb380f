"""Connections to the PostgreSQL store: the URL, psycopg (imported lazily), error mapping.

The URL is libpq's (`postgresql://USER@HOST[:PORT]/DBNAME?sslmode=verify-full`). A
password in it is refused: it would sit in shell history, in `ps` and in cron
mail. libpq finds it in PGPASSFILE (~/.pgpass), PGPASSWORD or a service file.
Every error names the server as `location` shows it, never a password.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

from certctl.errors import BadInput, StoreError, StoreUnavailable

INSTALL_HINT = "pip install 'certctl[postgresql]'"
CONNECT_TIMEOUT = 10  # seconds, libpq's connect_timeout unless the URL sets one
# SQLSTATE classes worth retrying: connection exceptions, operator intervention
# (admin shutdown, crash recovery), insufficient resources (too many connections).
_RETRY_CLASSES = ("08", "57", "53")


def check_url(url: str) -> str:
    """The URL as given, checked; BadInput for a password in it or a malformed one."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as e:
        raise BadInput(f"store URL {redact(url)!r} is malformed: {e}") from None
    query = dict(parse_qsl(parts.query))
    if parts.password is not None or "password" in query:
        raise BadInput(
            "the store URL must not carry a password (it would show in ps and shell history):"
            " put it in PGPASSFILE (~/.pgpass) or PGPASSWORD"
        )
    if not parts.path.strip("/") and "dbname" not in query:
        raise BadInput(
            f"store URL {url!r} names no database: add /DBNAME, e.g."
            " postgresql://certctl@db.internal/certctl"
        )
    return url


def redact(url: str) -> str:
    """The URL with any password replaced, for messages."""
    url = re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)


def psycopg_module() -> Any:
    """psycopg, or BadInput saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise BadInput(
            f"a postgresql:// store needs psycopg 3, which is not installed: {INSTALL_HINT}"
        ) from None
    return psycopg


def connect(url: str, location: str) -> Any:
    """An autocommit connection (transactions are explicit), or the error as one line."""
    psycopg = psycopg_module()
    kwargs: dict[str, Any] = {"autocommit": True, "application_name": "certctl"}
    if "connect_timeout" not in url:
        kwargs["connect_timeout"] = CONNECT_TIMEOUT
    try:
        conn = psycopg.connect(url, **kwargs)
    except psycopg.Error as e:
        raise_database_error(e, location, "connect")
    return conn


def _first_line(error: BaseException) -> str:
    """The server's or libpq's message, one line, without anything after a newline."""
    text = str(error).strip()
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("connection failed: ")
    return type(error).__name__


def raise_database_error(error: Exception, location: str, doing: str) -> NoReturn:
    """Map a psycopg error to certctl's: unreachable → exit 3, refused → exit 1."""
    psycopg = psycopg_module()
    state = getattr(error, "sqlstate", None) or ""
    detail = _first_line(error)
    if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
        raise StoreError(
            f"store {location}: {doing}: the server is read-only (a replica?):"
            " point --store at the primary"
        ) from None
    if state == "28P01" or "password authentication failed" in detail:
        raise StoreError(
            f"store {location}: {doing}: the server refused the password (check PGPASSFILE"
            " or PGPASSWORD)"
        ) from None
    if state.startswith("28") or state.startswith("3D") or state.startswith("42501"):
        raise StoreError(f"store {location}: {doing}: {detail}") from None
    if (isinstance(error, psycopg.OperationalError) and not state) or state.startswith(
        _RETRY_CLASSES
    ):
        raise StoreUnavailable(
            f"store {location}: {doing}: {detail}; nothing was written — retry later"
        ) from None
    raise StoreError(f"store {location}: {doing}: {detail}") from None
