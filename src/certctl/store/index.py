"""The records cache behind Store.records() and Store.glances(): index.json, for listing
and checking large stores fast.

A cache only: meta.toml stays the source of truth, and any doubt about index.json
costs speed, never correctness. The file is one header line, then the body: one line
of heads (each name's stamp and when renew-due has nothing to do for it), then each
summary and each record on a line of its own, in the heads' order, so a summary or a
record is parsed only when it is asked for::

    {"format": 3, "crc32": <CRC-32 of the body>, "key": <the summaries' key>}
    {"<name>": [[inode, size, mtime_ns, ctime_ns, live target], <quiet spans> or null], ...}
    {<the summary of the first name>} or null
    ... (one line per name)
    {<the record of the first name>}
    ... (one line per name)

A summary (policy/glance.py: the `list` row, the state over time, when renew-due has
nothing to do) is made from the record it is stored with, in the same write, and is
used only under the key it was made with (the notice days and the policy's code).
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
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from time import time_ns
from typing import Any, Protocol

from certctl.errors import CertctlError, LockHeld, NotFound, StoreError
from certctl.models import CertRecord
from certctl.store.contract import Glance, Summarizer, Summary, parse_summary
from certctl.store.files import META_MODE, atomic_write, json_decode, json_encode

INDEX = "index.json"
INDEX_FORMAT = 3
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
    """Every certificate's record (or the error reading it), fast for large stores."""
    result: list[tuple[str, CertRecord | CertctlError]] = []
    for glance in cached_glances(store):
        try:
            result.append((glance.name, glance.load()))
        except CertctlError as e:
            result.append((glance.name, e))
    return result


# stamp, quiet spans, and the summary and record lines, or the entry of index.json holding them
Kept = tuple[list[Any], Any, bytes, bytes] | tuple[list[Any], Any, int]


def cached_glances(store: RecordSource, summarize: Summarizer | None = None) -> list[Glance]:
    """Every certificate's glance: its quiet spans, summary (made by `summarize`, kept
    under its key) and record, fast for large stores.

    Entries whose stamp is unchanged come from index.json: quiet spans and summary as
    stored when made under the same key, summary and record parsed only when asked for.
    The others are read from meta.toml and summarized, and the cache is refreshed when
    nobody else is refreshing it. Without `summarize` (records only: no quiet spans),
    stored summaries are kept as they are.
    """
    certs = f"{store.root}/certs"
    index = _read_index(store)
    key = summarize.key if summarize is not None else index.key
    keep_summaries = index.key == key
    settled = time_ns() - RACY_NS  # changed before this instant: safe to cache
    kept: dict[str, Kept] = {}
    made = _Made(store)
    result: list[Glance] = []
    dirty = False
    for name in store.names():
        try:
            st = os.stat(f"{certs}/{name}/meta.toml", follow_symlinks=False)
        except FileNotFoundError:
            result.append(Glance(name, record=NotFound(f"no certificate named {name!r}")))
            continue
        try:  # the live switch commits a version: part of the stamp too
            live = os.readlink(f"{certs}/{name}/live")
        except OSError:
            live = ""
        stamp = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, live]
        head = index.heads.get(name)
        if head is not None and head[0] == stamp:
            at = head[2]
            if keep_summaries and (summarize is None or head[1] is not None):
                quiet = head[1] if summarize is not None else None  # only under its key
                result.append(Glance(name, quiet=quiet, source=index, at=at))
                kept[name] = (stamp, head[1], at)
                continue
            try:  # no summary, or one made under another key: summarize the cached record
                record = index.record(name, at)
            except CertctlError as e:
                result.append(Glance(name, record=e))
                continue
        else:
            try:
                record = store.read(name)
            except CertctlError as e:
                dirty = True
                result.append(Glance(name, record=e))
                continue
        dirty = True
        summary = summarize(record) if summarize is not None else None
        quiet = summary["quiet"] if summary is not None else None
        if stat.S_ISREG(st.st_mode) and max(st.st_ctime_ns, st.st_mtime_ns) < settled:
            lines = (json.dumps(summary).encode(), _record_line(record))
            kept[name] = (stamp, quiet, *lines)
            # held as the lines written, not as objects: a rebuild of a large store
            # keeps its peak memory near a cached run's
            result.append(Glance(name, quiet=quiet, source=made, at=made.add(*lines)))
        else:
            result.append(Glance(name, quiet=quiet, summary=summary, record=record))
    if dirty or len(kept) != len(index.heads):
        _write_index(store, index, kept, key)
    return result


def checksum(body: bytes | memoryview, running: int = 0) -> int:
    """The header's checksum of the body (CRC-32, continuing from `running`): catches
    hand edits and torn or stray bytes."""
    import zlib  # 0.5 ms, only when there is an index to check or write

    return zlib.crc32(body, running)


def _record_line(record: CertRecord) -> bytes:
    return json.dumps(record.to_dict(), default=json_encode).encode()


