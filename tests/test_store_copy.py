"""`certctl store copy`: a whole store into an empty one of either backend, verified.

The big round trip (1,000 certificates, filesystem → PostgreSQL → filesystem) uses
the benchmark's store builder: a realistic mix of versions, pending orders, notice
and back-off state. The source is fingerprinted before and after: never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from certctl.store.opening import open_store

from conftest import Certctl, store_key

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from storebuilder import build_store


def leaf(slot: int) -> tuple[bytes, bytes]:
    """A real self-signed certificate for web.example.com and its key (PEM)."""
    import certfactory

    key = certfactory.private_key("ec256", slot)
    cert = certfactory.make_cert(
        certfactory.name("web.example.com"), key, names=("web.example.com",)
    )
    return certfactory.pem(cert), certfactory.pem(key)


def tree_digest(root: Path) -> dict[str, str]:
    """Every path under a store directory with its content hash (lock files aside)."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative.startswith("locks"):
            continue
        if path.is_symlink():
            found[relative] = f"link {os.readlink(path)}"
        elif path.is_file():
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def snapshot(location: str, key_file: Path | None = None) -> dict[str, object]:
    """Everything the contract can read: records, versions with their files, pending keys."""
    store = open_store(location, warn=lambda message: None, key_file=key_file)
    try:
        result: dict[str, object] = {}
        for name in store.names():
            result[name] = (
                store.read(name).to_dict(),
                store.live_version(name),
                [store.read_version(name, v) for v in store.versions(name)],
                [(k, store.read_pending_key(name, k)) for k in store.pending_key_ids(name)],
            )
        for server in store.account_servers():
            result[f"account {server}"] = (
                store.read_account(server),
                store.previous_account_key(server),
            )
        return result
    finally:
        store.close()


@pytest.mark.timeout(600)
def test_a_thousand_certificates_to_postgresql_and_back_are_identical(
    tmp_path: Path, pg_url: str
) -> None:
    source = tmp_path / "source"
    built = build_store(source, 1000)
    assert sum(built.values()) == 1000
    before = tree_digest(source)
    key = store_key(tmp_path)
    there = Certctl(source, None).run(
        "store", "copy", "--to", pg_url, "--to-key-file", str(key), "--json", timeout=600
    )
    assert there.returncode == 0, there.stderr
    report = json.loads(there.stdout)
    assert report["certificates"] == 1000 and report["verified"] is True
    assert report["versions"] >= 1000 and report["pending_keys"] > 0
    assert tree_digest(source) == before  # the source was only read
    back = tmp_path / "back"
    again = Certctl(back, None, location=pg_url, key_file=key).run(
        "store", "copy", "--to", str(back), "--json", timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert snapshot(str(back)) == snapshot(str(source))
    assert snapshot(pg_url, key) == snapshot(str(source))


def test_everything_a_store_holds_is_copied(tmp_path: Path, pg_url: str) -> None:
    """Accounts with an unsettled rollover, pending keys by order id, notices, back-off."""
    from datetime import UTC, datetime

    from certctl.models import AccountRecord, CertRecord

    source = open_store(str(tmp_path / "source"))
    source.ensure()
    server = "https://acme.test/directory"
    when = datetime(2030, 1, 1, tzinfo=UTC)
    account = AccountRecord(server=server, uri="https://acme.test/acct/9", created=when)
    source.write_account_key(server, b"OLD ACCOUNT KEY")
    source.write_account(account)
    source.begin_account_key_rollover(account, b"NEW ACCOUNT KEY")
    rec = CertRecord(
        name="web",
        domains=["web.example.com"],
        renewal={"failures": 3, "last_error": "refused", "not_before_retry": when},
        notices={"email": {"at": when}},
    )
    source.write(rec)
    for n in (1, 2, 3):
        cert, key_pem = leaf(n)
        source.add_version("web", cert=cert, chain=b"", key=key_pem)
    source.switch_live("web", 2)
    source.write_pending_key("web", b"PENDING", "ef" * 8)
    key = store_key(tmp_path)
    done = Certctl(tmp_path / "source", None).run(
        "store", "copy", "--to", pg_url, "--to-key-file", str(key)
    )
    assert done.returncode == 0, done.stderr
    assert "copied 1 certificate(s) (3 version(s), 1 pending key(s)) and 1 account(s)" in (
        done.stdout
    )
    assert snapshot(pg_url, key) == snapshot(str(tmp_path / "source"))
    copied = open_store(pg_url, key_file=key)
    try:
        assert copied.previous_account_key(server) == b"OLD ACCOUNT KEY"
        assert copied.live_version("web") == 2
    finally:
        copied.close()


def test_a_target_that_is_not_empty_is_refused_untouched(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    for root, name in ((source, "a"), (target, "b")):
        from certctl.models import CertRecord

        created = open_store(str(root))
        created.ensure()
        created.write(CertRecord(name=name, domains=[f"{name}.example.com"]))
    before = tree_digest(target)
    proc = Certctl(source, None).run("store", "copy", "--to", str(target))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "is not empty" in proc.stderr
    assert tree_digest(target) == before


def test_copying_a_store_onto_itself_or_from_nothing_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "source"
    missing = Certctl(source, None).run("store", "copy", "--to", str(tmp_path / "t"))
    assert missing.returncode == 2 and "nothing to copy" in missing.stderr
    assert not (tmp_path / "t").exists()
    from certctl.models import CertRecord

    created = open_store(str(source))
    created.ensure()
    created.write(CertRecord(name="a", domains=["a.example.com"]))
    itself = Certctl(source, None).run("store", "copy", "--to", str(source))
    assert itself.returncode == 2 and "the target is the source" in itself.stderr


def test_rotate_key_reseals_every_secret_and_refuses_the_old_key(
    tmp_path: Path, pg_url: str, postgres: object
) -> None:
    from certctl.models import AccountRecord, CertRecord

    old = store_key(tmp_path)
    (tmp_path / "new").mkdir()
    new = store_key(tmp_path / "new")
    store = open_store(pg_url, key_file=old)
    try:
        store.write(CertRecord(name="web", domains=["web.example.com"]))
        cert, key_pem = leaf(1)
        store.switch_live("web", store.add_version("web", cert=cert, chain=b"", key=key_pem))
        store.write_pending_key("web", b"PENDING", "ab" * 8)
        store.write_account_key("https://acme.test/d", b"ACCOUNT")
        store.write_account(AccountRecord(server="https://acme.test/d", uri="u"))
    finally:
        store.close()
    before = snapshot(pg_url, old)
    runner = Certctl(tmp_path, None, location=pg_url, key_file=old)
    rotated = runner.run("store", "rotate-key", str(new), "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["secrets"] == 3
    assert snapshot(pg_url, new) == before
    (tmp_path / "out").mkdir()
    stale = runner.run("export", "web", "--dir", str(tmp_path / "out"))  # the old key: refused
    assert stale.returncode == 2
    assert "sealed with store key" in stale.stderr and stale.stderr.count("\n") == 1
    assert list((tmp_path / "out").iterdir()) == []
    fresh = Certctl(tmp_path, None, location=pg_url, key_file=new)
    assert fresh.run("doctor").returncode == 0
