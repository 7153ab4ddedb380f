"""Low-level file operations of the store: atomic writes, fsync, test fault points."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from certctl.errors import StoreError

FORMAT = 1  # certctl-store.toml's format
DIR_MODE = 0o700
KEY_MODE = 0o600
CERT_MODE = 0o644
META_MODE = 0o600
LIVE_FILES = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")

_fault_hits: dict[str, int] = {}

# Names of temp files and directories, and of a certificate being removed. They start
# with "." and no certificate name can (names start with a letter or digit), and they
# are matched exactly, so `doctor` never takes a real certificate for a leftover.
_TARGET = r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}"
_HEX = r"[0-9a-f]{8}"
_TEMP = re.compile(rf"\.tmp-{_HEX}-({_TARGET})")
_REMOVED = re.compile(rf"\.removed-{_HEX}-({_TARGET})")
_LEGACY = (  # the same, as earlier versions named them
    re.compile(rf"\.({_TARGET})\.tmp-{_HEX}"),
    re.compile(rf"\.tmp-([0-9]{{1,9}})-{_HEX}"),
    re.compile(rf"\.removed-({_TARGET})-{_HEX}"),
)


def temp_name(target: str) -> str:
    """A fresh temp name for something that will be renamed to `target`."""
    return f".tmp-{os.urandom(4).hex()}-{target}"


def removed_name(name: str) -> str:
    """The name a certificate directory is renamed to before it is deleted."""
    return f".removed-{os.urandom(4).hex()}-{name}"


def leftover_target(entry: str) -> str | None:
    """What a temp or being-removed entry was for, or None when `entry` is not one."""
    for pattern in (_TEMP, _REMOVED, *_LEGACY):
        match = pattern.fullmatch(entry)
        if match:
            return match.group(1)
    return None


def fault_point(name: str) -> None:
    """Test-only crash hook: SIGKILL this process at a named write step.

    CERTCTL_TEST_FAULT=<point> kills at the first time the point is reached,
    <point>#<n> at the n-th; pause:<point> stops the process there (SIGSTOP) until
    the test sends SIGCONT. Used by the fault-injection suite (tests/test_crash_safety.py)
    to prove crash safety and locking; never set it in production.
    """
    wanted = os.environ.get("CERTCTL_TEST_FAULT")
    if not wanted:
        return
    pause = wanted.startswith("pause:")
    point, _, nth = wanted.removeprefix("pause:").partition("#")
    if point != name:
        return
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if _fault_hits[name] == (int(nth) if nth.isdigit() else 1):
        import signal

        os.kill(os.getpid(), signal.SIGSTOP if pause else signal.SIGKILL)


_deferred = threading.local()  # inside deferred_sync(): fsync once at the end, not per file


@contextlib.contextmanager
def deferred_sync() -> Iterator[None]:
    """Writes inside skip their fsyncs; one sync() of everything when the block ends.

    For filling a new store that nobody uses until it is complete (`store copy`):
    renames stay atomic, and durability comes once, at the end, instead of ~13
    fsyncs a certificate. Never for a store that a web server reads.
    """
    outer = getattr(_deferred, "on", False)
    _deferred.on = True
    try:
        yield
    finally:
        _deferred.on = outer
        if not outer:
            os.sync()


def _fsync(fd: int) -> None:
    if not getattr(_deferred, "on", False):
        os.fsync(fd)


def fsync_dir(path: Path) -> None:
    if getattr(_deferred, "on", False):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(
    directory: Path,
    name: str,
    data: bytes | Iterable[bytes],
    mode: int,
    owner: tuple[int, int] = (-1, -1),
) -> Path:
    """A new fsynced file next to `name` in `directory`, with `mode` (and owner) from the start.

    Never follows a symlink; the caller renames it into place (or unlinks it).
    """
    tmp = directory / temp_name(name)
    write_new(tmp, data, mode, owner)
    return tmp


def write_new(
    path: Path, data: bytes | Iterable[bytes], mode: int, owner: tuple[int, int] = (-1, -1)
) -> None:
    """Create `path` (never an existing file, never through a symlink), write it (`data`,
    or its chunks as they come: a large file need not be joined in memory), fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o600)
    try:
        if owner != (-1, -1):
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)  # whatever the umask
        for chunk in [data] if isinstance(data, bytes) else data:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        _fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def atomic_write(path: Path, data: bytes | Iterable[bytes], mode: int) -> None:
    """Write `data` (or its chunks, in order) to `path` atomically with `mode` from the
    first byte on."""
    tmp = write_temp(path.parent, path.name, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_failed(what: str, exc: OSError) -> StoreError:
    """Turn an OSError during a write into a one-line StoreError naming the path and cause."""
    where = ""
    if exc.filename is not None:
        path = os.fsdecode(exc.filename)
        if ".tmp-" in os.path.basename(path):  # a temp file of an atomic write: its directory
            path = os.path.dirname(path)
        if path not in what:
            where = f" ({path})"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StoreError(f"{what}{where}: disk full ({exc.strerror}); free space and retry")
    return StoreError(f"{what}{where}: {exc.strerror or exc}")


def json_encode(value: object) -> object:
    """Datetimes in the index cache keep their type through a tagged string."""
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    raise TypeError(f"cannot cache {type(value).__name__}")


def json_decode(obj: dict[str, Any]) -> object:
    if len(obj) == 1:
        if "$dt" in obj:
            return datetime.fromisoformat(obj["$dt"])
        if "$d" in obj:
            return date.fromisoformat(obj["$d"])
    return obj


def to_toml(data: dict[str, Any]) -> str:
    """Serialise metadata as TOML (tomli-w, imported when writing only)."""
    import tomli_w

    return tomli_w.dumps(data)
