"""Accounts in the store: one directory per CA, and the crash-safe key rollover."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from certctl.errors import StoreError
from certctl.models import AccountRecord
from certctl.store.files import (
    KEY_MODE,
    META_MODE,
    atomic_write,
    fault_point,
    fsync_dir,
    to_toml,
    write_failed,
)
from certctl.store.locks import StoreLocks


class StoreAccounts(StoreLocks):
    """ACME account records and keys, keyed by the CA's directory URL."""

    def _account_dir(self, server: str) -> Path:
        import hashlib

        digest = hashlib.sha256(server.encode()).hexdigest()[:16]
        return self.root / "accounts" / digest

    def account_servers(self) -> list[str]:
        """The CA directory URLs of the registered accounts (from their account.toml)."""
        import tomllib

        servers = []
        for directory in sorted((self.root / "accounts").glob("*")):
            try:
                data = tomllib.loads((directory / "account.toml").read_text("utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue  # an unregistered key, or damaged metadata (doctor reports it)
            server = data.get("server")
            if isinstance(server, str) and self._account_dir(server) == directory:
                servers.append(server)
        return sorted(servers)

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

    def account_lock(self, server: str) -> contextlib.AbstractContextManager[None]:
        """Lock serialising account creation for one CA."""
        return self.lock(self._account_dir(server).name, what="account")
