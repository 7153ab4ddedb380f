"""The store contract: every operation the rest of certctl may ask of a store.

Two backends implement it: the filesystem store (store/filesystem.py, the default,
no server) and the PostgreSQL store (store/postgres/, for fleets). Nothing outside
store/ touches store paths or SQL; ops/ and cli/ see only this Protocol.

    ops/, cli/ ──▶ CertStore ──┬─▶ Store      (directory: TOML, PEM, live symlink, flock)
                               └─▶ PgStore    (tables: one transaction per commit,
                                               leased locks with fencing, sealed keys)

What both guarantee (README "Store backends"):

- `add_version` + `switch_live` + `write` inside one `transaction()` commit together:
  after a crash a certificate is as it was or fully updated, never live without its key.
- `lock(name)` is exclusive across processes (and, on PostgreSQL, across hosts); while
  it is held, writes for that certificate by anyone else are refused.
- Keys are readable only by the store's owner (0600 files; sealed rows on PostgreSQL).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from certctl.errors import CertctlError
from certctl.models import AccountRecord, CertRecord, Current


@dataclass(frozen=True)
class LivePaths:
    """Stable paths a web server points at; they always hold a matching pair."""

    directory: Path
    cert: Path
    chain: Path
    fullchain: Path
    privkey: Path

    def as_dict(self) -> dict[str, str]:
        """Paths as strings, for reports and hook environments."""
        return {
            "cert": str(self.cert),
            "chain": str(self.chain),
            "fullchain": str(self.fullchain),
            "privkey": str(self.privkey),
        }


Summary = dict[str, Any]  # policy/glance.py: JSON, made from one record


class Summarizer(Protocol):
    """Makes a record's summary (policy/glance.py's Summarizer)."""

    @property
    def key(self) -> str:
        """What a kept summary must have been made with to be used."""

    def __call__(self, record: CertRecord) -> Summary:
        """The summary for all time: what a store's cache keeps."""

    def at_now(self, record: CertRecord) -> Summary:
        """A summary true at the run's moment only (cheaper): for a store that keeps none."""


def parse_summary(text: str | bytes) -> Summary | None:
    """A kept summary's JSON, or None when it doesn't parse as one (then made again)."""
    import json

    try:
        summary = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return summary if isinstance(summary, dict) else None


class GlanceSource(Protocol):
    """Where a cached glance's summary and record come from when asked for (store/index.py)."""

    def summary(self, at: int) -> Summary | None:
        """The stored summary of entry `at`, or None when it cannot be read."""

    def record(self, name: str, at: int) -> CertRecord:
        """The record of entry `at` (from its source of truth when the cache's doesn't parse)."""


class Glance:
    """One certificate as `list` and `renew-due` first see it: the spans of time in which
    renew-due has nothing to do for it (`quiet`), its summary and its whole record, both
    read only when asked for (policy/glance.py)."""

    __slots__ = ("_at", "_record", "_source", "_summary", "name", "quiet")

    def __init__(
        self,
        name: str,
        *,
        quiet: list[Any] | None = None,
        summary: Summary | None = None,
        record: CertRecord | CertctlError | None = None,
        source: GlanceSource | None = None,
        at: int = 0,
    ) -> None:
        self.name = name
        self.quiet = quiet  # None: not known, ask the record
        self._summary = summary
        self._record = record
        self._source = source
        self._at = at

    def summary(self) -> Summary | None:
        """The summary; None when the record could not be read (then load() says why)."""
        if self._summary is None and self._source is not None:
            self._summary = self._source.summary(self._at)
        return self._summary

    def load(self) -> CertRecord:
        """The whole record; the CertctlError reading it when it cannot be read.

        A record from a source is parsed on each call, not held: a run over a large
        store keeps only the records it is working on."""
        record = self._record
        if record is None and self._source is not None:
            record = self._source.record(self.name, self._at)
        if isinstance(record, CertctlError):
            raise record
        assert record is not None, "a glance has a record or a source"
        return record


