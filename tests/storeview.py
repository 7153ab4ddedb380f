"""What a store holds, on either backend, for "nothing in the store changed" checks.

On the filesystem: every path with its type, mode and content hash (or link target).
On PostgreSQL: every row of certctl's tables but the lease bookkeeping (sealed columns
are compared as stored: an unchanged row has the same ciphertext).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import Certctl

# the tables holding the store's contents (certctl_locks are leases, not contents)
TABLES = (
    "certctl_meta",
    "certctl_certificates",
    "certctl_versions",
    "certctl_live",
    "certctl_pending_keys",
    "certctl_accounts",
)


def file_snapshot(root: Path) -> dict[str, Any]:
    """Every path under `root` with its type, mode and content hash (or link target)."""
    if not os.path.lexists(root):
        return {}
    result: dict[str, Any] = {".": ("root", stat.S_IMODE(root.lstat().st_mode))}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            path = Path(dirpath) / entry
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                result[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                result[rel] = ("dir", stat.S_IMODE(info.st_mode))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                result[rel] = ("file", stat.S_IMODE(info.st_mode), digest)
    return result


def database(cx: Certctl) -> str:
    """The name of the runner's PostgreSQL database (the last part of its URL)."""
    assert cx.backend == "postgresql"
    return cx.location.rsplit("/", 1)[-1]


def rows(cx: Certctl) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of certctl's content tables, sorted ({} before the schema exists)."""
    import psycopg

    result: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(cx.location, autocommit=True) as conn:
        present = {
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'certctl_%%'"
            ).fetchall()
        }
        for table in TABLES:
            if table in present:
                found = conn.execute(f"SELECT * FROM {table}").fetchall()
                result[table] = sorted(found, key=repr)
    return result


def snapshot(cx: Certctl) -> Any:
    """The store's whole contents, comparable with == before and after a command."""
    if cx.backend == "postgresql":
        return rows(cx)
    return file_snapshot(cx.store)


def exists(cx: Certctl) -> bool:
    """True when the store was created (a directory, or certctl's tables)."""
    if cx.backend == "postgresql":
        return bool(rows(cx))
    return os.path.lexists(cx.store)


@contextmanager
def opened(cx: Certctl) -> Iterator[Any]:
    """The runner's store through the contract, closed afterwards."""
    store = cx.open()
    try:
        yield store
    finally:
        store.close()


def live_version(cx: Certctl, name: str) -> int | None:
    """The live version of `name` (the live symlink's target on the filesystem)."""
    with opened(cx) as store:
        return store.live_version(name)  # type: ignore[no-any-return]


def versions(cx: Certctl, name: str) -> list[int]:
    """The complete versions of `name`, ascending."""
    with opened(cx) as store:
        return store.versions(name)  # type: ignore[no-any-return]


def version_files(cx: Certctl, name: str, version: int) -> dict[str, bytes]:
    """The PEM files of one stored version."""
    with opened(cx) as store:
        return dict(store.read_version(name, version))


def execute(cx: Certctl, statement: str, params: tuple[Any, ...] = ()) -> int:
    """Run one statement on the runner's database as its owner (damage by hand); rows hit."""
    import psycopg

    with psycopg.connect(cx.location, autocommit=True) as conn:
        return conn.execute(statement, params).rowcount  # type: ignore[arg-type]


def names(cx: Certctl) -> list[str]:
    """The certificates in the store (none when it does not exist yet)."""
    with opened(cx) as store:
        return store.names() if store.exists() else []  # type: ignore[no-any-return]


def write_record(cx: Certctl, record: Any) -> None:
    """Write a record straight into the store (creating it), as certctl would."""
    with opened(cx) as store:
        store.ensure()
        with store.lock(record.name):
            store.write(record)


def leftovers(cx: Certctl) -> list[str]:
    """Whatever a removed certificate could leave: entries under certs/, or rows of it."""
    if cx.backend == "filesystem":
        return sorted(os.listdir(cx.store / "certs"))
    found = rows(cx)
    tables = ("certctl_certificates", "certctl_versions", "certctl_live", "certctl_pending_keys")
    return sorted(f"{table}: {row[0]}" for table in tables for row in found.get(table, []))


LOCKER = """\
import sys
from certctl.store.opening import open_store
store = open_store(sys.argv[1], warn=lambda message: None, key_file=sys.argv[3] or None)
store.ensure()
with store.lock(sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.read()
store.close()
"""


@contextmanager
def lock_held_elsewhere(cx: Certctl, name: str) -> Iterator[None]:
    """Another process holds `name`'s lock (on either backend) until the block ends."""
    import subprocess
    import sys

    key_file = str(cx.key_file) if cx.key_file is not None else ""
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCKER, cx.location, name, key_file],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def query(cx: Certctl, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query on the runner's database."""
    import psycopg

    with psycopg.connect(cx.location, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()  # type: ignore[arg-type]


def ensure(cx: Certctl) -> None:
    """Create the (empty) store."""
    with opened(cx) as store:
        store.ensure()


def findings(cx: Certctl) -> list[Any]:
    """What `doctor` finds in the store (store/doctor.py, either backend)."""
    from certctl.store.doctor import check

    with opened(cx) as store:
        return check(store)


@contextmanager
def read_only(cx: Certctl, request: Any, files: Any) -> Iterator[str]:
    """Make the store unwritable; yields what certctl's one line will say about it.

    Files: `files(directory)` (a read-only bind mount or modes). PostgreSQL: the
    database's sessions become read-only, as on a replica.
    """
    if cx.backend == "filesystem":
        with files(cx.store) as cause:
            yield cause
        return
    postgres = request.getfixturevalue("postgres")
    postgres.set_read_only(database(cx))
    try:
        yield "the server is read-only"
    finally:
        postgres.set_read_only(database(cx), False)


# ---- index.json (the filesystem store's cache, store/index.py) ---------------------------


def read_index(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """index.json as (header, heads, summaries, records), each keyed by certificate name."""
    import json

    lines = path.read_bytes().split(b"\n")
    header, heads = json.loads(lines[0]), json.loads(lines[1])
    names = list(heads)
    summaries = {n: json.loads(line) for n, line in zip(names, lines[2:], strict=False)}
    records = {n: json.loads(line) for n, line in zip(names, lines[2 + len(names) :], strict=False)}
    return header, heads, summaries, records


def write_index(
    path: Path,
    header: dict[str, Any],
    heads: dict[str, Any],
    summaries: dict[str, Any],
    records: dict[str, Any],
    raw: dict[str, str] | None = None,
) -> None:
    """Write index.json with a checksum that matches (as a bug in certctl might write it);
    `raw` replaces a record's line with text as given."""
    import json

    from certctl.store.index import checksum

    lines = [json.dumps(heads)]
    lines += [json.dumps(summaries.get(n)) for n in heads]
    lines += [(raw or {}).get(n) or json.dumps(records.get(n)) for n in heads]
    body = ("\n".join(lines) + "\n").encode()
    fields = {**header, "crc32": checksum(body)}
    path.write_bytes(json.dumps(fields).encode() + b"\n" + body)
