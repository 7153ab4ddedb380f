"""The filesystem store: certificates, their versions and the live switch (see store/)."""

from __future__ import annotations

import contextlib
import os
import re

from certctl.errors import BadInput, CertctlError, NotFound, StoreError
from certctl.models import CertRecord, Current, RecordError
from certctl.policy.names import check_cert_name
from certctl.store.contract import Glance, LivePaths, Summarizer
from certctl.store.files import (
    CERT_MODE,
    KEY_MODE,
    LIVE_FILES,
    META_MODE,
    atomic_write,
    fault_point,
    fsync_dir,
    removed_name,
    temp_name,
    to_toml,
    write_failed,
)
from certctl.store.fleetfiles import StoreFleet
from certctl.store.origin import origin_of, previous_record, read_toml, settle_on

_VERSION_DIR = re.compile(r"[1-9][0-9]{0,8}")
_LIVE_TARGET = re.compile(r"versions/([1-9][0-9]{0,8})")  # exactly what switch_live writes


class Store(StoreFleet):
    """A certctl store rooted at one directory: certificates, their versions and live files."""

    backend = "filesystem"

    # ---- certificates -----------------------------------------------------

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
            # a RecordError or TOML error names the field or line (never a value): say it
            cause = str(e) if isinstance(e, RecordError | tomllib.TOMLDecodeError) else ""
            raise StoreError(
                f"metadata of {name!r} is damaged ({path}): {cause or type(e).__name__};"
                " restore it from a backup or remove the certificate"
            ) from e
        if record.name != name:
            raise StoreError(f"metadata of {name!r} names {record.name!r} ({path}): damaged")
        return self._reconcile(record)

    def _reconcile(self, record: CertRecord) -> CertRecord:
        """The record as it describes the live version, after an interrupted update.

        The live switch is the commit point, in both directions. A crash between it
        and the metadata write leaves meta.toml describing the previous version: each
        version keeps its facts and origin (source, key type, validation) in its own
        info.toml, so they are taken from there. `upload --replace` writes meta.toml
        ahead of the switch, keeping the record it replaces in the new version's
        previous.toml: if live never moved (or was moved back by hand), that record
        is the truth again.
        """
        live = self.live_version(record.name)
        if live is None or (record.current is not None and record.current.version == live):
            return record
        versions = self._cert_dir(record.name) / "versions"
        if record.current is not None:
            previous = previous_record(versions / str(record.current.version), record.name, live)
            if previous is not None:
                return previous
        directory = versions / str(live)
        info = read_toml(directory / "info.toml")
        if info is None or not settle_on(record, live, info):
            return record  # an older version without info.toml: keep what meta.toml says
        key_id = record.order.key_id if record.order is not None else None
        pending = self.read_pending_key(record.name, key_id)
        if pending is not None and pending == (directory / "privkey.pem").read_bytes():
            record.order = None  # the order's certificate is the live one: it is done
        return record

    def records(self) -> list[tuple[str, CertRecord | CertctlError]]:
        """Every certificate's record (or the error reading it), fast for large stores.

        Unchanged records come from the index.json cache (store/index.py).
        """
        from certctl.store.index import cached_records  # imported when used: json and the cache

        return cached_records(self)

    def glances(self, summarizer: Summarizer | None) -> list[Glance]:
        """Every certificate's summary and its record on demand, from the index.json cache."""
        from certctl.store.index import cached_glances

        return cached_glances(self, summarizer)

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

    def versions(self, name: str) -> list[int]:
        """Complete version numbers of a certificate, ascending."""
        try:
            entries = os.listdir(self._cert_dir(name) / "versions")
        except FileNotFoundError:
            return []
        return sorted(int(e) for e in entries if _VERSION_DIR.fullmatch(e))

    def live_version(self, name: str) -> int | None:
        """The version the live paths point at, or None; StoreError when `live` is damaged.

        Only `live -> versions/<n>` (relative, inside the certificate) is a live version:
        anything else was not written by certctl, and guessing could serve a stranger's key.
        """
        live = self._cert_dir(name) / "live"
        try:
            target = os.readlink(live)
        except FileNotFoundError:
            return None
        except OSError:
            raise StoreError(
                f"{live} is not a symlink: damaged; move it away and point live at a stored"
                " version (see README 'Store layout')"
            ) from None
        match = _LIVE_TARGET.fullmatch(target)
        if match is None:
            raise StoreError(
                f"{live} points at {target!r}, not at versions/<n> of {name!r}: damaged;"
                " point it at a stored version (see README 'Store layout')"
            )
        return int(match.group(1))

    def add_version(
        self,
        name: str,
        *,
        cert: bytes,
        chain: bytes,
        key: bytes,
        facts: Current | None = None,
        record: CertRecord | None = None,
        previous: CertRecord | None = None,
        number: int | None = None,
    ) -> int:
        """Store a new version (built under a temp name, renamed whole); returns its number.

        `facts` (dates, serial, issuer...) are kept with the version, with the origin
        (source, key type, validation) of `record`, or of the stored record when none
        is given, so the live switch alone commits a certificate, its key and what
        certctl knows of it. `previous` is the record this version replaces, kept for
        a record written ahead of the switch (see _reconcile).
        """
        versions_dir = self._cert_dir(name) / "versions"
        self._mkdir(self._cert_dir(name))
        self._mkdir(versions_dir)
        existing = self.versions(name)
        if number is None:
            number = max(existing, default=0) + 1
        elif number in existing:
            raise StoreError(f"version {number} of {name!r} exists already")
        tmp = versions_dir / temp_name(str(number))
        try:
            self._mkdir(tmp)
            files = {
                "privkey.pem": (key, KEY_MODE),
                "cert.pem": (cert, CERT_MODE),
                "chain.pem": (chain, CERT_MODE),
                "fullchain.pem": (cert + chain, CERT_MODE),
            }
            if facts is not None:
                origin = origin_of(record or self._stored(name))
                info = {**facts.to_dict(), "version": number, **origin}
                files["info.toml"] = (to_toml(info).encode(), META_MODE)
            if previous is not None:
                files["previous.toml"] = (to_toml(previous.to_dict()).encode(), META_MODE)
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

    def _stored(self, name: str) -> CertRecord | None:
        """The record as read (settled on the live version), or None when there is none."""
        try:
            return self.read(name)
        except CertctlError:
            return None

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
        tmp = directory / temp_name("live")
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
        trash = directory.with_name(removed_name(name))
        os.rename(directory, trash)
        fsync_dir(directory.parent)
        import shutil

        shutil.rmtree(trash, ignore_errors=True)
