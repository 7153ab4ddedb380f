"""What every part of the PostgreSQL store shares: connections, transactions, sealed secrets.

One connection per thread (renew-due's workers each run their own transactions),
autocommit outside `transaction()`. Secrets (certificate, order and account keys)
are sealed with the store key (store/sealing.py) before they reach the database
and opened after; the store remembers the id of the key it was sealed with, so a
host with the wrong key file is refused before it writes anything.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certctl.errors import BadInput, CertctlError, StoreError
from certctl.store.files import json_decode, json_encode
from certctl.store.postgres.connection import (
    check_url,
    connect,
    psycopg_module,
    raise_database_error,
    redact,
)
from certctl.store.postgres.schema import SCHEMA_VERSION, migrate, refuse_newer, schema_version

if TYPE_CHECKING:
    from certctl.store.sealing import StoreKey

DEFAULT_LEASE = 60.0  # seconds a lock holder has before another host may take over


def to_json(data: dict[str, Any]) -> str:
    """A record as stored: JSON with tagged datetimes (as in the filesystem's index)."""
    return json.dumps(data, default=json_encode, sort_keys=True)


def from_json(text: str) -> Any:
    """A stored record back as the dict CertRecord.from_dict reads."""
    return json.loads(text, object_hook=json_decode)


class PgBase:
    """A PostgreSQL store: connections, schema, transactions, the store key."""

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        key_file: Path | None = None,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        self.url = check_url(url)
        self._location = redact(url)
        self.key_file = key_file
        self.lease = lease
        self._local = threading.local()
        self._connections: list[Any] = []
        self._guard = threading.Lock()
        self._key: StoreKey | None = None
        self._ready = False  # the tables exist with a schema this certctl knows

    @property
    def location(self) -> str:
        """The URL without any password, for messages."""
        return self._location

    # ---- connections ---------------------------------------------------------------------

    def conn(self) -> Any:
        """This thread's connection, opened on first use."""
        found = getattr(self._local, "conn", None)
        if found is None or found.closed:
            found = connect(self.url, self._location)
            self._local.conn = found
            with self._guard:
                self._connections.append(found)
        return found

    def run(self, doing: str, sql: str, params: Any = None) -> Any:
        """Execute one statement on this thread's connection; a cursor with its rows."""
        try:
            return self.conn().execute(sql, params)
        except CertctlError:
            raise
        except Exception as e:
            self._fail(e, doing)

    def _fail(self, error: Exception, doing: str) -> Any:
        psycopg = psycopg_module()

        if isinstance(error, psycopg.Error):
            raise_database_error(error, self._location, doing)
        raise error

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all (nested: a savepoint)."""
        psycopg = psycopg_module()

        local = self._local
        depth = getattr(local, "depth", 0)
        if depth == 0:
            local.fenced = set()  # names whose lock row this transaction holds FOR UPDATE
        local.depth = depth + 1
        try:
            with self.conn().transaction():
                yield
        except psycopg.Error as e:
            raise_database_error(e, self._location, "commit")
        finally:
            local.depth = depth

    def bulk_load(self) -> contextlib.AbstractContextManager[None]:
        """One transaction (commit makes it durable at once)."""
        return self.transaction()

    def fenced(self) -> set[str] | None:
        """Lock names already checked in this thread's open transaction (None: none open)."""
        if getattr(self._local, "depth", 0) == 0:
            return None
        found: set[str] = self._local.fenced
        return found

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._guard:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(Exception):
                conn.close()

    def owns_path(self, path: Path) -> bool:
        """False: the database has no files on this host."""
        return False

    # ---- the schema ----------------------------------------------------------------------

    def exists(self) -> bool:
        """True when the store's tables have been created."""
        return self._ready or self._version() is not None

    def _version(self) -> int | None:
        psycopg = psycopg_module()

        try:
            return schema_version(self.conn())
        except psycopg.Error as e:
            raise_database_error(e, self._location, "read the schema version")

    def check(self) -> None:
        """Refuse a store with a newer schema than this certctl knows (one round trip)."""
        if not self._ready:
            version = self._version()
            refuse_newer(version, self._location)
            if version is not None and version < SCHEMA_VERSION:
                self.ensure()  # written by an older certctl: bring it forward once
            self._ready = version is not None

    def ensure(self) -> None:
        """Create the tables, or migrate them forward, before the first write."""
        psycopg = psycopg_module()

        try:
            migrate(self.conn(), self._location)
        except psycopg.Error as e:
            raise_database_error(e, self._location, "create the store's tables")
        self._ready = True

    def _ensure_for_write(self) -> None:
        """Before a write: the tables exist and their schema is one this certctl knows."""
        if not self._ready:
            self.ensure()

    # ---- sealed secrets ------------------------------------------------------------------

    def store_key(self) -> StoreKey:
        """The store key from --store-key-file, or BadInput saying how to get one."""
        if self._key is None:
            if self.key_file is None:
                raise BadInput(
                    f"store {self._location} keeps private keys encrypted: give the store key"
                    " with --store-key-file FILE or CERTCTL_STORE_KEY_FILE (made once with"
                    " 'certctl store init-key FILE', then copied to every host)"
                )
            from certctl.store.sealing import load_key_file

            key = load_key_file(self.key_file)
            row = None
            if self.exists():
                row = self.run(
                    "read the store key id",
                    "SELECT value FROM certctl_meta WHERE key = 'store_key_id'",
                ).fetchone()
            if row is not None and row[0] != key.key_id:
                raise self._wrong_key(row[0], key.key_id)
            self._key = key
        return self._key

    def _wrong_key(self, sealed_with: str, given: str) -> BadInput:
        return BadInput(
            f"store {self._location} is sealed with store key {sealed_with}, but"
            f" {self.key_file} holds key {given}: use this store's key file"
            " (nothing was written)"
        )

    def _sealing_key(self) -> StoreKey:
        """The store key, checked against the one the store's secrets are sealed with."""
        key = self.store_key()
        # FOR SHARE: a key rotation (which updates this row) waits for the writers in
        # flight, and writers after it see the new id: no row is sealed with a stale key
        row = self.run(
            "read the store key id",
            "SELECT value FROM certctl_meta WHERE key = 'store_key_id' FOR SHARE",
        ).fetchone()
        if row is None:
            self.run(
                "record the store key id",
                "INSERT INTO certctl_meta (key, value) VALUES ('store_key_id', %s)"
                " ON CONFLICT (key) DO NOTHING",
                (key.key_id,),
            )
            row = self.run(
                "read the store key id",
                "SELECT value FROM certctl_meta WHERE key = 'store_key_id'",
            ).fetchone()
        if row[0] != key.key_id:
            raise self._wrong_key(row[0], key.key_id)
        return key

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """A secret as the database keeps it."""
        from certctl.store.sealing import seal

        return seal(self._sealing_key(), plaintext, context)

    def unseal(self, blob: bytes, context: str) -> bytes:
        """A secret from the database, opened with the store key."""
        from certctl.store.sealing import unseal

        return unseal(self.store_key(), bytes(blob), context)

    def damaged(self, what: str, error: Exception) -> StoreError:
        """A StoreError for a row that does not parse (naming the row, never a value)."""
        return StoreError(
            f"store {self._location}: {what} is damaged ({type(error).__name__}):"
            " restore it from a backup or remove it"
        )
