"""Per-certificate (and per-account) exclusive locks: flock on files under locks/."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from certctl.errors import LockHeld
from certctl.policy.names import check_cert_name
from certctl.store.base import StoreRoot
from certctl.store.files import META_MODE, write_failed


class StoreLocks(StoreRoot):
    """Locks that a killed process releases by itself (the kernel drops its flock)."""

    @contextlib.contextmanager
    def lock(self, name: str, *, what: str = "certificate", wait: float = 0) -> Iterator[None]:
        """Hold an exclusive lock; LockHeld (exit 3) names the holder.

        With `wait`, poll for up to that many seconds before giving up. The store
        must exist (callers create it with ensure() when they are about to write).
        """
        if not (self.root / "locks").is_dir():
            self.ensure()
        lock_name = name if what == "certificate" else f"_{what}-{name}"
        if what == "certificate":
            check_cert_name(name)
        path = self.root / "locks" / f"{lock_name}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, META_MODE)
        except OSError as e:  # a read-only or foreign-owned store
            raise write_failed(f"lock {what} {name!r}", e) from e
        try:
            deadline = time.monotonic() + wait
            delay = 0.02
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() < deadline:
                        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                        delay = min(delay * 1.5, 0.5)
                        continue
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                    raise LockHeld(
                        f"{what} {name!r} is locked by {holder or 'another process'}; another"
                        " certctl is running — retry later"
                    ) from None
            with contextlib.suppress(OSError):  # who holds it: best effort (disk may be full)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing releases the flock; a killed process releases it too
