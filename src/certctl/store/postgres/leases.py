"""Locks across hosts: leases with an expiry, renewed while held, and fencing tokens.

Taking a lock is one statement: insert the lock row, or take it over when its
lease ran out or its holder's database session is gone (a killed process frees
its locks at once). Each take gets a new token from a sequence. While the lock
is held a heartbeat thread extends the lease every third of it. Every write the
holder makes for that certificate first locks the row (`FOR UPDATE`) and checks
its token: a holder that was paused past its lease (SIGSTOP, a frozen VM, a
partition) and lost the lock to another host finds a newer token and writes
nothing. A writer that holds no lock is refused while anyone else does.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

from certctl.errors import LockHeld, StoreError
from certctl.policy.names import check_cert_name
from certctl.store.postgres.base import PgBase

_TAKE = """
INSERT INTO certctl_locks AS held (name, token, holder, backend_pid, expires_at)
VALUES (%(name)s, nextval('certctl_fencing_tokens'), %(holder)s, pg_backend_pid(),
        now() + make_interval(secs => %(lease)s))
ON CONFLICT (name) DO UPDATE
SET token = EXCLUDED.token, holder = EXCLUDED.holder,
    backend_pid = EXCLUDED.backend_pid, expires_at = EXCLUDED.expires_at
WHERE held.expires_at < now()
   OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = held.backend_pid)
RETURNING token
"""


def holder_id() -> str:
    """Who holds a lock, as the message for a held lock names it."""
    return f"host {os.environ.get('CERTCTL_HOST_ID') or socket.gethostname()} pid {os.getpid()}"


def lock_key(name: str, what: str) -> str:
    """The lock row's name: the certificate's, or `_<what>-<name>` (as on the filesystem)."""
    if what == "certificate":
        return check_cert_name(name)
    if what == "port":  # a port is this host's: hosts sharing the store don't share ports
        return f"_port-{name}@{socket.gethostname()}"
    return f"_{what}-{name}"


class PgLocks(PgBase):
    """Per-certificate (and per-account) leases with fencing."""

    def _held(self) -> dict[str, int]:
        held: dict[str, int] | None = getattr(self, "_held_tokens", None)
        if held is None:
            held = {}
            self._held_tokens = held
        return held

    @contextlib.contextmanager
    def lock(self, name: str, *, what: str = "certificate", wait: float = 0) -> Iterator[None]:
        """Hold the lease on `name`; LockHeld (exit 3) names the holder and its expiry."""
        key = lock_key(name, what)
        self._ensure_for_write()
        deadline = time.monotonic() + wait
        delay = 0.05
        while True:
            row = self.run(
                f"lock {what} {name!r}",
                _TAKE,
                {"name": key, "holder": holder_id(), "lease": self.lease},
            ).fetchone()
            if row is not None:
                break
            if time.monotonic() < deadline:
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 1.5, 1.0)
                continue
            raise self._lock_held(key, what, name)
        token = int(row[0])
        self._held()[key] = token
        self._start_heartbeat()
        try:
            yield
        finally:
            self._held().pop(key, None)
            with contextlib.suppress(Exception):  # a lost connection: the lease expires
                self.run(
                    f"unlock {what} {name!r}",
                    "DELETE FROM certctl_locks WHERE name = %s AND token = %s",
                    (key, token),
                )

    def _lock_held(self, key: str, what: str, name: str) -> LockHeld:
        row = self.run(
            "read the lock holder",
            "SELECT holder, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
            " FROM certctl_locks WHERE name = %s",
            (key,),
        ).fetchone()
        holder = f"{row[0]} (lease until {row[1]} UTC)" if row else "another process"
        return LockHeld(
            f"{what} {name!r} is locked by {holder}; another certctl is running — retry later"
        )

    def account_lock(self, server: str) -> contextlib.AbstractContextManager[None]:
        """Lock serialising account creation for one CA."""
        import hashlib

        return self.lock(hashlib.sha256(server.encode()).hexdigest()[:16], what="account")

    def fence(self, name: str, what: str = "certificate") -> None:
        """Inside a transaction: refuse the write unless this process may write `name`.

        Holding the lock: the row must still carry our token (locked FOR UPDATE until
        commit, so nobody takes over mid-write). Not holding it: nobody else may hold
        a live lease.
        """
        key = lock_key(name, what)
        checked = self.fenced()
        if checked is not None and key in checked:
            return  # its lock row is ours FOR UPDATE until this transaction ends
        token = self._held().get(key)
        row = self.run(
            "check the lock",
            "SELECT token, holder, expires_at > now() FROM certctl_locks WHERE name = %s"
            " FOR UPDATE",
            (key,),
        ).fetchone()
        if token is not None:
            if row is None or int(row[0]) != token:
                taken = f" by {row[1]}" if row else ""
                raise StoreError(
                    f"lost the lock on {what} {name!r}: its lease ran out and it was taken"
                    f" over{taken}; nothing was written (raise [store] lease if this host"
                    " pauses for long)"
                )
        elif row is not None and row[2]:
            raise LockHeld(
                f"{what} {name!r} is locked by {row[1]}; another certctl is running — retry later"
            )
        if checked is not None and row is not None:
            checked.add(key)  # no row: nothing locked FOR UPDATE, check again next time

    # ---- the heartbeat ---------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        thread: threading.Thread | None = getattr(self, "_heartbeat", None)
        if thread is not None and thread.is_alive():
            return
        self._beating = threading.Event()
        thread = threading.Thread(target=self._beat, name="certctl-lease", daemon=True)
        self._heartbeat = thread
        thread.start()

    def _beat(self) -> None:
        """Extend every held lease each third of the lease, on a connection of its own."""
        from certctl.store.postgres.connection import connect

        conn = None
        while not self._beating.wait(self.lease / 3):
            held = dict(self._held())
            if not held:
                continue
            try:
                if conn is None or conn.closed:
                    conn = connect(self.url, self.location)
                for key, token in held.items():
                    conn.execute(
                        "UPDATE certctl_locks SET expires_at = now() + make_interval(secs => %s)"
                        " WHERE name = %s AND token = %s",
                        (self.lease, key, token),
                    )
            except Exception:  # the next beat retries; if none lands, the fence holds
                conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        """Stop the heartbeat and close the connections."""
        beating = getattr(self, "_beating", None)
        if beating is not None:
            beating.set()
        super().close()
