"""Store integrity check (`certctl doctor`): what a crash, a full disk or a hand edit left.

Read-only. Each finding names the path and says what to do. Errors break a
guarantee (live files that don't belong together, unreadable metadata, loose key
permissions); warnings are harmless leftovers of an interrupted write.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from certctl.errors import CertctlError, StoreError
from certctl.policy import hints
from certctl.store.contract import Finding
from certctl.store.files import leftover_target

if TYPE_CHECKING:
    from certctl.store import Store

PEM_FILES = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")


def check_store(store: Store) -> list[Finding]:
    """Every problem found in the store, errors first."""
    findings: list[Finding] = []
    root = store.root
    if not root.exists():
        return findings
    if store.foreign():  # someone else's directory: not healthy, and not to be looked into
        return [
            Finding(
                "error",
                "",
                str(root),
                "not a certctl store (no certctl-store.toml) and not empty: check --store;"
                " certctl changes nothing in it",
            )
        ]
    for directory in (root, root / "certs", root / "accounts", root / "locks"):
        _mode(findings, "", directory, 0o700, is_dir=True)
    for account in sorted((root / "accounts").glob("*")):
        _mode(findings, "", account / "account.key", 0o600)
        _check_account_record(findings, account / "account.toml")
        old = account / "account.key.old"
        if old.exists():
            _mode(findings, "", old, 0o600)
            findings.append(
                Finding(
                    "warning",
                    "",
                    str(old),
                    "an account key rollover was interrupted: run 'certctl account show'"
                    " to settle it",
                )
            )
        _leftovers(findings, "", account)
    _leftovers(findings, "", root)
    _leftovers(findings, "", root / "certs")
    _index(findings, root / "index.json")
    for name in store.names():
        _check_certificate(store, name, findings)
    findings.sort(key=lambda f: (f.severity != "error", f.name, f.path))
    return findings


def _check_certificate(store: Store, name: str, findings: list[Finding]) -> None:
    directory = store.root / "certs" / name
    _leftovers(findings, name, directory)
    if not _live_link(store, name, findings):
        return
    try:
        record = store.read(name)
    except CertctlError as e:
        if (directory / "meta.toml").exists():
            findings.append(Finding("error", name, str(directory / "meta.toml"), str(e)))
        else:
            findings.append(
                Finding(
                    "warning",
                    name,
                    str(directory),
                    "no metadata: an interrupted first order or upload; run that command"
                    " again, or remove the directory",
                )
            )
        return
    versions = store.versions(name)
    versions_dir = directory / "versions"
    for version in versions:
        _check_version(findings, name, versions_dir / str(version))
    _leftovers(findings, name, versions_dir)
    live = store.live_version(name)
    if record.current is not None and live is None:
        findings.append(
            Finding("error", name, str(directory / "live"), "no live version for a stored one")
        )
    if live is not None and live not in versions:
        findings.append(
            Finding("error", name, str(directory / "live"), f"live points at missing {live}")
        )
    wanted = record.order.key_id if record.order is not None else None
    for key_id in store.pending_key_ids(name):
        pending = directory / ("pending.key" if key_id is None else f"pending-{key_id}.key")
        _mode(findings, name, pending, 0o600)
        if record.order is None or key_id != wanted:
            findings.append(
                Finding(
                    "warning",
                    name,
                    str(pending),
                    "pending key of no recorded order (an interrupted order): the next order"
                    " removes it",
                )
            )
    if record.order is not None and record.order.status != "invalid":
        try:
            missing = store.read_pending_key(name, wanted) is None
        except CertctlError:
            missing = True  # a malformed key id names no key
        if missing:
            findings.append(
                Finding(
                    "error",
                    name,
                    str(directory),
                    "the pending order's key is missing: place the order again:"
                    f" {hints.order_again(record)}",
                )
            )


def _check_account_record(findings: list[Finding], path: Path) -> None:
    """An account's metadata must parse and have the right types (models.from_dict)."""
    import tomllib

    from certctl.models import AccountRecord, RecordError

    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return  # a key whose registration was interrupted: the next order finishes it
    try:
        AccountRecord.from_dict(tomllib.loads(data.decode("utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecordError) as e:
        cause = "not UTF-8" if isinstance(e, UnicodeDecodeError) else str(e)
        findings.append(
            Finding(
                "error",
                "",
                str(path),
                f"account metadata is damaged ({cause}): restore it from a backup, or remove"
                " its directory and run 'certctl account register' again",
            )
        )


def _live_link(store: Store, name: str, findings: list[Finding]) -> bool:
    """`live` must be absent or exactly versions/<n>; False (and an error) when it is not."""
    try:
        store.live_version(name)
    except StoreError as e:
        path = store.root / "certs" / name / "live"
        findings.append(Finding("error", name, str(path), str(e)))
        return False
    return True


def _index(findings: list[Finding], path: Path) -> None:
    """The list cache must be a regular file (or absent) for certctl to refresh it."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        findings.append(
            Finding(
                "warning",
                "",
                str(path),
                "the list cache is not a regular file, so certctl cannot refresh it and"
                " reads every record instead; remove it",
            )
        )


def _check_version(findings: list[Finding], name: str, directory: Path) -> None:
    """A version must be complete and its key must match its certificate."""
    missing = [f for f in PEM_FILES if not (directory / f).is_file()]
    if missing:
        findings.append(
            Finding("error", name, str(directory), f"incomplete version: no {', '.join(missing)}")
        )
        return
    empty = [f for f in ("cert.pem", "fullchain.pem", "privkey.pem") if _empty(directory / f)]
    if empty:
        findings.append(Finding("error", name, str(directory), f"empty: {', '.join(empty)}"))
        return
    _mode(findings, name, directory / "privkey.pem", 0o600)
    if not _key_matches(directory):
        findings.append(
            Finding("error", name, str(directory), "privkey.pem does not match cert.pem")
        )
    cert = (directory / "cert.pem").read_bytes()
    chain = (directory / "chain.pem").read_bytes()
    if (directory / "fullchain.pem").read_bytes() != cert + chain:
        findings.append(
            Finding("error", name, str(directory), "fullchain.pem is not cert.pem + chain.pem")
        )


def _empty(path: Path) -> bool:
    return path.stat().st_size == 0


def _key_matches(directory: Path) -> bool:
    from certctl.pki.certinfo import pem_pair_matches

    cert, key = (directory / "cert.pem").read_bytes(), (directory / "privkey.pem").read_bytes()
    return pem_pair_matches(cert, key)


def _mode(
    findings: list[Finding], name: str, path: Path, wanted: int, is_dir: bool = False
) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        findings.append(Finding("error", name, str(path), "is a symlink: the store refuses them"))
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & ~wanted:
        what = "directory" if is_dir else "private key"
        findings.append(
            Finding(
                "error",
                name,
                str(path),
                f"{what} has mode {mode:o}, expected {wanted:o}: chmod {wanted:o} {path}",
            )
        )


def _leftovers(findings: list[Finding], name: str, directory: Path) -> None:
    """Temp files and directories of interrupted atomic writes (safe to delete)."""
    try:
        entries = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if leftover_target(entry) is not None:
            findings.append(
                Finding(
                    "warning",
                    name,
                    str(directory / entry),
                    "leftover of an interrupted write; safe to delete",
                )
            )
