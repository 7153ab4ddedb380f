"""The store: owns every byte under the store directory.

Layout (README "Store layout")::

    <root>/certctl-store.toml          format marker
    <root>/accounts/<ca-id>/account.toml, account.key
    <root>/certs/<name>/meta.toml      the CertRecord
    <root>/certs/<name>/pending.key    key of the order in progress
    <root>/certs/<name>/versions/<n>/{cert,chain,fullchain,privkey}.pem
    <root>/certs/<name>/live -> versions/<n>   (one symlink: switched atomically)
    <root>/locks/<name>.lock           per-certificate flock

Guarantees: every file is written to a temp file in its directory, fsynced and
renamed; a version directory is built under a temp name and renamed whole; the
live symlink is replaced with one rename. So a crash leaves each certificate
either as it was or fully updated. Directories are 0700 and keys 0600 whatever
the umask.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import stat
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from certctl.errors import BadInput, LockHeld, NotFound, StoreError
from certctl.models import AccountRecord, CertRecord
from certctl.names import check_cert_name

FORMAT = 1
DIR_MODE = 0o700
KEY_MODE = 0o600
CERT_MODE = 0o644
META_MODE = 0o600
LIVE_FILES = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")
_VERSION_DIR = re.compile(r"[0-9]{1,9}")

Warn = Callable[[str], None]


def fault_point(name: str) -> None:
    """Test-only crash hook: SIGKILL this process when CERTCTL_TEST_FAULT names this point.

    Used by the fault-injection suite to prove crash safety; never set it in production.
    """
    if os.environ.get("CERTCTL_TEST_FAULT") == name:
        os.kill(os.getpid(), 9)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` atomically with `mode` from the first byte on."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed or widened nothing; make sure
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _write_failed(what: str, exc: OSError) -> StoreError:
    """Turn an OSError during a write into a one-line StoreError."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StoreError(f"{what}: disk full ({exc.strerror}); free space and retry")
    return StoreError(f"{what}: {exc.strerror or exc}")


@dataclass(frozen=True)
class LivePaths:
    """Stable paths a web server points at; they always hold a matching pair."""

    directory: Path
    cert: Path
    chain: Path
    fullchain: Path
    privkey: Path

    def as_dict(self) -> dict[str, str]:
        """Paths as strings, for reports and hook environments."""
        return {
            "cert": str(self.cert),
            "chain": str(self.chain),
            "fullchain": str(self.fullchain),
            "privkey": str(self.privkey),
        }