@dataclass(frozen=True)
class Finding:
    """One problem in the store (`doctor`)."""

    severity: str  # "error" | "warning"
    name: str  # certificate name, or "" for the store itself
    path: str  # a file, or where in the database ("certificates/NAME version 3")
    problem: str

    def to_json(self) -> dict[str, str]:
        """The documented JSON shape of one `doctor --json` finding."""
        return {
            "severity": self.severity,
            "name": self.name,
            "path": self.path,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class Deployment:
    """One host's copy of a certificate: which version `deploy` wrote there, and when."""

    host: str
    version: int
    at: datetime

    def to_json(self) -> dict[str, object]:
        """The documented JSON shape (list --json, show --json, deploy --json)."""
        return {"host": self.host, "version": self.version, "at": self.at.isoformat()}


class CertStore(Protocol):
    """The store's operations, as both backends provide them."""

    @property
    def location(self) -> str:
        """Where the store is, for messages: a path, or a URL without its password."""
        ...

    @property
    def backend(self) -> str:
        """ "filesystem" or "postgresql"."""
        ...

    # ---- setup ---------------------------------------------------------------------------

    def exists(self) -> bool:
        """True when the store has been created."""
        ...

    def check(self) -> None:
        """Refuse a store that cannot be used (not a store, newer format); cheap."""
        ...

    def ensure(self) -> None:
        """Create the store if missing (about to write)."""
        ...

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Writes inside commit together (PostgreSQL) or in the order given (files)."""
        ...

    def bulk_load(self) -> contextlib.AbstractContextManager[None]:
        """Filling a new store nobody reads yet: durable at the end, not per write."""
        ...

    def close(self) -> None:
        """Release connections and leases."""
        ...

    def owns_path(self, path: Path) -> bool:
        """True when `path` is (inside) the store's own files: never a place to write to."""
        ...

    # ---- certificates ----------------------------------------------------------------------

    def names(self) -> list[str]:
        """Names of all certificates, sorted."""
        ...

    def has(self, name: str) -> bool:
        """True when a certificate with this name exists."""
        ...

    def read(self, name: str) -> CertRecord:
        """One certificate's record; NotFound or StoreError when missing or damaged."""
        ...

    def records(self) -> list[tuple[str, CertRecord | CertctlError]]:
        """Every certificate's record (or the error reading it), fast for large stores."""
        ...

    def glances(self, summarizer: Summarizer | None) -> list[Glance]:
        """Every certificate's glance: when renew-due has nothing to do for it, its summary
        (made by `summarizer`, kept where cached) and its record, fast for large stores.
        Without a summarizer: the records only (read when asked for; no quiet spans, no
        summaries), and a cache keeps its summaries as they are."""
        ...

    def write(self, record: CertRecord) -> None:
        """Write a certificate's record (creating the certificate)."""
        ...

    def remove(self, name: str) -> None:
        """Delete a certificate with all its versions and pending keys."""
        ...

    # ---- versions and the live switch ---------------------------------------------------------

    def versions(self, name: str) -> list[int]:
        """Complete version numbers, ascending."""
        ...

    def live_version(self, name: str) -> int | None:
        """The live version, or None."""
        ...

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
        """Store a new (not yet live) version; returns its number (`number`: a copy's)."""
        ...

    def unswitched_version(self, name: str, cert: bytes, key: bytes) -> int | None:
        """A complete version newer than live holding exactly this certificate and key."""
        ...

    def read_version(self, name: str, version: int) -> dict[str, bytes]:
        """The PEM files of one version (cert.pem, chain.pem, fullchain.pem, privkey.pem)."""
        ...

    def switch_live(self, name: str, version: int) -> None:
        """Make `version` the live one, atomically."""
        ...

    def read_live(self, name: str) -> dict[str, bytes] | None:
        """The live PEM files, or None."""
        ...

    def live_paths(self, name: str) -> LivePaths | None:
        """Files on this host that always hold the live pair, or None (a database store)."""
        ...

    # ---- pending order keys -------------------------------------------------------------------

    def write_pending_key(self, name: str, key_pem: bytes, key_id: str | None = None) -> None:
        """Keep the private key of an order in progress."""
        ...

    def read_pending_key(self, name: str, key_id: str | None = None) -> bytes | None:
        """The key of the order naming `key_id`, or None."""
        ...

    def pending_key_ids(self, name: str) -> list[str | None]:
        """Ids of the pending keys present (None: an older order's key)."""
        ...

    def drop_pending_key(
        self, name: str, key_id: str | None = None, *, keep: str | None = None
    ) -> None:
        """Delete pending keys no order needs: `key_id`, else all but `keep`."""
        ...

    # ---- accounts ----------------------------------------------------------------------------

    def account_servers(self) -> list[str]:
        """The CA directory URLs of the stored accounts, sorted."""
        ...

    def read_account(self, server: str) -> tuple[AccountRecord, bytes] | None:
        """The account record and key PEM for a CA directory URL, or None."""
        ...

    def write_account_key(self, server: str, key_pem: bytes) -> None:
        """Keep an account key before it is registered anywhere."""
        ...

    def read_account_key(self, server: str) -> bytes | None:
        """An account key written before registration completed, or None."""
        ...

    def write_account(self, record: AccountRecord) -> None:
        """Store the account record for its CA."""
        ...

    def begin_account_key_rollover(self, record: AccountRecord, new_key_pem: bytes) -> None:
        """Make `new_key_pem` the account key, keeping the old one until settled."""
        ...

    def previous_account_key(self, server: str) -> bytes | None:
        """The old key of an unsettled rollover, or None."""
        ...

    def finish_account_key_rollover(self, record: AccountRecord, *, keep_new: bool) -> None:
        """Settle a rollover once the CA has said which key it accepts."""
        ...

    # ---- fleets: challenge responses any host serves, and who deployed what ---------------

    def publish_challenge(self, token: str, content: bytes) -> None:
        """Keep an HTTP-01 response where `serve-challenges` on every host finds it."""
        ...

    def challenge_response(self, token: str) -> bytes | None:
        """The published response for `token`, or None."""
        ...

    def withdraw_challenge(self, token: str) -> None:
        """Remove a published response (no error when it is gone)."""
        ...

    def record_deployment(self, name: str, host: str, version: int, at: datetime) -> None:
        """Note that `host` now serves `version` of `name`."""
        ...

    def deployments(self, name: str) -> list[Deployment]:
        """Which hosts deployed which version of `name`, by host name."""
        ...

    def all_deployments(self) -> dict[str, list[Deployment]]:
        """Every certificate's deployments, in one read (for `list`)."""
        ...

    # ---- locks -------------------------------------------------------------------------------

    def lock(
        self, name: str, *, what: str = "certificate", wait: float = 0
    ) -> contextlib.AbstractContextManager[None]:
        """Hold an exclusive lock; LockHeld (exit 3) names the holder."""
        ...

    def account_lock(self, server: str) -> contextlib.AbstractContextManager[None]:
        """Lock serialising account creation for one CA."""
        ...


def live_files(store: CertStore, name: str) -> dict[str, str]:
    """The live paths as strings for reports; {} when the store has no files on this host."""
    paths = store.live_paths(name)
    return paths.as_dict() if paths is not None else {}


@contextlib.contextmanager
def no_transaction() -> Iterator[None]:
    """The filesystem's transaction(): each write is atomic and ordered on its own."""
    yield
