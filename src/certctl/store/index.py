"""The records cache behind Store.records(): index.json, for listing large stores fast.

A cache only: meta.toml stays the source of truth, and any error reading or
writing index.json costs speed, never correctness.
"""

from __future__ import annotations

import json
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from certctl.errors import CertctlError, LockHeld, NotFound, StoreError
from certctl.models import CertRecord
from certctl.store.files import FORMAT, META_MODE, atomic_write, json_decode, json_encode

INDEX = "index.json"


class RecordSource(Protocol):
    """What the cache needs of a store: where it is, its names, a reader and a lock."""

    root: Path

    def names(self) -> list[str]:
        """Names of all certificates, sorted."""

    def read(self, name: str) -> CertRecord:
        """One record, parsed from its source of truth."""

    def lock(
        self, name: str, *, what: str = ..., wait: float = ...
    ) -> AbstractContextManager[None]:
        """An exclusive lock (LockHeld when taken)."""


def cached_records(store: RecordSource) -> list[tuple[str, CertRecord | CertctlError]]:
    """Every certificate's record (or the error reading it), fast for large stores.

    meta.toml stays the source of truth; index.json is a cache of parsed records
    keyed by each meta.toml's (inode, size, mtime), so an unchanged store is read
    without parsing TOML. Stale or missing entries are re-parsed and the cache is
    refreshed when nobody else is refreshing it.
    """
    certs = os.path.join(store.root, "certs")
    index = _read_index(store.root)
    fresh: dict[str, Any] = {}
    result: list[tuple[str, CertRecord | CertctlError]] = []
    dirty = False
    for name in store.names():
        meta = os.path.join(certs, name, "meta.toml")
        try:
            st = os.stat(meta, follow_symlinks=False)
        except FileNotFoundError:
            result.append((name, NotFound(f"no certificate named {name!r}")))
            continue
        try:  # the live switch commits a version: part of the cache key too
            live = os.readlink(os.path.join(certs, name, "live"))
        except OSError:
            live = ""
        stamp = [st.st_ino, st.st_size, st.st_mtime_ns, live]
        entry = index.get(name)
        if entry is not None and entry.get("stamp") == stamp:
            try:
                result.append((name, CertRecord.from_dict(entry["record"])))
                fresh[name] = entry
                continue
            except (TypeError, ValueError, KeyError, AttributeError):
                pass
        dirty = True
        try:
            record = store.read(name)
        except CertctlError as e:
            result.append((name, e))
            continue
        result.append((name, record))
        fresh[name] = {"stamp": stamp, "record": record.to_dict()}
    if dirty or len(fresh) != len(index):
        _write_index(store, fresh)
    return result


def _read_index(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / INDEX).read_bytes(), object_hook=json_decode)
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    entries = data.get("certificates")
    return entries if isinstance(entries, dict) else {}


def _write_index(store: RecordSource, entries: dict[str, Any]) -> None:
    """Refresh the cache; skipped when another run is refreshing it or on any error."""
    if not (store.root / "locks").is_dir():
        return
    try:
        with store.lock("index", what="store"):
            data = json.dumps(
                {"format": FORMAT, "certificates": entries}, default=json_encode
            ).encode()
            atomic_write(store.root / INDEX, data, META_MODE)
    except (LockHeld, StoreError, OSError):
        pass  # a cache (on a read-only store too): the next reader refreshes it
