"""kill -9 at every write step of issue, renew-due and upload on the PostgreSQL store (issue 13).

Each write step (`CERTCTL_TEST_FAULT=<point>#<n>`: the n-th time the store reaches it)
is hit in turn, n = 1, 2, … until the command runs past the last one. After every
kill: `certctl doctor` finds no error; `list`, `show` and the store agree, the
certificate as it was or fully updated (never a live version without its key, never
a record naming a version that is not live); and the same command run again finishes
the work (a renewal without placing a second version).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certctl.pki.certinfo import serial_hex

from certfactory import make_leaf
from conftest import Certctl, make_due, own_pebble, standalone, store_key, unique
from pebble import PebbleServer
from postgres import PostgresServer, database_name

# Killing certctl at every step of its requests is the hardest use Pebble gets here: a CA of
# this module's own, so a Pebble wedged by it (seen in CI) can't reach the other tests.
pebble = own_pebble()

pytestmark = [pytest.mark.faults]

# the store's write steps on PostgreSQL (store/postgres/store.py), and finalize at the CA
POINTS = [
    "finalize-after",
    "pending-key-after",
    "version-privkey.pem",
    "version-after",
    "live-before",
    "live-after",
    "meta-before",
    "meta-after",
]
MAX_HITS = 6  # no command reaches one step more often


@pytest.fixture
def db(pg_url: str, pebble: PebbleServer, tmp_path: Path) -> Certctl:
    return Certctl(tmp_path / "unused", pebble, location=pg_url, key_file=store_key(tmp_path))


def here(certctl: Certctl, *args: str) -> Any:
    """Run certctl in-process (the checks and reruns; only the killed run is a subprocess)."""
    result = certctl.invoke(*args)
    # stdout too: with --json an error (a CA's URL that timed out, say) is reported there
    assert result.exit_code == 0, (args, result.exit_code, result.stderr, result.stdout)
    return json.loads(result.stdout) if "--json" in args else result


def dbname(certctl: Certctl) -> str:
    return certctl.location.rsplit("/", 1)[1]


def live_serial(certctl: Certctl, name: str) -> str | None:
    """The live certificate's serial, its key checked against it; None when nothing is live."""
    store = certctl.open()
    try:
        files = store.read_live(name) if store.has(name) else None
    finally:
        store.close()
    if files is None:
        return None
    cert = x509.load_pem_x509_certificate(files["cert.pem"])
    key = serialization.load_pem_private_key(files["privkey.pem"], None)
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)
    assert files["fullchain.pem"] == files["cert.pem"] + files["chain.pem"]
    return serial_hex(cert.serial_number)


def sound(certctl: Certctl, postgres: PostgresServer, name: str) -> dict[str, Any]:
    """doctor, list, show and the tables agree; `show --json` of `name` (or {} if absent)."""
    report = here(certctl, "doctor", "--json")
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert errors == [], report
    # the tables themselves: every live row has a version with a sealed key
    orphans = (
        postgres.sql(
            "SELECT l.name FROM certctl_live l LEFT JOIN certctl_versions v USING (name, version)"
            " WHERE v.privkey IS NULL OR length(v.privkey) = 0",
            dbname=dbname(certctl),
        )
        if postgres.sql("SELECT to_regclass('certctl_live') IS NOT NULL", dbname=dbname(certctl))[
            0
        ][0]
        else []
    )
    assert orphans == []
    listed = {e["name"]: e for e in here(certctl, "list", "--json")["certificates"]}
    if name not in listed:
        assert live_serial(certctl, name) is None
        return {}
    shown = here(certctl, "show", name, "--json")
    assert listed[name]["state"] == shown["state"]
    serial = live_serial(certctl, name)
    if shown["certificate"] is None:
        assert serial is None and shown["live_version"] is None
    else:  # the record describes exactly the live version
        assert shown["certificate"]["serial"] == serial
        live = [v for v in shown["versions"] if v["live"]]
        assert [v["version"] for v in live] == [shown["live_version"]]
        assert live[0]["serial"] == serial and live[0]["error"] is None
    return shown  # type: ignore[no-any-return]


def kill_each_step(setup: Any, command: Any, check: Any) -> int:
    """For every point and every n: fresh `setup()`, `command(point#n)`, then `check(...)`.

    Returns how many kills there were; a point is done when the command runs past it.
    """
    kills = 0
    for point in POINTS:
        for n in range(1, MAX_HITS + 1):
            state = setup()
            proc = command(state, f"{point}#{n}")
            if proc.returncode != -9:
                assert proc.returncode == 0, (point, n, proc.stderr)
                check(state, point, killed=False)
                break
            kills += 1
            check(state, f"{point}#{n}", killed=True)
        else:
            raise AssertionError(f"{point} reached more than {MAX_HITS} times")
    return kills


