"""Pending keys: each order's private key, kept under the order's own id until it is used.

An order names its key (`OrderState.key_id`), so a new order's key can be written
beside the earlier order's: until the record naming the new order is written, the
earlier order stays whole. Orders recorded before key ids existed use pending.key.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from certctl.errors import StoreError
from certctl.store.accounts import StoreAccounts
from certctl.store.files import KEY_MODE, atomic_write, fault_point, write_failed

_KEY_ID = re.compile(r"[0-9a-f]{16,64}")


class StorePendingKeys(StoreAccounts):
    """The keys of orders in progress (0600), one file per order."""

    def _pending_key_path(self, name: str, key_id: str | None) -> Path:
        """pending-<id>.key for an order that names its key; pending.key for older orders."""
        if key_id is None:
            return self._cert_dir(name) / "pending.key"
        if not _KEY_ID.fullmatch(key_id):
            raise StoreError(f"the order of {name!r} names a malformed key id; order again")
        return self._cert_dir(name) / f"pending-{key_id}.key"

    def write_pending_key(self, name: str, key_pem: bytes, key_id: str | None = None) -> None:
        """Store the private key of an order (0600), beside any earlier order's key."""
        directory = self._cert_dir(name)
        self._mkdir(directory)
        try:
            atomic_write(self._pending_key_path(name, key_id), key_pem, KEY_MODE)
        except OSError as e:
            raise write_failed(f"write the new key of {name!r}", e) from e
        fault_point("pending-key-after")

    def read_pending_key(self, name: str, key_id: str | None = None) -> bytes | None:
        """The key of the order that names `key_id` (None: an older order's), or None."""
        try:
            return self._read_private(self._pending_key_path(name, key_id))
        except FileNotFoundError:
            return None

    def pending_key_ids(self, name: str) -> list[str | None]:
        """Ids of the pending keys present (None for an older order's pending.key)."""
        try:
            entries = os.listdir(self._cert_dir(name))
        except FileNotFoundError:
            return []
        found: list[str | None] = [None] if "pending.key" in entries else []
        for entry in sorted(entries):
            key_id = entry.removeprefix("pending-").removesuffix(".key")
            if (
                entry.startswith("pending-")
                and entry.endswith(".key")
                and _KEY_ID.fullmatch(key_id)
            ):
                found.append(key_id)
        return found

    def drop_pending_key(
        self, name: str, key_id: str | None = None, *, keep: str | None = None
    ) -> None:
        """Delete pending keys no order needs: the one named `key_id`, else all but `keep`.

        Called once the key is stored in a version, or the order naming it is
        recorded as replaced (or was never placed).
        """
        wanted = [key_id] if key_id is not None else self.pending_key_ids(name)
        for found in wanted:
            if found is not None and found == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                self._pending_key_path(name, found).unlink()
