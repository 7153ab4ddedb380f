"""A lock holder in its own process, for tests/test_pg_locks.py (run as a script).

pg_lock_worker.py count URL KEY_FILE NAME ROUNDS
    ROUNDS times: take the certificate's lock (waiting), read the record, mark it
    "inside" (deploy_hook), write, read again, bump the counter (renew_before_days)
    and clear the mark, write, unlock. Prints one "enter EXIT" line (monotonic
    clock) per round, and "overlap" if it found another process's mark inside.
pg_lock_worker.py hold URL KEY_FILE NAME LEASE
    Take the lock with a LEASE-second lease, print "locked", then wait for a line on
    stdin, then write the record with deploy_hook "written by PID" and print "wrote",
    or "refused: <message>" / "held: <message>" when the store refuses.
pg_lock_worker.py take URL KEY_FILE NAME LEASE WAIT [keep]
    Try to take the lock for up to WAIT seconds; print "took SECONDS" and write the
    record with deploy_hook "written by PID", or "held: <message>"; then unlock
    (with `keep`: after a line on stdin).
pg_lock_worker.py busy URL KEY_FILE NAME LEASE SECONDS
    Take the lock, print "locked", keep it SECONDS while working (not paused), then
    write the record as above and print "wrote" (or "refused: ...").
"""

from __future__ import annotations

import os
import sys
import time

from certctl.errors import LockHeld, StoreError
from certctl.store.opening import open_store


def _write_mark(store: object, name: str) -> str:
    record = store.read(name)  # type: ignore[attr-defined]
    record.deploy_hook = f"written by {os.getpid()}"
    try:
        store.write(record)  # type: ignore[attr-defined]
    except LockHeld as e:
        return f"held: {e}"
    except StoreError as e:
        return f"refused: {e}"
    return "wrote"


def count(url: str, key_file: str, name: str, rounds: int) -> None:
    store = open_store(url, key_file=key_file)
    mark = f"inside {os.getpid()}"
    for _ in range(rounds):
        with store.lock(name, wait=120):
            entered = time.monotonic()
            record = store.read(name)
            if record.deploy_hook is not None:
                print(f"overlap {record.deploy_hook}", flush=True)
            record.deploy_hook = mark
            store.write(record)
            time.sleep(0.005)
            record = store.read(name)
            if record.deploy_hook != mark:
                print(f"overlap {record.deploy_hook}", flush=True)
            record.renew_before_days = (record.renew_before_days or 0) + 1
            record.deploy_hook = None
            store.write(record)
            print(f"enter {entered:.6f} {time.monotonic():.6f}", flush=True)
    store.close()


def hold(url: str, key_file: str, name: str, lease: float) -> None:
    store = open_store(url, key_file=key_file, lease=lease)
    with store.lock(name):
        print("locked", flush=True)
        sys.stdin.readline()
        print(_write_mark(store, name), flush=True)
    store.close()


def take(url: str, key_file: str, name: str, lease: float, wait: float, keep: bool) -> None:
    store = open_store(url, key_file=key_file, lease=lease)
    start = time.monotonic()
    try:
        with store.lock(name, wait=wait):
            print(f"took {time.monotonic() - start:.3f}", flush=True)
            print(_write_mark(store, name), flush=True)
            if keep:
                sys.stdin.readline()
    except LockHeld as e:
        print(f"held: {e}", flush=True)
    store.close()


def busy(url: str, key_file: str, name: str, lease: float, seconds: float) -> None:
    store = open_store(url, key_file=key_file, lease=lease)
    with store.lock(name):
        print("locked", flush=True)
        time.sleep(seconds)
        print(_write_mark(store, name), flush=True)
    store.close()


if __name__ == "__main__":
    mode, url, key, cert = sys.argv[1:5]
    rest = sys.argv[5:]
    if mode == "count":
        count(url, key, cert, int(rest[0]))
    elif mode == "hold":
        hold(url, key, cert, float(rest[0]))
    elif mode == "take":
        take(url, key, cert, float(rest[0]), float(rest[1]), rest[2:] == ["keep"])
    elif mode == "busy":
        busy(url, key, cert, float(rest[0]), float(rest[1]))
    else:
        raise SystemExit(f"unknown mode {mode}")