def test_kill_at_each_step_of_issue(
    db: Certctl, pebble: PebbleServer, postgres: PostgresServer
) -> None:
    def setup() -> str:
        domain = unique("pki")
        here(db, "order", "-d", domain, *standalone(pebble), "--json")
        here(db, "verify", domain, "--json")
        return domain

    def command(domain: str, point: str) -> Any:
        return db.run("issue", domain, extra_env={"CERTCTL_TEST_FAULT": point})

    def check(domain: str, point: str, killed: bool) -> None:
        shown = sound(db, postgres, domain)
        store = db.open()
        try:
            versions, live, pending = (
                store.versions(domain),
                store.live_version(domain),
                store.pending_key_ids(domain),
            )
        finally:
            store.close()
        if shown["certificate"] is None:  # as it was: the order, its key, no version
            assert (versions, live, shown["state"]) == ([], None, "pending order"), point
            assert len(pending) == 1
            assert killed
            issued = here(db, "issue", domain, "--json")
            assert (issued["new_order"], issued["version"]) == (False, 1)  # resumed, once
            shown = sound(db, postgres, domain)
            store = db.open()
            try:
                versions, live, pending = (
                    store.versions(domain),
                    store.live_version(domain),
                    store.pending_key_ids(domain),
                )
            finally:
                store.close()
        # fully updated: one version, live, the order's key gone
        assert (versions, live, pending) == ([1], 1, []), point
        assert shown["live_version"] == 1 and shown["state"] == "valid"

    assert kill_each_step(setup, command, check) >= len(POINTS) - 1  # pending-key: not in issue


def test_kill_at_each_step_of_renewal(
    db: Certctl, pebble: PebbleServer, postgres: PostgresServer
) -> None:
    made: list[str] = []  # a database per attempt: renew-due renews all that is due

    def setup() -> tuple[Certctl, str, str]:
        made.append(database_name("pg_crash_renewal"))
        url = postgres.create_database(made[-1])
        runner = Certctl(db.store, pebble, location=url, key_file=db.key_file)
        domain = unique("pkr")
        first = here(runner, "obtain", "-d", domain, *standalone(pebble), "--json")
        make_due(runner, domain)
        return runner, domain, first["serial"]

    def command(state: tuple[Certctl, str, str], point: str) -> Any:
        return state[0].run("renew-due", extra_env={"CERTCTL_TEST_FAULT": point})

    def check(state: tuple[Certctl, str, str], point: str, killed: bool) -> None:
        runner, domain, old = state
        shown = sound(runner, postgres, domain)
        serial = shown["certificate"]["serial"]
        store = runner.open()
        try:
            versions = store.versions(domain)
        finally:
            store.close()
        if serial == old:  # as it was: the old certificate live, no new version
            assert killed and (versions, shown["live_version"]) == ([1], 1), point
            (entry,) = here(runner, "renew-due", "--json")["certificates"]
            assert entry["action"] == "renewed", point
            shown = sound(runner, postgres, domain)
            store = runner.open()
            try:
                versions = store.versions(domain)
            finally:
                store.close()
        assert (versions, shown["live_version"]) == ([1, 2], 2), point  # renewed once
        assert shown["certificate"]["serial"] != old

    try:
        assert kill_each_step(setup, command, check) >= len(POINTS)
    finally:
        for name in made:
            postgres.drop_database(name)


def test_kill_at_each_step_of_upload(db: Certctl, postgres: PostgresServer, tmp_path: Path) -> None:
    counter = iter(range(1000))

    def bundle(name: str) -> tuple[Path, str]:
        leaf = make_leaf(name)
        path = tmp_path / f"{name}-{next(counter)}.pem"
        path.write_bytes(leaf.bundle_pem())
        return path, serial_hex(leaf.cert.serial_number)

    for replace in (False, True):

        def setup(replace: bool = replace) -> tuple[str, str | None, Path, str]:
            name = f"up{next(counter)}.example.com"
            old = None
            if replace:
                first, old = bundle(name)
                here(db, "upload", name, "--bundle", str(first))
            new, serial = bundle(name)
            return name, old, new, serial

        def command(state: tuple[str, str | None, Path, str], point: str) -> Any:
            name, old, new, _ = state
            args = ["upload", name, "--bundle", str(new)] + (["--replace"] if old else [])
            return db.run(*args, extra_env={"CERTCTL_TEST_FAULT": point})

        def check(state: tuple[str, str | None, Path, str], point: str, killed: bool) -> None:
            name, old, new, serial = state
            shown = sound(db, postgres, name)
            live = shown.get("certificate") and shown["certificate"]["serial"]
            assert live in (old, serial), point
            if live != serial:  # as it was
                assert killed
                args = ["upload", name, "--bundle", str(new)] + (["--replace"] if old else [])
                here(db, *args)
                shown = sound(db, postgres, name)
            assert shown["certificate"]["serial"] == serial, point
            assert shown["live_version"] == (2 if old else 1), point
            assert [v["version"] for v in shown["versions"]] == ([1, 2] if old else [1])

        assert kill_each_step(setup, command, check) >= 4
