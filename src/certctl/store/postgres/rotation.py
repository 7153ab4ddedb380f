"""Store key rotation: every sealed secret opened with the old key and sealed with the new,
in one transaction, with the store's key id switched in the same commit.

Writers read the key id `FOR SHARE` in their own transactions (base.py), so the
rotation waits for the writes in flight and later writers see the new id: after
the commit no row is sealed with the old key, and a host still holding the old
key file is refused with a message naming both key ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from certctl.errors import BadInput

if TYPE_CHECKING:
    from certctl.store.postgres.store import PgStore

# (table, key columns, sealed column, the context a row's secret is sealed under)
SEALED: tuple[tuple[str, tuple[str, ...], str, Any], ...] = (
    ("certctl_versions", ("name", "version"), "privkey", lambda r: f"version:{r[0]}:{r[1]}"),
    ("certctl_pending_keys", ("name", "key_id"), "privkey", lambda r: f"pending:{r[0]}:{r[1]}"),
    ("certctl_accounts", ("server",), "key", lambda r: f"account:{r[0]}"),
    ("certctl_accounts", ("server",), "old_key", lambda r: f"account:{r[0]}"),
)


def rotate_store_key(store: PgStore, new_key_file: Path) -> tuple[str, str, int]:
    """Re-seal every secret under the key in `new_key_file`: (old id, new id, secrets)."""
    from certctl.store.sealing import load_key_file, reseal

    old = store.store_key()
    new = load_key_file(new_key_file)
    if new.key_id == old.key_id:
        raise BadInput(
            f"{new_key_file} holds the store's current key ({old.key_id}): make a new one"
            " with 'certctl store init-key FILE'"
        )
    count = 0
    with store.transaction():
        row = store.run(
            "lock the store key id",
            "SELECT value FROM certctl_meta WHERE key = 'store_key_id' FOR UPDATE",
        ).fetchone()
        if row is not None and row[0] != old.key_id:
            raise BadInput(
                f"store {store.location} is sealed with store key {row[0]}, but"
                f" {store.key_file} holds key {old.key_id}: give the store's current key"
                " with --store-key-file (nothing was changed)"
            )
        for table, keys, column, context in SEALED:
            where = " AND ".join(f"{k} = %s" for k in keys)
            rows = store.run(
                "read sealed secrets",
                f"SELECT {', '.join(keys)}, {column} FROM {table}"  # noqa: S608
                f" WHERE {column} IS NOT NULL FOR UPDATE",
            ).fetchall()
            for found in rows:
                ident, blob = tuple(found[:-1]), bytes(found[-1])
                resealed = reseal(old, new, blob, context(ident))
                store.run(
                    "re-seal a secret",
                    f"UPDATE {table} SET {column} = %s WHERE {where}",  # noqa: S608
                    (resealed, *ident),
                )
                count += 1
        store.run(
            "record the new store key id",
            "INSERT INTO certctl_meta (key, value) VALUES ('store_key_id', %s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (new.key_id,),
        )
    return old.key_id, new.key_id, count
