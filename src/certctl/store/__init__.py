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
import fcntl
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from certctl.errors import BadInput, CertctlError, LockHeld, NotFound, StoreError
from certctl.models import AccountRecord, CertRecord, Current
from certctl.policy.names import check_cert_name
from certctl.store.files import (
    atomic_write,
    fault_point,
    fsync_dir,
    to_toml,
    write_failed,
)

__all__ = ["LivePaths", "Store", "atomic_write", "fault_point"]

FORMAT = 1
DIR_MODE = 0o700
KEY_MODE = 0o600
CERT_MODE = 0o644
META_MODE = 0o600
LIVE_FILES = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")
_VERSION_DIR = re.compile(r"[0-9]{1,9}")

Warn = Callable[[str], None]


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
        import tomllib

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
        self._reconcile(record)
        return record

    def _reconcile(self, record: CertRecord) -> None:
        """Make `record.current` describe the live version after an interrupted update.

        The live switch is the commit point: a crash between it and the metadata
        write leaves meta.toml describing the previous version. The facts of each
        version are also kept in its own info.toml, so they are taken from there, and
        an order whose key is now live is known to be complete.
        """
        live = self.live_version(record.name)
        if live is None or (record.current is not None and record.current.version == live):
            return
        directory = self._cert_dir(record.name) / "versions" / str(live)
        try:
            import tomllib

            facts = tomllib.loads((directory / "info.toml").read_text("utf-8"))
            record.current = Current.from_dict({**facts, "version": live})
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return  # an older version without info.toml: keep what meta.toml says
        if record.current.names and set(record.current.names) != set(record.domains):
            record.domains = list(record.current.names)
        pending = self.read_pending_key(record.name)
        if pending is not None and pending == (directory / "privkey.pem").read_bytes():
            record.order = None  # the order's certificate is the live one: it is done

    def records(self) -> list[tuple[str, CertRecord | CertctlError]]:
        """Every certificate's record (or the error reading it), fast for large stores.

        Unchanged records come from the index.json cache (store/index.py).
        """
        from certctl.store.index import cached_records  # here: index imports this package

        return cached_records(self)

    def write(self, record: CertRecord) -> None:
        """Write a certificate's record atomically (creating its directory)."""
        directory = self._cert_dir(record.name)
        self._mkdir(directory)
        fault_point("meta-before")
        try:
            atomic_write(directory / "meta.toml", to_toml(record.to_dict()).encode(), META_MODE)
        except OSError as e:
            raise write_failed(f"write metadata of {record.name!r}", e) from e
        fault_point("meta-after")

    def write_pending_key(self, name: str, key_pem: bytes) -> None:
        """Store the private key of the order in progress (0600)."""
        directory = self._cert_dir(name)
        self._mkdir(directory)
        try:
            atomic_write(directory / "pending.key", key_pem, KEY_MODE)
        except OSError as e:
            raise write_failed(f"write the new key of {name!r}", e) from e
        fault_point("pending-key-after")

    def read_pending_key(self, name: str) -> bytes | None:
        """The pending order's key, or None."""
        try:
            return self._read_private(self._cert_dir(name) / "pending.key")
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

    def add_version(
        self, name: str, *, cert: bytes, chain: bytes, key: bytes, facts: Current | None = None
    ) -> int:
        """Store a new version (built under a temp name, renamed whole); returns its number.

        `facts` (dates, serial, issuer...) are kept with the version, so the live
        switch alone commits a certificate, its key and what certctl knows of it.
        """
        versions_dir = self._cert_dir(name) / "versions"
        self._mkdir(self._cert_dir(name))
        self._mkdir(versions_dir)
        number = max(self.versions(name), default=0) + 1
        tmp = versions_dir / f".tmp-{number}-{os.urandom(4).hex()}"
        try:
            self._mkdir(tmp)
            files = {
                "privkey.pem": (key, KEY_MODE),
                "cert.pem": (cert, CERT_MODE),
                "chain.pem": (chain, CERT_MODE),
                "fullchain.pem": (cert + chain, CERT_MODE),
            }
            if facts is not None:
                info = {**facts.to_dict(), "version": number}
                files["info.toml"] = (to_toml(info).encode(), META_MODE)
            for filename, (data, mode) in files.items():
                atomic_write(tmp / filename, data, mode)
                fault_point(f"version-{filename}")
            os.rename(tmp, versions_dir / str(number))
            fsync_dir(versions_dir)
        except OSError as e:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise write_failed(f"store the new certificate of {name!r}", e) from e
        fault_point("version-after")
        return number

    def unswitched_version(self, name: str, cert: bytes, key: bytes) -> int | None:
        """A complete version newer than live holding exactly this certificate and key."""
        live = self.live_version(name) or 0
        for version in reversed(self.versions(name)):
            if version <= live:
                break
            directory = self._cert_dir(name) / "versions" / str(version)
            try:
                same = (directory / "cert.pem").read_bytes() == cert and (
                    directory / "privkey.pem"
                ).read_bytes() == key
            except OSError:
                continue
            if same and all((directory / f).is_file() for f in LIVE_FILES):
                return version
        return None

    def read_version(self, name: str, version: int) -> dict[str, bytes]:
        """The PEM files of one stored version."""
        directory = self._cert_dir(name) / "versions" / str(version)
        try:
            return {
                f: self._read_private(directory / f)
                if f == "privkey.pem"
                else ((directory / f).read_bytes())
                for f in LIVE_FILES
            }
        except FileNotFoundError as e:
            raise StoreError(f"version {version} of {name!r} is incomplete ({e.filename})") from e

    def switch_live(self, name: str, version: int) -> None:
        """Point the live paths at `version` with one atomic rename."""
        directory = self._cert_dir(name)
        if not (directory / "versions" / str(version) / "privkey.pem").is_file():
            raise StoreError(f"version {version} of {name!r} is missing; not switching live")
        tmp = directory / f".live.tmp-{os.urandom(4).hex()}"
        fault_point("live-before")
        try:
            os.symlink(f"versions/{version}", tmp)
            os.replace(tmp, directory / "live")
            fsync_dir(directory)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise write_failed(f"switch live files of {name!r}", e) from e
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
        trash = directory.with_name(f".removed-{name}-{os.urandom(4).hex()}")
        os.rename(directory, trash)
        fsync_dir(directory.parent)
        import shutil

        shutil.rmtree(trash, ignore_errors=True)

    # ---- accounts ---------------------------------------------------------

    def _account_dir(self, server: str) -> Path:
        import hashlib

        digest = hashlib.sha256(server.encode()).hexdigest()[:16]
        return self.root / "accounts" / digest

    def read_account(self, server: str) -> tuple[AccountRecord, bytes] | None:
        """The account record and key PEM for a CA directory URL, or None."""
        directory = self._account_dir(server)
        try:
            data = (directory / "account.toml").read_bytes()
            key = self._read_private(directory / "account.key")
        except FileNotFoundError:
            return None
        import tomllib

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
            raise write_failed(f"write the account key for {server}", e) from e

    def read_account_key(self, server: str) -> bytes | None:
        """An account key written before registration completed, or None."""
        try:
            return self._read_private(self._account_dir(server) / "account.key")
        except FileNotFoundError:
            return None

    def write_account(self, record: AccountRecord) -> None:
        """Store the account record for its CA."""
        directory = self._account_dir(record.server)
        self._mkdir(directory)
        try:
            atomic_write(directory / "account.toml", to_toml(record.to_dict()).encode(), META_MODE)
        except OSError as e:
            raise write_failed(f"write the account for {record.server}", e) from e

    # ---- account key rollover (RFC 8555 §7.3.5) ----------------------------
    #
    # The CA switches an account's key atomically, but a crash or a lost response
    # can leave certctl not knowing whether it did. So the old key stays as
    # account.key.old beside the new account.key until the CA has confirmed:
    # while account.key.old exists the rollover is unsettled, and the next user of
    # the account asks the CA which of the two keys it accepts.

    def begin_account_key_rollover(self, record: AccountRecord, new_key_pem: bytes) -> None:
        """Make `new_key_pem` the account key, keeping the old one as account.key.old.

        Each step is durable before the next: the old key hard-linked as
        account.key.old; the new key written under a temp name and renamed over
        account.key; the record rewritten. The caller holds account_lock() and
        then settles with finish_account_key_rollover().
        """
        directory = self._account_dir(record.server)
        old = directory / "account.key.old"
        if old.exists():
            raise StoreError(
                f"an earlier key rollover of the account at {record.server} is unsettled"
                f" ({old}): run 'certctl account show' to settle it, then retry"
            )
        try:
            os.link(directory / "account.key", old)
            fsync_dir(directory)
            fault_point("account-rollover-old-kept")
            atomic_write(directory / "account.key", new_key_pem, KEY_MODE)
        except OSError as e:
            raise write_failed(f"store the new account key for {record.server}", e) from e
        fault_point("account-rollover-new-written")
        self.write_account(record)

    def previous_account_key(self, server: str) -> bytes | None:
        """The old key of an unsettled rollover (account.key.old), or None."""
        try:
            return (self._account_dir(server) / "account.key.old").read_bytes()
        except FileNotFoundError:
            return None

    def finish_account_key_rollover(self, record: AccountRecord, *, keep_new: bool) -> None:
        """Settle a rollover once the CA has said which key it accepts.

        keep_new drops account.key.old; otherwise the CA kept the old key, and it
        is renamed back over account.key (the unused new key is discarded).
        """
        fault_point("account-rollover-settle")
        directory = self._account_dir(record.server)
        old = directory / "account.key.old"
        try:
            if keep_new:
                old.unlink(missing_ok=True)
            else:
                os.replace(old, directory / "account.key")
            fsync_dir(directory)
        except OSError as e:
            raise write_failed(f"settle the account key for {record.server}", e) from e
        self.write_account(record)

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

    def account_lock(self, server: str) -> contextlib.AbstractContextManager[None]:
        """Lock serialising account creation for one CA."""
        return self.lock(self._account_dir(server).name, what="account")
