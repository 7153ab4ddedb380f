"""`certctl doctor`: each backend's integrity check behind one call."""

from __future__ import annotations

from certctl.store.contract import CertStore, Finding


def check(store: CertStore) -> list[Finding]:
    """Every problem found in the store, errors first (read-only)."""
    from certctl.store.filesystem import Store

    if isinstance(store, Store):
        from certctl.store.integrity import check_store

        return check_store(store)
    from certctl.store.postgres.integrity import check_database
    from certctl.store.postgres.store import PgStore

    if isinstance(store, PgStore):
        return check_database(store)
    raise TypeError(f"no integrity check for {type(store).__name__}")
