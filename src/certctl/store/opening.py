"""Which backend a store location means: a postgresql:// URL or a directory."""

from __future__ import annotations

from pathlib import Path

from certctl.store.base import Warn
from certctl.store.contract import CertStore

DATABASE_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(location: str) -> bool:
    """True for a PostgreSQL store URL; anything else is a directory."""
    return location.startswith(DATABASE_SCHEMES)


def open_store(
    location: str,
    *,
    warn: Warn | None = None,
    key_file: str | Path | None = None,
    lease: float | None = None,
) -> CertStore:
    """The store at `location`; nothing is connected or created until it is used."""
    if is_database_url(location):
        from certctl.store.postgres import PgStore
        from certctl.store.postgres.base import DEFAULT_LEASE

        return PgStore(
            location,
            key_file=Path(key_file) if key_file else None,
            lease=lease or DEFAULT_LEASE,
        )
    from certctl.store.filesystem import Store

    return Store(Path(location), warn=warn)
