"""`certctl store copy` and `store rotate-key`: moving a store between backends, new store keys.

A copy reads the source through the store contract only (it never writes to it)
and writes into an empty target: accounts with their keys (and an unsettled
rollover's old key), then per certificate every version under its own number, the
live switch, the pending orders' keys and the record (notice and back-off state
are part of it). Into PostgreSQL the whole copy is one transaction; into a new
directory, files are synced once at the end (bulk_load). Then it is
verified: the target's own integrity check, and every record, version, key and
account compared with the source's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certctl.context import Context
from certctl.errors import BadInput, CertctlError, OperationFailed
from certctl.models import Current
from certctl.store.contract import CertStore


@dataclass
class CopyReport:
    """What `store copy` copied and how it was verified."""

    source: str
    target: str
    certificates: int = 0
    versions: int = 0
    pending_keys: int = 0
    accounts: int = 0
    findings: list[dict[str, str]] = field(default_factory=list)  # target's doctor

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        return {
            "source": self.source,
            "target": self.target,
            "certificates": self.certificates,
            "versions": self.versions,
            "pending_keys": self.pending_keys,
            "accounts": self.accounts,
            "verified": True,
            "findings": self.findings,
        }


def copy_store(ctx: Context, target: CertStore) -> CopyReport:
    """Copy ctx.store into the empty `target` and verify the copy; OperationFailed if it differs."""
    source = ctx.store
    if target.location == source.location:
        raise BadInput(f"store copy: the target is the source ({source.location})")
    if not source.exists():
        raise BadInput(f"store copy: there is no store at {source.location}: nothing to copy")
    target.check()
    if target.exists() and (target.names() or target.account_servers()):
        raise BadInput(
            f"store copy: {target.location} is not empty: copy into a new, empty store"
            " (nothing was changed)"
        )
    report = CopyReport(source=source.location, target=target.location)
    names = source.names()
    for name in names:  # read one by one: records() would refresh the source's list cache
        try:
            source.read(name)
        except CertctlError as e:
            raise OperationFailed(
                f"store copy: {name!r} cannot be read in the source ({e}); fix it"
                " (see 'certctl doctor') and copy again: nothing was copied"
            ) from e
    target.ensure()
    with target.bulk_load():
        for server in source.account_servers():
            _copy_account(source, target, server)
            report.accounts += 1
        for name in names:
            versions, pending = _copy_certificate(source, target, name)
            report.certificates += 1
            report.versions += versions
            report.pending_keys += pending
    _verify(source, target, report)
    return report


def _copy_account(source: CertStore, target: CertStore, server: str) -> None:
    found = source.read_account(server)
    if found is None:
        return
    record, key = found
    previous = source.previous_account_key(server)
    if previous is not None:  # an unsettled rollover: the old key travels beside the new
        target.write_account_key(server, previous)
        target.write_account(record)
        target.begin_account_key_rollover(record, key)
    else:
        target.write_account_key(server, key)
        target.write_account(record)


def _copy_certificate(source: CertStore, target: CertStore, name: str) -> tuple[int, int]:
    from certctl.ops.obtain import facts_of
    from certctl.pki.material import cert_info_pem

    record = source.read(name)
    versions = source.versions(name)
    for number in versions:
        files = source.read_version(name, number)
        facts: Current | None = None
        try:  # what the version's own metadata says, as the store would have written it
            facts = facts_of(cert_info_pem(files["cert.pem"]))
            facts.version = number
        except CertctlError:
            facts = None  # not a certificate certctl can read: copied as the bytes it is
        target.add_version(
            name,
            cert=files["cert.pem"],
            chain=files["chain.pem"],
            key=files["privkey.pem"],
            facts=facts,
            record=record,
            number=number,
        )
    live = source.live_version(name)
    if live is not None:
        target.switch_live(name, live)
    pending = source.pending_key_ids(name)
    for key_id in pending:
        key = source.read_pending_key(name, key_id)
        if key is not None:
            target.write_pending_key(name, key, key_id)
    target.write(record)
    return len(versions), len(pending)


def _verify(source: CertStore, target: CertStore, report: CopyReport) -> None:
    """The copy's own check and a record-by-record comparison; OperationFailed on a difference."""
    from certctl.store.doctor import check

    findings = check(target)
    report.findings = [f.to_json() for f in findings]
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        first = errors[0]
        raise OperationFailed(
            f"store copy: the copy in {target.location} has {len(errors)} problem(s), first:"
            f" {first.name or 'store'}: {first.problem}; the source is unchanged"
        )
    for name in source.names():
        differences = _differences(source, target, name)
        if differences:
            raise OperationFailed(
                f"store copy: {name!r} differs in the copy ({differences}); was the source"
                " changed during the copy? Stop cron on the hosts and copy into a new store;"
                " the source is unchanged"
            )
    for server in source.account_servers():
        if source.read_account(server) != target.read_account(server) or (
            source.previous_account_key(server) != target.previous_account_key(server)
        ):
            raise OperationFailed(f"store copy: the account at {server} differs in the copy")
    if sorted(target.names()) != sorted(source.names()):
        raise OperationFailed("store copy: the copy holds other certificates than the source")


def _differences(source: CertStore, target: CertStore, name: str) -> str:
    if source.read(name).to_dict() != target.read(name).to_dict():
        return "record"
    if source.versions(name) != target.versions(name):
        return "versions"
    if source.live_version(name) != target.live_version(name):
        return "live version"
    for number in source.versions(name):
        if source.read_version(name, number) != target.read_version(name, number):
            return f"version {number}"
    ids = source.pending_key_ids(name)
    if ids != target.pending_key_ids(name):
        return "pending keys"
    for key_id in ids:
        if source.read_pending_key(name, key_id) != target.read_pending_key(name, key_id):
            return "a pending key"
    return ""


def open_target(location: str, key_file: str | None, warn: Any) -> CertStore:
    """The store to copy into (a directory or a postgresql:// URL)."""
    from certctl.store.opening import open_store

    if not location:
        raise BadInput("store copy: give --to DIR or --to postgresql://...")
    return open_store(location, warn=warn, key_file=Path(key_file) if key_file else None)


def rotate_key(ctx: Context, new_key_file: Path) -> dict[str, Any]:
    """Re-seal every secret of a PostgreSQL store under the key in `new_key_file`."""
    from certctl.store.postgres.rotation import rotate_store_key
    from certctl.store.postgres.store import PgStore

    store = ctx.store
    if not isinstance(store, PgStore):
        raise BadInput(
            f"store {store.location} is a directory: its keys are 0600 files, not sealed;"
            " rotate-key is for a postgresql:// store"
        )
    if not store.exists():
        raise BadInput(f"store {store.location} has not been created yet: nothing to rotate")
    old_id, new_id, count = rotate_store_key(store, new_key_file)
    return {"store": store.location, "old_key_id": old_id, "new_key_id": new_id, "secrets": count}
