"""Crash safety: SIGKILL at every write step of order, verify, issue and renew-due, and a
full disk during each write. After every fault the store passes `certctl doctor`, the live
files are one complete matching version, and a rerun finishes the work without a second
order at the CA.

The kill comes from certctl itself at a named step (CERTCTL_TEST_FAULT, a test-only hook in
certctl.store.files.fault_point), so every step is hit exactly, not by timing luck.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certctl.pki.certinfo import serial_hex

from conftest import Certctl, make_due, standalone, unique
from pebble import PebbleServer

pytestmark = [pytest.mark.faults, pytest.mark.pebble]

# every write step of `issue`, in order (the n-th meta write of the run where needed);
# the database store writes a version in one INSERT: no steps between its files
ISSUE_POINTS = [
    "finalize-after",
    "version-privkey.pem",
    "version-after",
    "live-before",
    "live-after",
    "meta-before",
    "meta-after",
]
FILE_ISSUE_POINTS = ["version-cert.pem", "version-fullchain.pem"]
ORDER_POINTS = ["pending-key-after", "meta-before", "meta-after"]
VERIFY_POINTS = ["meta-before", "meta-after"]


def killed(certctl: Certctl, point: str, *args: str) -> None:
    """Run certctl with a fault point armed; it must die by SIGKILL exactly there."""
    proc = certctl.run(*args, extra_env={"CERTCTL_TEST_FAULT": point})
    assert proc.returncode == -9, (point, proc.returncode, proc.stderr)


def doctor(certctl: Certctl) -> dict[str, Any]:
    """`certctl doctor --json`; it must find no errors."""
    proc = certctl.run("doctor", "--json")
    report = json.loads(proc.stdout)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert (proc.returncode, errors) == (0, []), report
    return report  # type: ignore[no-any-return]


def assert_live_pair(certctl: Certctl, name: str) -> x509.Certificate | None:
    """The live files, if any, are one complete version whose key matches its certificate."""
    store = certctl.open()
    try:
        files = store.read_live(name) if store.has(name) else None
    finally:
        store.close()
    if certctl.backend == "filesystem":
        live = certctl.store / "certs" / name / "live"
        assert (files is None) == (not os.path.lexists(live))
        if files is not None:
            assert stat.S_IMODE((live / "privkey.pem").stat().st_mode) == 0o600
    if files is None:
        return None
    cert = x509.load_pem_x509_certificate(files["cert.pem"])
    key = serialization.load_pem_private_key(files["privkey.pem"], None)
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)
    assert files["fullchain.pem"] == files["cert.pem"] + files["chain.pem"]
    return cert


def read(certctl: Certctl, name: str) -> Any:
    """The record of `name` through the store contract."""
    store = certctl.open()
    try:
        return store.read(name)
    finally:
        store.close()


def versions(certctl: Certctl, name: str) -> tuple[list[int], int | None, list[str | None]]:
    """Stored versions, the live one and the pending key ids of `name`."""
    store = certctl.open()
    try:
        return store.versions(name), store.live_version(name), store.pending_key_ids(name)
    finally:
        store.close()


def tree_hash(root: Path) -> str:
    """Hash of every file's path, mode and content (and symlink targets) under `root`."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.name.endswith(".lock") or path.name == "index.json":
            continue  # locks and the list cache are not certificate state
        if path.is_dir() and not path.is_symlink():
            continue  # (empty) directories are not certificate state
        info = path.lstat()
        digest.update(f"{path.relative_to(root)}|{info.st_mode:o}".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("point", ORDER_POINTS)
def test_kill_during_order_then_rerun(certctl: Certctl, pebble: PebbleServer, point: str) -> None:
    domain = unique("ko")
    killed(certctl, point, "order", "-d", domain, *standalone(pebble))
    doctor(certctl)
    assert assert_live_pair(certctl, domain) is None
    rerun = certctl.json("obtain", "-d", domain, *standalone(pebble))
    assert rerun["version"] == 1
    assert assert_live_pair(certctl, domain) is not None
    doctor(certctl)


@pytest.mark.parametrize("point", VERIFY_POINTS)
def test_kill_during_verify_then_rerun(certctl: Certctl, pebble: PebbleServer, point: str) -> None:
    domain = unique("kv")
    certctl.json("order", "-d", domain, *standalone(pebble))
    assert read(certctl, domain).order is not None
    killed(certctl, point, "verify", domain)
    doctor(certctl)
    certctl.json("verify", domain)  # the CA already validated: the rerun just confirms
    issued = certctl.json("issue", domain)
    assert issued["new_order"] is False  # the same order, resumed
    assert read(certctl, domain).order is None
    assert assert_live_pair(certctl, domain) is not None


@pytest.mark.parametrize("point", ISSUE_POINTS)
def test_kill_during_issue_then_rerun_resumes_the_order(
    certctl: Certctl, pebble: PebbleServer, point: str
) -> None:
    kill_during_issue(certctl, pebble, point)


@pytest.mark.filesystem_only  # fault points between the files of one version
@pytest.mark.parametrize("point", FILE_ISSUE_POINTS)
def test_kill_between_version_files_then_rerun_resumes_the_order(
    certctl: Certctl, pebble: PebbleServer, point: str
) -> None:
    kill_during_issue(certctl, pebble, point)


def kill_during_issue(certctl: Certctl, pebble: PebbleServer, point: str) -> None:
    """Kill `issue` at `point`: the store is sound and a rerun resumes the same order."""
    domain = unique("ki")
    certctl.json("order", "-d", domain, *standalone(pebble))
    certctl.json("verify", domain)
    killed(certctl, point, "issue", domain)
    doctor(certctl)
    assert_live_pair(certctl, domain)
    record = read(certctl, domain)
    if record.current is not None:
        # the live switch happened: the certificate is complete even without its metadata
        assert record.order is None
        assert versions(certctl, domain)[1] == 1
        return
    issued = certctl.json("issue", domain)
    assert issued["new_order"] is False  # resumed where the CA already has it
    assert issued["version"] == 1  # a version stored before the crash is reused, not doubled
    cert = assert_live_pair(certctl, domain)
    assert cert is not None and serial_hex(cert.serial_number) == issued["serial"]
    assert versions(certctl, domain) == ([1], 1, [])  # no pending key left behind
    doctor(certctl)


@pytest.mark.parametrize(
    "point",
    # metadata writes of a renewal: #1 order placed, #2 validated, #3 certificate stored
    ["finalize-after", "version-after", "live-before", "live-after", "meta-before#3"],
)
def test_kill_during_renewal_keeps_old_certificate_live(
    certctl: Certctl, pebble: PebbleServer, point: str
) -> None:
    domain = unique("kr")
    first = certctl.json("obtain", "-d", domain, *standalone(pebble))
    assert certctl.run("renew-due").returncode == 0  # fetches and stores ARI: not due yet
    make_due(certctl, domain)
    killed(certctl, point, "renew-due")
    doctor(certctl)
    cert = assert_live_pair(certctl, domain)
    assert cert is not None
    switched = serial_hex(cert.serial_number) != first["serial"]
    # files: the switch is the symlink's rename; PostgreSQL: the version, the switch and
    # the record commit together after the last of these steps, so none has switched
    switches = ("live-after", "meta-before#3") if certctl.backend == "filesystem" else ()
    assert switched == (point in switches)
    record = read(certctl, domain)
    assert record.current is not None
    assert record.current.serial == serial_hex(cert.serial_number)  # metadata = live
    if not switched:
        # the rerun finishes the stored order instead of placing a second one
        proc = certctl.run("renew-due", "--json")
        assert proc.returncode == 0, proc.stderr
        (entry,) = json.loads(proc.stdout)["certificates"]
        assert entry["action"] == "renewed" and "resumed the stored order" in entry["detail"]
        assert versions(certctl, domain)[0] == [1, 2]
    doctor(certctl)


def _limit_file_size(limit: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.filesystem_only  # a full disk on the host: the database store writes no files
@pytest.mark.parametrize("limit", [0, 200, 600, 1500])
def test_disk_full_during_issue(certctl: Certctl, pebble: PebbleServer, limit: int) -> None:
    """RLIMIT_FSIZE makes every write past `limit` bytes fail as on a full disk."""
    domain = unique("df")
    certctl.json("order", "-d", domain, *standalone(pebble))
    certctl.json("verify", domain)
    before = tree_hash(certctl.store)
    proc = certctl.run("issue", domain, preexec_fn=_limit_file_size(limit))
    assert proc.returncode == 1, proc.stderr
    assert "disk full" in proc.stderr and proc.stderr.count("\n") == 1
    assert tree_hash(certctl.store) == before  # every earlier file byte-identical
    assert not [
        p
        for p in certctl.store.rglob("*")
        if p.is_file() and p.stat().st_size == 0 and not p.name.endswith(".lock")
    ]
    issued = certctl.json("issue", domain)  # space again: the same order completes
    assert issued["new_order"] is False and issued["version"] == 1
    doctor(certctl)


@pytest.mark.filesystem_only  # a full disk on the host: the database store writes no files
def test_disk_full_during_renewal_keeps_everything(certctl: Certctl, pebble: PebbleServer) -> None:
    domain = unique("dr")
    certctl.json("obtain", "-d", domain, *standalone(pebble))
    make_due(certctl, domain)
    live_before = (certctl.store / "certs" / domain / "live" / "fullchain.pem").read_bytes()
    proc = certctl.run("renew-due", preexec_fn=_limit_file_size(400))
    assert proc.returncode == 1
    assert "disk full" in proc.stdout
    assert (certctl.store / "certs" / domain / "live" / "fullchain.pem").read_bytes() == live_before
    doctor(certctl)


def test_damaged_metadata_is_reported_and_others_still_renew(
    certctl: Certctl, pebble: PebbleServer, request: pytest.FixtureRequest
) -> None:
    good, bad, empty = unique("g"), unique("b"), unique("e")
    for domain in (good, bad, empty):
        certctl.json("obtain", "-d", domain, *standalone(pebble))
        make_due(certctl, domain)
    if certctl.backend == "filesystem":
        meta = certctl.store / "certs" / bad / "meta.toml"
        meta.write_bytes(meta.read_bytes()[:40])  # truncated
        (certctl.store / "certs" / empty / "meta.toml").write_bytes(b"")

        def damaged() -> object:
            return meta.read_bytes()
    else:  # rows a broken tool or a hand edit left: not a record, an empty object
        server = request.getfixturevalue("postgres")
        dbname = certctl.location.rsplit("/", 1)[1]
        update = "UPDATE certctl_certificates SET record = %s::jsonb WHERE name = %s"
        server.sql(update, ('"truncated"', bad), dbname=dbname)
        server.sql(update, ("{}", empty), dbname=dbname)

        def damaged() -> object:
            return server.sql(
                "SELECT name, record::text FROM certctl_certificates"
                " WHERE name IN (%s, %s) ORDER BY name",
                (bad, empty),
                dbname=dbname,
            )

    damaged_bytes = damaged()
    proc = certctl.run("renew-due", "--json")
    assert proc.returncode == 1
    outcomes = {e["name"]: e["action"] for e in json.loads(proc.stdout)["certificates"]}
    assert outcomes == {good: "renewed", bad: "damaged", empty: "damaged"}
    assert damaged() == damaged_bytes  # left for the user
    report = certctl.run("doctor", "--json")
    assert report.returncode == 1
    broken = {f["name"] for f in json.loads(report.stdout)["findings"] if f["severity"] == "error"}
    assert broken == {bad, empty}
    listed = {e["name"]: e["state"] for e in certctl.json("list")["certificates"]}
    assert listed[bad] == listed[empty] == "damaged" and listed[good] == "due"


def test_renew_due_killed_holding_a_lock_frees_it_at_once(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique("kl")
    certctl.json("obtain", "-d", domain, *standalone(pebble))
    make_due(certctl, domain)
    killed(certctl, "finalize-after", "renew-due")  # dies inside the certificate's lock
    proc = certctl.run("renew-due", "--json")
    assert proc.returncode == 0, proc.stderr  # not 3: a dead holder's flock is gone
    assert json.loads(proc.stdout)["certificates"][0]["action"] == "renewed"


@pytest.mark.filesystem_only  # the modes of the store's files
@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_modes_under_any_umask(certctl: Certctl, pebble: PebbleServer, umask: int) -> None:
    def set_umask() -> None:
        os.umask(umask)

    domain = unique("um")
    args = ("obtain", "-d", domain, *standalone(pebble), "--json")
    proc = certctl.run(*args, preexec_fn=set_umask)
    assert proc.returncode == 0, proc.stderr
    make_due(certctl.store, domain)
    assert certctl.run("renew-due", preexec_fn=set_umask).returncode == 0
    for path in certctl.store.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        if path.is_dir():
            assert mode == 0o700, path
        elif path.name.endswith((".key", "privkey.pem")) or path.suffix in (".toml", ".json"):
            assert mode == 0o600, path
        else:
            assert mode & 0o022 == 0, path  # certificates: never group/world-writable
