"""What a store holds, on either backend, for "nothing in the store changed" checks.

On the filesystem: every path with its type, mode and content hash (or link target).
On PostgreSQL: every row of certctl's tables but the lease bookkeeping (sealed columns
are compared as stored: an unchanged row has the same ciphertext).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import Certctl

# the tables holding the store's contents (certctl_locks are leases, not contents)
TABLES = (
    "certctl_meta",
    "certctl_certificates",
    "certctl_versions",
    "certctl_live",
    "certctl_pending_keys",
    "certctl_accounts",
)


def file_snapshot(root: Path) -> dict[str, Any]:
    """Every path under `root` with its type, mode and content hash (or link target)."""
    if not os.path.lexists(root):
        return {}
    result: dict[str, Any] = {".": ("root", stat.S_IMODE(root.lstat().st_mode))}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            path = Path(dirpath) / entry
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                result[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                result[rel] = ("dir", stat.S_IMODE(info.st_mode))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                result[rel] = ("file", stat.S_IMODE(info.st_mode), digest)
    return result


def database(cx: Certctl) -> str:
    """The name of the runner's PostgreSQL database (the last part of its URL)."""
    assert cx.backend == "postgresql"
    return cx.location.rsplit("/", 1)[-1]


def rows(cx: Certctl) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of certctl's content tables, sorted ({} before the schema exists)."""
    import psycopg

    result: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(cx.location, autocommit=True) as conn:
        present = {
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'certctl_%%'"
            ).fetchall()
        }
        for table in TABLES:
            if table in present:
                found = conn.execute(f"SELECT * FROM {table}").fetchall()
                result[table] = sorted(found, key=repr)
    return result


def snapshot(cx: Certctl) -> Any:
    """The store's whole contents, comparable with == before and after a command."""
    if cx.backend == "postgresql":
        return rows(cx)
    return file_snapshot(cx.store)


def exists(cx: Certctl) -> bool:
    """True when the store was created (a directory, or certctl's tables)."""
    if cx.backend == "postgresql":
        return bool(rows(cx))
    return os.path.lexists(cx.store)


@contextmanager
def opened(cx: Certctl) -> Iterator[Any]:
    """The runner's store through the contract, closed afterwards."""
    store = cx.open()
    try:
        yield store
    finally:
        store.close()


def live_version(cx: Certctl, name: str) -> int | None:
    """The live version of `name` (the live symlink's target on the filesystem)."""
    with opened(cx) as store:
        return store.live_version(name)  # type: ignore[no-any-return]


def versions(cx: Certctl, name: str) -> list[int]:
    """The complete versions of `name`, ascending."""
    with opened(cx) as store:
        return store.versions(name)  # type: ignore[no-any-return]


def version_files(cx: Certctl, name: str, version: int) -> dict[str, bytes]:
    """The PEM files of one stored version."""
    with opened(cx) as store:
        return dict(store.read_version(name, version))