class _Lines:
    """Summaries and records as JSON lines, parsed when asked for (a GlanceSource)."""

    def __init__(self, store: RecordSource) -> None:
        self.store = store

    def summary_line(self, at: int) -> bytes:
        raise NotImplementedError

    def record_line(self, at: int) -> bytes:
        raise NotImplementedError

    def summary(self, at: int) -> Summary | None:
        return parse_summary(self.summary_line(at))

    def record(self, name: str, at: int) -> CertRecord:
        try:
            data = json.loads(self.record_line(at), object_hook=json_decode)
            record = CertRecord.from_dict(data)
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError):
            record = None
        if record is None or record.name != name:
            return self.store.read(name)  # the cache is wrong: its source of truth
        return record


class _Made(_Lines):
    """The entries this run read from meta.toml, as the lines it writes to the cache."""

    def __init__(self, store: RecordSource) -> None:
        super().__init__(store)
        self._lines: list[tuple[bytes, bytes]] = []

    def add(self, summary: bytes, record: bytes) -> int:
        self._lines.append((summary, record))
        return len(self._lines) - 1

    def summary_line(self, at: int) -> bytes:
        return self._lines[at][0]

    def record_line(self, at: int) -> bytes:
        return self._lines[at][1]


class _Index(_Lines):
    """What index.json holds: the summaries' key, each name's [stamp, quiet spans, entry
    number], and the summary and record lines, found and parsed when asked for. The
    file stays one buffer: no line is copied out until it is used."""

    def __init__(
        self,
        store: RecordSource,
        key: str | None = None,
        heads: dict[str, list[Any]] | None = None,
        data: bytes = b"",
        start: int = 0,
    ) -> None:
        super().__init__(store)
        self.key = key
        self.heads = heads or {}
        self._data = data
        self._start = start  # where the first summary line begins
        self._ends: list[int] = []

    def _line(self, number: int) -> bytes:
        ends = self._ends
        if not ends:  # once: where every line ends (a C-speed find per line)
            data, find, at = self._data, self._data.find, self._start
            for _ in range(2 * len(self.heads)):
                at = find(b"\n", at) + 1
                ends.append(at)
            assert at == len(data), "the line count was checked when the index was read"
        begin = ends[number - 1] if number else self._start
        return self._data[begin : ends[number] - 1]

    def summary_line(self, at: int) -> bytes:
        return self._line(at)

    def record_line(self, at: int) -> bytes:
        return self._line(len(self.heads) + at)


def _read_index(store: RecordSource) -> _Index:
    """The cached entries, or none on any doubt (then every record is read, the cache rebuilt)."""
    try:  # never through a symlink, never blocking on a FIFO
        fd = os.open(store.root / INDEX, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return _Index(store)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return _Index(store)
        data = os.read(fd, info.st_size + 1)  # one buffer: the cache can be megabytes
        while chunk := os.read(fd, 1 << 20):
            data += chunk
    except OSError:
        return _Index(store)
    finally:
        os.close(fd)
    try:
        end = data.index(b"\n")
        fields = json.loads(data[:end])
        if not isinstance(fields, dict) or fields.get("format") != INDEX_FORMAT:
            return _Index(store)
        if fields.get("crc32") != checksum(memoryview(data)[end + 1 :]):
            return _Index(store)
        key = fields.get("key")
        start = data.index(b"\n", end + 1) + 1
        heads = json.loads(data[end + 1 : start])
    except (ValueError, TypeError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _Index(store)
    if not isinstance(heads, dict) or not isinstance(key, str | None):
        return _Index(store)
    if not data.endswith(b"\n") or data.count(b"\n", start) != 2 * len(heads):
        return _Index(store)  # a summary and a record line per name
    for number, head in enumerate(heads.values()):
        if not _well_formed(head):
            return _Index(store)
        head.append(number)
    return _Index(store, key, heads, data, start)


def _chunks(lines: list[bytes], size: int = 1000) -> Iterator[bytes]:
    """The file's bytes, `size` lines at a time: one chunk in memory, never the whole file."""
    for start in range(0, len(lines), size):
        chunk = b"\n".join(lines[start : start + size])
        yield chunk if start + size >= len(lines) else chunk + b"\n"


def _well_formed(head: object) -> bool:
    return (
        isinstance(head, list)
        and len(head) == 2
        and isinstance(head[0], list)
        and (head[1] is None or isinstance(head[1], list))
    )


def _write_index(
    store: RecordSource, index: _Index, entries: dict[str, Kept], key: str | None
) -> None:
    """Refresh the cache; skipped when another run is refreshing it or on any error."""
    if not (store.root / "locks").is_dir():
        return
    try:
        with store.lock("index", what="store"):
            heads: dict[str, list[Any]] = {}
            summaries, records = [], []
            for name, entry in entries.items():
                heads[name] = [entry[0], entry[1]]
                if len(entry) == 3:  # unchanged: its lines as they are
                    summaries.append(index.summary_line(entry[2]))
                    records.append(index.record_line(entry[2]))
                else:
                    summaries.append(entry[2])
                    records.append(entry[3])
            lines = [json.dumps(heads).encode(), *summaries, *records, b""]
            crc = 0  # of the body, line by line: the file is joined once, never copied
            for line in lines[:-1]:
                crc = checksum(b"\n", checksum(line, crc))
            fields = {"format": INDEX_FORMAT, "crc32": crc, "key": key}
            lines.insert(0, json.dumps(fields).encode())
            atomic_write(store.root / INDEX, _chunks(lines), META_MODE)
    except (LockHeld, StoreError, OSError):
        pass  # a cache (on a read-only store too): the next reader refreshes it
