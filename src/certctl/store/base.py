"""What every part of the filesystem store shares: its root, safety checks, directories."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from certctl.errors import BadInput, StoreError
from certctl.policy.names import check_cert_name
from certctl.store.files import (
    DIR_MODE,
    FORMAT,
    KEY_MODE,
    META_MODE,
    atomic_write,
    to_toml,
    write_failed,
)

Warn = Callable[[str], None]


MARKER = "certctl-store.toml"
LAYOUT = ("certs", "accounts", "locks")


class StoreRoot:
    """A certctl store directory: created, checked and repaired here.

    A directory is certctl's store when it holds the marker certctl-store.toml. An
    empty or missing directory becomes one on the first write; any other directory
    (a typo'd --store, /var/www/html) is refused untouched: never chmod-ed, never
    written into.
    """

    def __init__(self, root: Path, warn: Warn | None = None) -> None:
        self.root = Path(os.path.abspath(root))
        self._warn: Warn = warn or (lambda message: print(message, file=sys.stderr))

    @property
    def location(self) -> str:
        """The store directory, for messages."""
        return str(self.root)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Each write is atomic on its own; the live switch is the commit point."""
        from certctl.store.contract import no_transaction

        return no_transaction()

    def bulk_load(self) -> contextlib.AbstractContextManager[None]:
        """One sync() at the end instead of an fsync per file (store/files.deferred_sync)."""
        from certctl.store.files import deferred_sync

        return deferred_sync()

    def close(self) -> None:
        """Nothing to release: locks are closed with their `with` blocks."""

    def owns_path(self, path: Path) -> bool:
        """True when `path` is the store directory or inside it."""
        resolved, root = path.resolve(), self.root.resolve()
        return resolved == root or root in resolved.parents

    # ---- setup and safety -------------------------------------------------

    def exists(self) -> bool:
        """True when the store directory has been created."""
        return (self.root / MARKER).is_file()

    def check(self) -> None:
        """Refuse a symlinked store root, a non-directory and a directory that is not a store;
        repair loose permissions of the store with a warning."""
        try:
            info = os.lstat(self.root)
        except FileNotFoundError:
            return
        except NotADirectoryError:
            raise BadInput(
                f"store {self.root}: {self._file_in_path()} is not a directory:"
                " choose another --store"
            ) from None
        except OSError as e:
            raise StoreError(f"store {self.root}: {e.strerror}") from e
        if stat.S_ISLNK(info.st_mode):
            raise BadInput(f"store {self.root} is a symlink: point --store at the real directory")
        if not stat.S_ISDIR(info.st_mode):
            raise BadInput(f"store {self.root} is not a directory: choose another --store")
        if not self.exists():
            if self.foreign():
                raise BadInput(
                    f"{self.root} is not a certctl store (no {MARKER}) and is not empty:"
                    " check --store / CERTCTL_STORE, or give an empty or new directory;"
                    " nothing in it was changed"
                )
            return  # empty: it becomes the store on the first write
        for path in (self.root, *(self.root / d for d in LAYOUT)):
            self._repair_mode(path, DIR_MODE)

    def foreign(self) -> bool:
        """True when the root is a directory with someone else's files in it (no marker).

        certctl's own leftovers of an interrupted creation (a marker temp file,
        empty layout directories of an older certctl) do not count.
        """
        if self.exists():
            return False
        try:
            entries = os.listdir(self.root)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as e:
            raise StoreError(f"store {self.root}: {e.strerror}") from e
        for entry in entries:
            if entry.startswith(f".{MARKER}.tmp-"):
                continue
            path = self.root / entry
            if entry in LAYOUT and not path.is_symlink() and path.is_dir():
                try:
                    if not os.listdir(path):
                        continue
                except OSError:
                    pass
            return True
        return False

    def _file_in_path(self) -> Path:
        """The first component of the root's path that exists and is not a directory."""
        for parent in reversed(self.root.parents):
            if os.path.lexists(parent) and not parent.is_dir():
                return parent
        return self.root

    def _repair_mode(self, path: Path, wanted: int) -> None:
        try:
            info = path.lstat()
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode):
            raise BadInput(f"{path} is a symlink inside the store: remove it and retry")
        mode = stat.S_IMODE(info.st_mode)
        if mode & ~wanted:
            try:
                os.chmod(path, wanted)
            except OSError as e:  # a read-only store, or someone else's: still readable
                self._warn(
                    f"warning: {path} has mode {mode:o} (expected {wanted:o}) and cannot be"
                    f" repaired: {e.strerror}"
                )
                return
            self._warn(f"warning: {path} had mode {mode:o}; repaired to {wanted:o}")

    def ensure(self) -> None:
        """Create the store if missing: parents as needed, the root 0700 and its marker first,
        then the 0700 layout directories."""
        self.check()
        if not self.exists():
            try:
                self.root.parent.mkdir(parents=True, exist_ok=True)  # like mkdir -p
            except OSError as e:
                raise write_failed(f"create the store {self.root}", e) from e
            self._mkdir(self.root)
            try:
                os.chmod(self.root, DIR_MODE)  # an empty directory that becomes the store
                atomic_write(self.root / MARKER, to_toml({"format": FORMAT}).encode(), META_MODE)
            except OSError as e:
                raise write_failed(f"create the store {self.root}", e) from e
        for path in (self.root / d for d in LAYOUT):
            self._mkdir(path)

    def _read_private(self, path: Path) -> bytes:
        """Read a key, repairing (with a warning) permissions looser than 0600."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise StoreError(f"read {path}: {e.strerror}") from e
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if mode & ~KEY_MODE:
                try:
                    os.fchmod(fd, KEY_MODE)
                except OSError as e:
                    self._warn(
                        f"warning: {path} has mode {mode:o} (expected 600) and cannot be"
                        f" repaired: {e.strerror}"
                    )
                else:
                    self._warn(f"warning: {path} had mode {mode:o}; repaired to 600")
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if path.is_symlink() or not path.is_dir():
                raise BadInput(f"{path} is not a plain directory: remove it and retry") from None
            return
        except OSError as e:
            raise write_failed(f"create {path}", e) from e
        try:
            os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask
        except OSError as e:
            raise write_failed(f"create {path}", e) from e

    def _cert_dir(self, name: str) -> Path:
        """certs/<name>, for a valid certificate name only."""
        return self.root / "certs" / check_cert_name(name)
