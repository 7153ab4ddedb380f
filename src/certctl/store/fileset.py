"""A set of files that a reader sees switch all at once: what `certctl export` writes.

In the target directory DIR::

    DIR/cert.pem -> .live/cert.pem       one relative symlink per file, written once
    DIR/.live -> .versions/<n>           the switch: replaced with one rename
    DIR/.versions/<n>/cert.pem ...       each set built under a temp name, renamed whole
    DIR/.versions/.lock                  exports into DIR take turns (flock)

So DIR/cert.pem and DIR/privkey.pem always come from one set: the switch is the
only step a reader can see, like the store's own `live` and Kubernetes' secret
volumes (`..data`). The current set and the one before it are kept. Files that an
older certctl wrote as plain files in DIR are taken over without a visible change:
they become a set of their own (hard links) before the names turn into symlinks.
Temp names are store/files.py's, so a crash's leftovers are recognised and removed
by the next export.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from certctl.errors import BadInput, LockHeld
from certctl.store.files import (
    fault_point,
    fsync_dir,
    leftover_target,
    temp_name,
    write_new,
)

LIVE = ".live"
SETS = ".versions"
SET_MODE = 0o755  # searchable by the server's user; the files carry their own modes
LOCK_WAIT = 30.0  # seconds another export into DIR may take
_SET = re.compile(r"[1-9][0-9]{0,8}")
_LIVE_TARGET = re.compile(rf"\{SETS}/([1-9][0-9]{{0,8}})")

Files = dict[str, tuple[bytes, int]]  # file name → (content, mode)


def publish(directory: Path, files: Files, owner: tuple[int, int] = (-1, -1)) -> Path:
    """Write `files` as a new set in `directory` and switch every name to it at once.

    Returns the new set's directory. OSError when the file system fails (nothing that
    a reader sees has changed then, or the switch is complete); BadInput when
    `directory` holds something certctl must not touch; LockHeld when another export
    into it does not finish in time.
    """
    sets = directory / SETS
    _plain_directory(sets)
    with _locked(sets):
        _clear_leftovers(directory, sets, files)
        previous = _current(directory)
        if previous is None:
            previous = _adopt(directory, sets, files)
        if previous is not None:
            _link_names(directory, files)
        new = _build(sets, files, owner)
        _switch(directory, new, "export-live")
        _link_names(directory, files)  # a fresh DIR: the names appear with the first set
        _prune(sets, keep={new.name, previous.name if previous else new.name})
    return new


def _plain_directory(path: Path) -> None:
    try:
        path.mkdir(mode=SET_MODE)
    except FileExistsError:
        if path.is_symlink() or not path.is_dir():
            raise BadInput(
                f"{path} is not a plain directory: certctl keeps exported sets there;"
                " remove it and retry"
            ) from None
    else:
        os.chmod(path, SET_MODE)  # mkdir's mode is filtered by the umask


@contextlib.contextmanager
def _locked(sets: Path) -> Iterator[None]:
    fd = os.open(sets / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockHeld(
                        f"another export into {sets.parent} is still running; retry later"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the flock (a killed export releases it too)


def _clear_leftovers(directory: Path, sets: Path, files: Files) -> None:
    """Temp entries of an export that was killed (only exports write these names)."""
    for entry in os.listdir(sets):
        if leftover_target(entry) is not None:
            shutil.rmtree(sets / entry, ignore_errors=True)
    ours = {*files, LIVE.lstrip(".")}
    for entry in os.listdir(directory):
        if leftover_target(entry) in ours:
            with contextlib.suppress(OSError):
                os.unlink(directory / entry)  # a temp file or symlink, never a directory


def _current(directory: Path) -> Path | None:
    """The set `.live` points at, when it is one of ours."""
    try:
        match = _LIVE_TARGET.fullmatch(os.readlink(directory / LIVE))
    except OSError:
        return None
    if match is None:
        return None
    current = directory / SETS / match.group(1)
    return current if stat.S_ISDIR(_lstat_mode(current)) else None


def _lstat_mode(path: Path) -> int:
    try:
        return path.lstat().st_mode
    except FileNotFoundError:
        return 0


def _adopt(directory: Path, sets: Path, files: Files) -> Path | None:
    """Plain files left by an older certctl become the current set, content unchanged."""
    found = [f for f in files if stat.S_ISREG(_lstat_mode(directory / f))]
    if not found:
        return None
    tmp = sets / temp_name("set")
    try:
        _mkdir(tmp)
        for filename in found:
            try:  # the same inode: same bytes, mode and owner, nothing to copy
                os.link(directory / filename, tmp / filename, follow_symlinks=False)
            except OSError:  # a file system without hard links, or protected_hardlinks
                _copy(directory / filename, tmp / filename)
        adopted = _commit(sets, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _switch(directory, adopted, "export-adopt")
    return adopted


def _copy(source: Path, target: Path) -> None:
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    owner = (info.st_uid, info.st_gid) if os.geteuid() == 0 else (-1, -1)
    write_new(target, b"".join(chunks), stat.S_IMODE(info.st_mode), owner)


def _link_names(directory: Path, files: Files) -> None:
    """Each name becomes `name -> .live/name` (one rename each; a planted link is replaced)."""
    for filename in files:
        wanted = f"{LIVE}/{filename}"
        with contextlib.suppress(OSError):
            if os.readlink(directory / filename) == wanted:
                continue
        tmp = directory / temp_name(filename)
        os.symlink(wanted, tmp)
        try:
            os.replace(tmp, directory / filename)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fault_point(f"export-link-{filename}")
    fsync_dir(directory)


def _build(sets: Path, files: Files, owner: tuple[int, int]) -> Path:
    """A complete new set, fsynced, renamed into place under the next number."""
    tmp = sets / temp_name("set")
    try:
        _mkdir(tmp)
        for filename, (data, mode) in files.items():
            write_new(tmp / filename, data, mode, owner)
            fault_point(f"export-{filename}")
        built = _commit(sets, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fault_point("export-set-after")
    return built


def _mkdir(path: Path) -> None:
    os.mkdir(path, SET_MODE)
    os.chmod(path, SET_MODE)


def _commit(sets: Path, tmp: Path) -> Path:
    fsync_dir(tmp)
    numbers = [int(e) for e in os.listdir(sets) if _SET.fullmatch(e)]
    target = sets / str(max(numbers, default=0) + 1)
    os.rename(tmp, target)
    fsync_dir(sets)
    return target


def _switch(directory: Path, new: Path, point: str) -> None:
    """Point `.live` at `new` with one rename: the instant every name changes."""
    tmp = directory / temp_name(LIVE.lstrip("."))
    os.symlink(f"{SETS}/{new.name}", tmp)
    fault_point(f"{point}-before")
    try:
        os.replace(tmp, directory / LIVE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
    fault_point(f"{point}-after")


def _prune(sets: Path, keep: set[str]) -> None:
    """Sets older than the current one and the one before it (a reader may still be on it)."""
    for entry in os.listdir(sets):
        if _SET.fullmatch(entry) and entry not in keep and stat.S_ISDIR(_lstat_mode(sets / entry)):
            shutil.rmtree(sets / entry, ignore_errors=True)
