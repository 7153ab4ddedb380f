"""The records cache behind Store.records(): index.json, for listing large stores fast.

A cache only: meta.toml stays the source of truth, and any doubt about index.json
costs speed, never correctness. The file is one header line, then the body::

    {"format": 2, "crc32": <CRC-32 of the body>}
    {"<name>": {"stamp": [inode, size, mtime_ns, ctime_ns, live target], "record": {...}}}

An entry is used only when index.json is a regular file whose body matches the
header's checksum (a hand edit or a torn write rebuilds it), every entry has the
right shape and names its own certificate, and its stamp equals what the
certificate's meta.toml and live symlink show now. The stamp holds the ctime, which
nobody can set back (an editor or `touch` restoring the mtime still changes it), and
a record changed less than RACY_NS before it was read is not cached at all: a
same-size rewrite within one file-system timestamp tick would keep every field of
its stamp (git's "racily clean" entries). Hashing every meta.toml instead would cost
one more file read per certificate (README "Performance").
"""

from __future__ import annotations

import json
import os
import stat
from contextlib import AbstractContextManager
from pathlib import Path
from time import time_ns
from typing import Any, Protocol

from certctl.errors import CertctlError, LockHeld, NotFound, StoreError
from certctl.models import CertRecord
from certctl.store.files import META_MODE, atomic_write, json_decode, json_encode

INDEX = "index.json"
INDEX_FORMAT = 2
RACY_NS = 2 * 10**9  # longer than any file system's timestamp tick (FAT's mtime: 2 s)


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

    Records whose stamp is unchanged come from index.json without parsing TOML; the
    others are read from meta.toml, and the cache is refreshed when nobody else is
    refreshing it.
    """
    certs = os.path.join(store.root, "certs")
    index = _read_index(store.root)
    settled = time_ns() - RACY_NS  # changed before this instant: safe to cache
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
        try:  # the live switch commits a version: part of the stamp too
            live = os.readlink(os.path.join(certs, name, "live"))
        except OSError:
            live = ""
        stamp = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, live]
        entry = index.get(name)
        if entry is not None and entry["stamp"] == stamp:
            cached = _cached(name, entry["record"])
            if cached is not None:
                result.append((name, cached))
                fresh[name] = entry
                continue
        dirty = True
        try:
            record = store.read(name)
        except CertctlError as e:
            result.append((name, e))
            continue
        result.append((name, record))
        if stat.S_ISREG(st.st_mode) and max(st.st_ctime_ns, st.st_mtime_ns) < settled:
            fresh[name] = {"stamp": stamp, "record": record.to_dict()}
    if dirty or len(fresh) != len(index):
        _write_index(store, fresh)
    return result


def checksum(body: bytes | memoryview) -> int:
    """The header's checksum of the body: catches hand edits and torn or stray bytes."""
    import zlib  # 0.5 ms, only when there is an index to check or write

    return zlib.crc32(body)


def _cached(name: str, data: dict[str, Any]) -> CertRecord | None:
    try:
        record = CertRecord.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    return record if record.name == name else None


def _read_index(root: Path) -> dict[str, dict[str, Any]]:
    """The cached entries, or {} on any doubt (then every record is read and the cache rebuilt)."""
    try:  # never through a symlink, never blocking on a FIFO
        fd = os.open(root / INDEX, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return {}
        data = os.read(fd, info.st_size + 1)  # one buffer: the cache can be megabytes
        while chunk := os.read(fd, 1 << 20):
            data += chunk
    except OSError:
        return {}
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")  # as json.loads would, once for header and body
        fields, end = json.JSONDecoder().raw_decode(text)  # the header line
        if not isinstance(fields, dict) or fields.get("format") != INDEX_FORMAT:
            return {}
        if not text[:end].isascii() or text[end : end + 1] != "\n":
            return {}  # (an ASCII header: its length in characters is its length in bytes)
        if fields.get("crc32") != checksum(memoryview(data)[end + 1 :]):
            return {}
        del data  # only the text is needed now: the peak stays one copy plus the entries
        entries, stop = json.JSONDecoder(object_hook=json_decode).raw_decode(text, end + 1)
        if stop != len(text):
            return {}
    except (ValueError, TypeError, RecursionError):  # UnicodeDecodeError is a ValueError
        return {}
    if not isinstance(entries, dict) or not all(map(_well_formed, entries.values())):
        return {}
    return entries


def _well_formed(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("stamp"), list)
        and isinstance(entry.get("record"), dict)
    )


def _write_index(store: RecordSource, entries: dict[str, Any]) -> None:
    """Refresh the cache; skipped when another run is refreshing it or on any error."""
    if not (store.root / "locks").is_dir():
        return
    try:
        with store.lock("index", what="store"):
            body = json.dumps(entries, default=json_encode).encode()  # one line
            header = json.dumps({"format": INDEX_FORMAT, "crc32": checksum(body)}).encode()
            atomic_write(store.root / INDEX, header + b"\n" + body, META_MODE)
    except (LockHeld, StoreError, OSError):
        pass  # a cache (on a read-only store too): the next reader refreshes it
