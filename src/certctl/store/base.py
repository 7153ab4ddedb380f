"""What every part of the filesystem store shares: its root, safety checks, directories."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from certctl.errors import BadInput
from certctl.store.files import DIR_MODE, FORMAT, KEY_MODE, META_MODE, atomic_write, to_toml

Warn = Callable[[str], None]


class StoreRoot:
    """A certctl store directory: created, checked and repaired here."""

    def __init__(self, root: Path, warn: Warn | None = None) -> None:
        self.root = Path(os.path.abspath(root))
        self._warn: Warn = warn or (lambda message: print(message, file=sys.stderr))

    # ---- setup and safety -------------------------------------------------

    def exists(self) -> bool:
        """True when the store directory has been created."""
        return (self.root / "certctl-store.toml").is_file()

    def check(self) -> None:
        """Refuse a symlinked store root; repair loose permissions with a warning."""
        if self.root.is_symlink():
            raise BadInput(f"store {self.root} is a symlink: point --store at the real directory")
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise BadInput(f"store {self.root} is not a directory: choose another --store")
        for path in (self.root, self.root / "certs", self.root / "accounts", self.root / "locks"):
            self._repair_mode(path, DIR_MODE)

    def _repair_mode(self, path: Path, wanted: int) -> None:
        try:
            info = path.lstat()
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode):
            raise BadInput(f"{path} is a symlink inside the store: remove it and retry")
        if stat.S_IMODE(info.st_mode) & ~wanted:
            os.chmod(path, wanted)
            self._warn(
                f"warning: {path} had mode {stat.S_IMODE(info.st_mode):o}; repaired to {wanted:o}"
            )

    def ensure(self) -> None:
        """Create the store layout if missing (0700 directories)."""
        self.check()
        for path in (self.root, self.root / "certs", self.root / "accounts", self.root / "locks"):
            self._mkdir(path)
        marker = self.root / "certctl-store.toml"
        if not marker.exists():
            atomic_write(marker, to_toml({"format": FORMAT}).encode(), META_MODE)

    def _read_private(self, path: Path) -> bytes:
        """Read a key, repairing (with a warning) permissions looser than 0600."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if mode & ~KEY_MODE:
                os.fchmod(fd, KEY_MODE)
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
        else:
            os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask
