"""The PostgreSQL store: certificates, their versions, the live switch and pending keys.

The live switch is one UPDATE of `certctl_live`; with the new version's INSERT and
the record's write inside one `transaction()` they commit together, so there is
nothing to reconcile after a crash (the filesystem store's `_reconcile` has no
counterpart here). Writes for a certificate go through `fence()` (leases.py).
"""

from __future__ import annotations

from typing import Any

from certctl.errors import CertctlError, NotFound, StoreError
from certctl.models import CertRecord, Current
from certctl.policy.names import check_cert_name
from certctl.store.contract import Glance, LivePaths, Summarizer
from certctl.store.files import LIVE_FILES, fault_point
from certctl.store.origin import origin_of
from certctl.store.postgres import summaries
from certctl.store.postgres.base import from_json, to_json
from certctl.store.postgres.fleet import PgFleet

_NO_ID = ""  # the key_id column of an older order's pending key (pending.key on disk)


def _version_context(name: str, version: int) -> str:
    return f"version:{name}:{version}"


def _pending_context(name: str, key_id: str | None) -> str:
    return f"pending:{name}:{key_id or _NO_ID}"


class PgStore(PgFleet):
    """The store contract (store/contract.py) on PostgreSQL tables."""

    # ---- certificates ----------------------------------------------------------------------

    def names(self) -> list[str]:
        """Names of all certificates, sorted."""
        if not self.exists():
            return []
        rows = self.run("list certificates", "SELECT name FROM certctl_certificates").fetchall()
        return sorted(row[0] for row in rows)

    def has(self, name: str) -> bool:
        """True when a certificate with this name exists."""
        check_cert_name(name)
        if not self.exists():
            return False
        row = self.run(
            "read a certificate", "SELECT 1 FROM certctl_certificates WHERE name = %s", (name,)
        ).fetchone()
        return row is not None

    def _parse(self, name: str, text: str) -> CertRecord:
        try:
            record = CertRecord.from_dict(from_json(text))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            cause = str(e) if type(e).__name__ == "RecordError" else type(e).__name__
            raise StoreError(
                f"metadata of {name!r} is damaged (store {self.location}): {cause};"
                " restore it from a backup or remove the certificate"
            ) from e
        if record.name != name:
            raise StoreError(f"metadata of {name!r} names {record.name!r}: damaged")
        return record

    def read(self, name: str) -> CertRecord:
        """One certificate's record; NotFound or StoreError when missing or damaged."""
        check_cert_name(name)
        row = None
        if self.exists():
            row = self.run(
                "read a certificate",
                "SELECT record::text FROM certctl_certificates WHERE name = %s",
                (name,),
            ).fetchone()
        if row is None:
            raise NotFound(f"no certificate named {name!r} in {self.location}: see 'certctl list'")
        return self._parse(name, row[0])

    def records(self) -> list[tuple[str, CertRecord | CertctlError]]:
        """Every certificate's record (or the error reading it), in one query."""
        return summaries.records(self)

    def glances(self, summarizer: Summarizer | None) -> list[Glance]:
        """Every certificate's glance in one query, summaries kept in certctl_summaries."""
        return summaries.glances(self, summarizer)

    def write(self, record: CertRecord) -> None:
        """Write a certificate's record (creating the certificate)."""
        name = check_cert_name(record.name)
        self._ensure_for_write()
        fault_point("meta-before")
        with self.transaction():
            self.fence(name)
            self.run(
                f"write metadata of {name!r}",
                "INSERT INTO certctl_certificates (name, record) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record, updated_at = now()",
                (name, to_json(record.to_dict())),
            )
        fault_point("meta-after")

    def remove(self, name: str) -> None:
        """Delete a certificate with its versions and pending keys, in one transaction."""
        check_cert_name(name)
        if not self.has(name):
            raise NotFound(f"no certificate named {name!r} in {self.location}: see 'certctl list'")
        with self.transaction():
            self.fence(name)
            tables = ("live", "versions", "pending_keys", "deployments", "summaries")
            for table in (*tables, "certificates"):
                self.run(
                    f"remove {name!r}",
                    f"DELETE FROM certctl_{table} WHERE name = %s",  # noqa: S608
                    (name,),
                )

    # ---- versions and the live switch ---------------------------------------------------------

    def versions(self, name: str) -> list[int]:
        """Version numbers, ascending (every stored version is complete: one INSERT)."""
        check_cert_name(name)
        if not self.exists():
            return []
        rows = self.run(
            "list versions",
            "SELECT version FROM certctl_versions WHERE name = %s ORDER BY version",
            (name,),
        ).fetchall()
        return [int(row[0]) for row in rows]

    def live_version(self, name: str) -> int | None:
        """The live version, or None."""
        check_cert_name(name)
        if not self.exists():
            return None
        row = self.run(
            "read the live version", "SELECT version FROM certctl_live WHERE name = %s", (name,)
        ).fetchone()
        return None if row is None else int(row[0])

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
        """Store a new version (its key sealed); returns its number."""
        check_cert_name(name)
        self._ensure_for_write()
        info: dict[str, Any] | None = None
        with self.transaction():
            self.fence(name)
            if number is None:
                row = self.run(
                    "number the new version",
                    "SELECT COALESCE(max(version), 0) + 1 FROM certctl_versions WHERE name = %s",
                    (name,),
                ).fetchone()
                number = int(row[0])
            if facts is not None:
                stored = record if record is not None else self._stored(name)
                info = {**facts.to_dict(), "version": number, **origin_of(stored)}
            self.run(
                f"store the new certificate of {name!r}",
                "INSERT INTO certctl_versions (name, version, cert, chain, privkey, info, previous)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    name,
                    number,
                    cert,
                    chain,
                    self.seal(key, _version_context(name, number)),
                    None if info is None else to_json(info),
                    None if previous is None else to_json(previous.to_dict()),
                ),
            )
            fault_point("version-privkey.pem")
        fault_point("version-after")
        return number

    def _stored(self, name: str) -> CertRecord | None:
        try:
            return self.read(name)
        except CertctlError:
            return None

    def unswitched_version(self, name: str, cert: bytes, key: bytes) -> int | None:
        """A version newer than live holding exactly this certificate and key."""
        live = self.live_version(name) or 0
        rows = self.run(
            "read versions",
            "SELECT version, privkey FROM certctl_versions"
            " WHERE name = %s AND version > %s AND cert = %s ORDER BY version DESC",
            (name, live, cert),
        ).fetchall()
        for version, sealed in rows:
            if self.unseal(sealed, _version_context(name, int(version))) == key:
                return int(version)
        return None

    def read_version(self, name: str, version: int) -> dict[str, bytes]:
        """The PEM files of one stored version."""
        check_cert_name(name)
        row = self.run(
            "read a version",
            "SELECT cert, chain, privkey FROM certctl_versions WHERE name = %s AND version = %s",
            (name, version),
        ).fetchone()
        if row is None:
            raise StoreError(f"version {version} of {name!r} is missing")
        cert, chain = bytes(row[0]), bytes(row[1])
        files = {
            "cert.pem": cert,
            "chain.pem": chain,
            "fullchain.pem": cert + chain,
            "privkey.pem": self.unseal(row[2], _version_context(name, version)),
        }
        return {f: files[f] for f in LIVE_FILES}

    def switch_live(self, name: str, version: int) -> None:
        """Point live at `version`: one row, in the caller's transaction when there is one."""
        check_cert_name(name)
        fault_point("live-before")
        with self.transaction():
            self.fence(name)
            row = self.run(
                "check the version",
                "SELECT 1 FROM certctl_versions WHERE name = %s AND version = %s",
                (name, version),
            ).fetchone()
            if row is None:
                raise StoreError(f"version {version} of {name!r} is missing; not switching live")
            self.run(
                f"switch live files of {name!r}",
                "INSERT INTO certctl_live (name, version) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version,"
                " switched_at = now()",
                (name, version),
            )
        fault_point("live-after")

    def read_live(self, name: str) -> dict[str, bytes] | None:
        """The live PEM files, or None when the certificate has none yet."""
        version = self.live_version(name)
        return None if version is None else self.read_version(name, version)

    def live_paths(self, name: str) -> LivePaths | None:
        """None: a database store has no files on this host (`certctl deploy` writes them)."""
        return None

    # ---- pending order keys -------------------------------------------------------------------

    def write_pending_key(self, name: str, key_pem: bytes, key_id: str | None = None) -> None:
        """Keep the (sealed) private key of an order in progress."""
        check_cert_name(name)
        self._ensure_for_write()
        with self.transaction():
            self.fence(name)
            sealed = self.seal(key_pem, _pending_context(name, key_id))
            self.run(
                f"write the new key of {name!r}",
                "INSERT INTO certctl_pending_keys (name, key_id, privkey) VALUES (%s, %s, %s)"
                " ON CONFLICT (name, key_id) DO UPDATE SET privkey = EXCLUDED.privkey",
                (name, key_id or _NO_ID, sealed),
            )
        fault_point("pending-key-after")

    def read_pending_key(self, name: str, key_id: str | None = None) -> bytes | None:
        """The key of the order that names `key_id`, or None."""
        check_cert_name(name)
        if not self.exists():
            return None
        row = self.run(
            "read the order's key",
            "SELECT privkey FROM certctl_pending_keys WHERE name = %s AND key_id = %s",
            (name, key_id or _NO_ID),
        ).fetchone()
        return None if row is None else self.unseal(row[0], _pending_context(name, key_id))

    def pending_key_ids(self, name: str) -> list[str | None]:
        """Ids of the pending keys present (None for an older order's key)."""
        check_cert_name(name)
        if not self.exists():
            return []
        rows = self.run(
            "list pending keys",
            "SELECT key_id FROM certctl_pending_keys WHERE name = %s ORDER BY key_id",
            (name,),
        ).fetchall()
        return [row[0] or None for row in rows]

    def drop_pending_key(
        self, name: str, key_id: str | None = None, *, keep: str | None = None
    ) -> None:
        """Delete pending keys no order needs: the one named `key_id`, else all but `keep`."""
        check_cert_name(name)
        if not self.exists():
            return
        with self.transaction():
            self.fence(name)
            if key_id is not None:
                self.run(
                    "drop a pending key",
                    "DELETE FROM certctl_pending_keys WHERE name = %s AND key_id = %s",
                    (name, key_id),
                )
            elif keep is None:
                self.run(
                    "drop pending keys", "DELETE FROM certctl_pending_keys WHERE name = %s", (name,)
                )
            else:
                self.run(
                    "drop pending keys",
                    "DELETE FROM certctl_pending_keys WHERE name = %s AND key_id <> %s",
                    (name, keep),
                )