class Store:
    """A certctl store rooted at one directory."""

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
            atomic_write(marker, tomli_w.dumps({"format": FORMAT}).encode(), META_MODE)

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if path.is_symlink() or not path.is_dir():
                raise BadInput(f"{path} is not a plain directory: remove it and retry") from None
        else:
            os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask

    # ---- certificates -----------------------------------------------------

    def _cert_dir(self, name: str) -> Path:
        return self.root / "certs" / check_cert_name(name)

    def names(self) -> list[str]:
        """Names of all certificates in the store, sorted."""
        certs = self.root / "certs"
        try:
            entries = [e.name for e in os.scandir(certs) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []
        result = []
        for entry in entries:
            if entry.startswith("."):
                continue
            try:
                check_cert_name(entry)
            except BadInput:
                continue
            result.append(entry)
        return sorted(result)

    def has(self, name: str) -> bool:
        """True when a certificate with this name exists."""
        return (self._cert_dir(name) / "meta.toml").is_file()

    def read(self, name: str) -> CertRecord:
        """Read one certificate's record; NotFound or StoreError when missing/damaged."""
        path = self._cert_dir(name) / "meta.toml"
        if path.parent.is_symlink():
            raise StoreError(f"{path.parent} is a symlink: the store refuses it; remove it")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"no certificate named {name!r} in {self.root}: see 'certctl list'"
            ) from None
        try:
            record = CertRecord.from_dict(tomllib.loads(data.decode("utf-8")))
        except (
            tomllib.TOMLDecodeError,
            UnicodeDecodeError,
            TypeError,
            ValueError,
            KeyError,
            AttributeError,
        ) as e:
            raise StoreError(
                f"metadata of {name!r} is damaged ({path}): {type(e).__name__};"
                " restore it from a backup or remove the certificate"
            ) from e
        if record.name != name:
            raise StoreError(f"metadata of {name!r} names {record.name!r} ({path}): damaged")
        return record

    def write(self, record: CertRecord) -> None:
        """Write a certificate's record atomically (creating its directory)."""
        directory = self._cert_dir(record.name)
        self._mkdir(directory)
        fault_point("meta-before")
        try:
            atomic_write(
                directory / "meta.toml", tomli_w.dumps(record.to_dict()).encode(), META_MODE
            )
        except OSError as e:
            raise _write_failed(f"write metadata of {record.name!r}", e) from e
        fault_point("meta-after")

    def write_pending_key(self, name: str, key_pem: bytes) -> None:
        """Store the private key of the order in progress (0600)."""
        directory = self._cert_dir(name)
        self._mkdir(directory)
        try:
            atomic_write(directory / "pending.key", key_pem, KEY_MODE)
        except OSError as e:
            raise _write_failed(f"write the new key of {name!r}", e) from e
        fault_point("pending-key-after")

    def read_pending_key(self, name: str) -> bytes | None:
        """The pending order's key, or None."""
        try:
            return (self._cert_dir(name) / "pending.key").read_bytes()
        except FileNotFoundError:
            return None

    def drop_pending_key(self, name: str) -> None:
        """Delete the pending key once it is safely stored in a version."""
        with contextlib.suppress(FileNotFoundError):
            (self._cert_dir(name) / "pending.key").unlink()

    def versions(self, name: str) -> list[int]:
        """Complete version numbers of a certificate, ascending."""
        try:
            entries = os.listdir(self._cert_dir(name) / "versions")
        except FileNotFoundError:
            return []
        return sorted(int(e) for e in entries if _VERSION_DIR.fullmatch(e))

    def live_version(self, name: str) -> int | None:
        """The version the live paths point at, or None."""
        try:
            target = os.readlink(self._cert_dir(name) / "live")
        except (FileNotFoundError, OSError):
            return None
        tail = Path(target).name
        return int(tail) if _VERSION_DIR.fullmatch(tail) else None

    def add_version(self, name: str, *, cert: bytes, chain: bytes, key: bytes) -> int:
        """Store a new version (built under a temp name, renamed whole); returns its number."""
        versions_dir = self._cert_dir(name) / "versions"
        self._mkdir(self._cert_dir(name))
        self._mkdir(versions_dir)
        number = max(self.versions(name), default=0) + 1
        tmp = versions_dir / f".tmp-{number}-{secrets.token_hex(4)}"
        try:
            self._mkdir(tmp)
            files = {
                "privkey.pem": (key, KEY_MODE),
                "cert.pem": (cert, CERT_MODE),
                "chain.pem": (chain, CERT_MODE),
                "fullchain.pem": (cert + chain, CERT_MODE),
            }
            for filename, (data, mode) in files.items():
                atomic_write(tmp / filename, data, mode)
                fault_point(f"version-{filename}")
            os.rename(tmp, versions_dir / str(number))
            _fsync_dir(versions_dir)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _write_failed(f"store the new certificate of {name!r}", e) from e
        fault_point("version-after")
        return number

    def read_version(self, name: str, version: int) -> dict[str, bytes]:
        """The PEM files of one stored version."""
        directory = self._cert_dir(name) / "versions" / str(version)
        try:
            return {f: (directory / f).read_bytes() for f in LIVE_FILES}
        except FileNotFoundError as e:
            raise StoreError(f"version {version} of {name!r} is incomplete ({e.filename})") from e

    def switch_live(self, name: str, version: int) -> None:
        """Point the live paths at `version` with one atomic rename."""
        directory = self._cert_dir(name)
        if not (directory / "versions" / str(version) / "privkey.pem").is_file():
            raise StoreError(f"version {version} of {name!r} is missing; not switching live")
        tmp = directory / f".live.tmp-{secrets.token_hex(4)}"
        fault_point("live-before")
        try:
            os.symlink(f"versions/{version}", tmp)
            os.replace(tmp, directory / "live")
            _fsync_dir(directory)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise _write_failed(f"switch live files of {name!r}", e) from e
        fault_point("live-after")

    def live_paths(self, name: str) -> LivePaths:
        """The stable paths of a certificate (valid once it has a live version)."""
        live = self._cert_dir(name) / "live"
        return LivePaths(
            directory=live,
            cert=live / "cert.pem",
            chain=live / "chain.pem",
            fullchain=live / "fullchain.pem",
            privkey=live / "privkey.pem",
        )

    def read_live(self, name: str) -> dict[str, bytes] | None:
        """The live PEM files, or None when the certificate has none yet."""
        version = self.live_version(name)
        return None if version is None else self.read_version(name, version)

    def remove(self, name: str) -> None:
        """Delete a certificate entirely: renamed away in one step, then deleted."""
        directory = self._cert_dir(name)
        if not directory.exists():
            raise NotFound(f"no certificate named {name!r} in {self.root}: see 'certctl list'")
        trash = directory.with_name(f".removed-{name}-{secrets.token_hex(4)}")
        os.rename(directory, trash)
        _fsync_dir(directory.parent)
        shutil.rmtree(trash, ignore_errors=True)

    # ---- accounts ---------------------------------------------------------

    def _account_dir(self, server: str) -> Path:
        digest = hashlib.sha256(server.encode()).hexdigest()[:16]
        return self.root / "accounts" / digest

    def read_account(self, server: str) -> tuple[AccountRecord, bytes] | None:
        """The account record and key PEM for a CA directory URL, or None."""
        directory = self._account_dir(server)
        try:
            data = (directory / "account.toml").read_bytes()
            key = (directory / "account.key").read_bytes()
        except FileNotFoundError:
            return None
        try:
            return AccountRecord.from_dict(tomllib.loads(data.decode())), key
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, TypeError, AttributeError) as e:
            raise StoreError(f"account metadata for {server} is damaged ({directory})") from e

    def write_account_key(self, server: str, key_pem: bytes) -> None:
        """Store an account key (0600) before it is registered anywhere."""
        directory = self._account_dir(server)
        self._mkdir(directory)
        try:
            atomic_write(directory / "account.key", key_pem, KEY_MODE)
        except OSError as e:
            raise _write_failed(f"write the account key for {server}", e) from e

    def read_account_key(self, server: str) -> bytes | None:
        """An account key written before registration completed, or None."""
        try:
            return (self._account_dir(server) / "account.key").read_bytes()
        except FileNotFoundError:
            return None

    def write_account(self, record: AccountRecord) -> None:
        """Store the account record for its CA."""
        directory = self._account_dir(record.server)
        self._mkdir(directory)
        try:
            atomic_write(
                directory / "account.toml", tomli_w.dumps(record.to_dict()).encode(), META_MODE
            )
        except OSError as e:
            raise _write_failed(f"write the account for {record.server}", e) from e

    # ---- locks ------------------------------------------------------------

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
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, META_MODE)
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
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing releases the flock; a killed process releases it too

    def account_lock(self, server: str) -> contextlib.AbstractContextManager[None]:
        """Lock serialising account creation for one CA."""
        return self.lock(self._account_dir(server).name, what="account")
