"""`certctl doctor` on the PostgreSQL store: what a bug, a restore or a hand edit left.

Read-only. Every record must parse; a certificate with a current version must
have it live; the live version's key must open with the store key and match its
certificate; a pending order must have its key; an unsettled account rollover
is a warning. Without a store key the keys are not opened (a warning says so).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certctl.errors import CertctlError
from certctl.policy import hints
from certctl.store.contract import Finding

if TYPE_CHECKING:
    from certctl.store.postgres.store import PgStore


def check_database(store: PgStore) -> list[Finding]:
    """Every problem found in the store's tables, errors first."""
    findings: list[Finding] = []
    if not store.exists():
        return findings
    keys = store.key_file is not None
    if keys:
        store.store_key()  # a wrong or unreadable key file: one error (exit 2), not one per key
    else:
        findings.append(
            Finding(
                "warning",
                "",
                store.location,
                "keys not checked: give --store-key-file to check that every key opens",
            )
        )
    for name, record in store.records():
        where = f"certificates/{name}"
        if isinstance(record, CertctlError):
            findings.append(Finding("error", name, where, str(record)))
            continue
        live = store.live_version(name)
        if record.current is not None and live is None:
            findings.append(Finding("error", name, where, "no live version for a stored one"))
        if live is not None and keys:
            _check_live(store, name, live, findings)
        wanted = record.order.key_id if record.order is not None else None
        if record.order is not None and record.order.status != "invalid" and keys:
            try:
                missing = store.read_pending_key(name, wanted) is None
            except CertctlError:
                missing = True
            if missing:
                findings.append(
                    Finding(
                        "error",
                        name,
                        where,
                        "the pending order's key is missing: place the order again:"
                        f" {hints.order_again(record)}",
                    )
                )
    _check_accounts(store, findings)
    rows = store.run(
        "read accounts", "SELECT server FROM certctl_accounts WHERE old_key IS NOT NULL"
    ).fetchall()
    for (server,) in rows:
        findings.append(
            Finding(
                "warning",
                "",
                f"accounts/{server}",
                "an account key rollover was interrupted: run 'certctl account show' to settle it",
            )
        )
    findings.sort(key=lambda f: (f.severity != "error", f.name, f.path))
    return findings


def _check_accounts(store: PgStore, findings: list[Finding]) -> None:
    """Every account record must parse and have the right types (as on the filesystem)."""
    from certctl.models import AccountRecord, RecordError
    from certctl.store.postgres.base import from_json

    rows = store.run(
        "read accounts",
        "SELECT server, record::text FROM certctl_accounts WHERE record IS NOT NULL"
        " ORDER BY server",
    ).fetchall()
    for server, text in rows:
        try:
            AccountRecord.from_dict(from_json(text))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            cause = str(e) if isinstance(e, RecordError) else type(e).__name__  # never a value
            findings.append(
                Finding(
                    "error",
                    "",
                    f"accounts/{server}",
                    f"account metadata is damaged ({cause}): restore it from a backup, or"
                    " delete its row and run 'certctl account register' again",
                )
            )


def _check_live(store: PgStore, name: str, live: int, findings: list[Finding]) -> None:
    """The live pair must open and belong together."""
    from certctl.pki.certinfo import pem_pair_matches

    where = f"certificates/{name} version {live}"
    try:
        files = store.read_version(name, live)
    except CertctlError as e:
        findings.append(Finding("error", name, where, str(e)))
        return
    if not pem_pair_matches(files["cert.pem"], files["privkey.pem"]):
        findings.append(
            Finding("error", name, where, "the live key does not match the live certificate")
        )
