"""Accounts in the PostgreSQL store: one row per CA, and the crash-safe key rollover.

The same protocol as the filesystem's (store/accounts.py): during a rollover the
old key stays in `old_key` beside the new `key` until the CA has confirmed which
one it accepts. Keys are sealed with the context `account:<server>`, so a key
moves between the two columns without being opened.
"""

from __future__ import annotations

from certctl.errors import StoreError
from certctl.models import AccountRecord
from certctl.store.files import fault_point
from certctl.store.postgres.base import from_json, to_json
from certctl.store.postgres.leases import PgLocks


def _context(server: str) -> str:
    return f"account:{server}"


class PgAccounts(PgLocks):
    """ACME account records and keys, keyed by the CA's directory URL."""

    def _account_row(self, server: str) -> tuple[str | None, bytes | None, bytes | None] | None:
        if not self.exists():
            return None
        row = self.run(
            "read the account",
            "SELECT record::text, key, old_key FROM certctl_accounts WHERE server = %s",
            (server,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def account_servers(self) -> list[str]:
        """The CA directory URLs of the registered accounts."""
        if not self.exists():
            return []
        rows = self.run(
            "list accounts",
            "SELECT server FROM certctl_accounts WHERE record IS NOT NULL ORDER BY server",
        ).fetchall()
        return [row[0] for row in rows]

    def read_account(self, server: str) -> tuple[AccountRecord, bytes] | None:
        """The account record and key PEM for a CA directory URL, or None."""
        row = self._account_row(server)
        if row is None or row[0] is None or row[1] is None:
            return None
        try:
            record = AccountRecord.from_dict(from_json(row[0]))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise self.damaged(f"the account for {server}", e) from e
        return record, self.unseal(row[1], _context(server))

    def write_account_key(self, server: str, key_pem: bytes) -> None:
        """Keep an account key (sealed) before it is registered anywhere."""
        self._ensure_for_write()
        with self.transaction():
            sealed = self.seal(key_pem, _context(server))
            self.run(
                "write the account key",
                "INSERT INTO certctl_accounts (server, key) VALUES (%s, %s)"
                " ON CONFLICT (server) DO UPDATE SET key = EXCLUDED.key",
                (server, sealed),
            )

    def read_account_key(self, server: str) -> bytes | None:
        """An account key written before registration completed, or None."""
        row = self._account_row(server)
        if row is None or row[1] is None:
            return None
        return self.unseal(row[1], _context(server))

    def write_account(self, record: AccountRecord) -> None:
        """Store the account record for its CA."""
        self._ensure_for_write()
        self.run(
            "write the account",
            "INSERT INTO certctl_accounts (server, record) VALUES (%s, %s)"
            " ON CONFLICT (server) DO UPDATE SET record = EXCLUDED.record",
            (record.server, to_json(record.to_dict())),
        )

    def begin_account_key_rollover(self, record: AccountRecord, new_key_pem: bytes) -> None:
        """Make `new_key_pem` the account key, keeping the old one as old_key (one commit)."""
        with self.transaction():
            sealed = self.seal(new_key_pem, _context(record.server))
            row = self.run(
                "read the account",
                "SELECT old_key IS NOT NULL FROM certctl_accounts WHERE server = %s FOR UPDATE",
                (record.server,),
            ).fetchone()
            if row is None:
                raise StoreError(f"no account for {record.server} in store {self.location}")
            if row[0]:
                raise StoreError(
                    f"an earlier key rollover of the account at {record.server} is unsettled:"
                    " run 'certctl account show' to settle it, then retry"
                )
            self.run(
                "store the new account key",
                "UPDATE certctl_accounts SET old_key = key, key = %s, record = %s"
                " WHERE server = %s",
                (sealed, to_json(record.to_dict()), record.server),
            )
        fault_point("account-rollover-new-written")  # committed, as on files: the CA not asked

    def previous_account_key(self, server: str) -> bytes | None:
        """The old key of an unsettled rollover, or None."""
        row = self._account_row(server)
        if row is None or row[2] is None:
            return None
        return self.unseal(row[2], _context(server))

    def finish_account_key_rollover(self, record: AccountRecord, *, keep_new: bool) -> None:
        """Settle a rollover once the CA has said which key it accepts."""
        fault_point("account-rollover-settle")
        keep = "key" if keep_new else "COALESCE(old_key, key)"
        self.run(
            "settle the account key",
            f"UPDATE certctl_accounts SET key = {keep}, old_key = NULL, record = %s"  # noqa: S608
            " WHERE server = %s",
            (to_json(record.to_dict()), record.server),
        )
