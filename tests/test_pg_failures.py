"""The PostgreSQL store when things go wrong (issue 13), against real servers.

The database down, unreachable, refusing the password, read-only, the connection
dropped mid-transaction, a password in the URL, psycopg missing, a newer schema, the
wrong store key: each is one line naming the server (never a password) with the
documented exit code (3 when worth retrying), and nothing half written, checked
through the store contract once the server is back. Destructive tests run on a
private server, not the session's. Last: after a full run, `pg_dump` holds no
private key (PEM, base64 or hex) and no EAB or TSIG secret.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certctl.pki.certinfo import serial_hex
from certctl.store.postgres.schema import SCHEMA_VERSION

from bind import DnsLab, dns_lab
from certfactory import make_leaf
from conftest import CERTCTL, Certctl, standalone, store_key, unique, wait_stopped
from pebble import PebbleServer, free_port, require_pebble
from postgres import CLIENT_ENV, PostgresServer, database_name, require_postgres

INSTALL_HINT = "pip install 'certctl[postgresql]'"


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own, to stop, restart and cut off."""
    with PostgresServer(require_postgres()) as server:
        yield server


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)


def runner_on(
    server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str
) -> Certctl:
    """certctl on a fresh database of `server` (PGPASSFILE set for it)."""
    monkeypatch.setenv("PGPASSFILE", str(server.passfile))
    url = server.create_database(database_name(label))
    return Certctl(tmp_path / "unused", None, location=url, key_file=store_key(tmp_path))


def bundle(tmp_path: Path, name: str) -> tuple[Path, str]:
    leaf = make_leaf(name)
    path = tmp_path / f"{name}-{leaf.cert.serial_number}.pem"
    path.write_bytes(leaf.bundle_pem())
    return path, serial_hex(leaf.cert.serial_number)


def upload(runner: Certctl, name: str, path: Path, *extra: str, **kw: Any) -> Any:
    return runner.run("upload", name, "--bundle", str(path), *extra, **kw)


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def server_named(runner: Certctl) -> str:
    """How a message names the store: the URL as given (it carries no password)."""
    return runner.location


def state(runner: Certctl) -> dict[str, Any]:
    """Everything the store holds, through the contract: records, versions, live, pending."""
    store = runner.open()
    try:
        found: dict[str, Any] = {}
        for name in store.names():
            found[name] = (
                store.read(name).to_dict(),
                {v: store.read_version(name, v) for v in store.versions(name)},
                store.live_version(name),
                store.pending_key_ids(name),
            )
        return found
    finally:
        store.close()


def live_serial(runner: Certctl, name: str) -> str:
    shown = runner.json("show", name)
    return shown["certificate"]["serial"]  # type: ignore[no-any-return]


# ---- the server unavailable: exit 3 -------------------------------------------------------


def test_database_down_is_one_line_exit_3_and_nothing_half_written(
    private_pg: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    runner = runner_on(private_pg, tmp_path, monkeypatch, "down")
    first, _ = bundle(tmp_path, "down.example.com")
    assert upload(runner, "down", first).returncode == 0
    before = state(runner)
    second, _ = bundle(tmp_path, "down.example.com")
    private_pg.shutdown()
    try:
        for args in (("list",), ("upload", "down", "--bundle", str(second), "--replace")):
            proc = runner.run(*args)
            assert proc.returncode == 3, (args, proc.stderr)
            line = one_error_line(proc.stderr)
            assert server_named(runner) in line and "retry later" in line, line
            assert private_pg.password not in proc.stderr + proc.stdout
    finally:
        private_pg.start()
    assert state(runner) == before
    assert runner.run("doctor").returncode == 0


def test_server_unreachable_is_one_line_exit_3(
    tmp_path: Path, clean_env: None, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSFILE", str(postgres.passfile))
    url = f"postgresql://certctl@127.0.0.1:{free_port()}/certctl"  # nobody listens there
    runner = Certctl(tmp_path / "unused", None, location=url, key_file=store_key(tmp_path))
    path, _ = bundle(tmp_path, "far.example.com")
    for args in (("list",), ("upload", "far", "--bundle", str(path))):
        proc = runner.run(*args)
        assert proc.returncode == 3, (args, proc.stderr)
        line = one_error_line(proc.stderr)
        assert url in line and "retry later" in line, line


def test_connection_dropped_mid_transaction_writes_nothing(
    private_pg: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    runner = runner_on(private_pg, tmp_path, monkeypatch, "dropped")
    dbname = urllib.parse.urlsplit(runner.location).path.strip("/")
    first, old = bundle(tmp_path, "drop.example.com")
    assert upload(runner, "drop", first).returncode == 0
    before = state(runner)
    second, new = bundle(tmp_path, "drop.example.com")
    env = {**os.environ, **runner.env(), "CERTCTL_TEST_FAULT": "pause:version-privkey.pem"}
    proc = subprocess.Popen(
        [*CERTCTL, "upload", "drop", "--bundle", str(second), "--replace"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_stopped(proc)  # inside the transaction: the new version inserted, no commit
        assert private_pg.terminate_backends(dbname) >= 1
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    line = one_error_line(err)
    assert runner.location in line and "retry later" in line, line
    assert private_pg.password not in out + err
    assert state(runner) == before  # the version, the switch and the record: none of them
    assert live_serial(runner, "drop") == old
    assert upload(runner, "drop", second, "--replace").returncode == 0  # the rerun completes
    assert live_serial(runner, "drop") == new


# ---- refused: exit 1 ----------------------------------------------------------------------


def test_wrong_password_is_one_line_exit_1_without_the_password(
    pg_url: str, postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Certctl(tmp_path / "unused", None, location=pg_url, key_file=store_key(tmp_path))
    path, _ = bundle(tmp_path, "pw.example.com")
    wrong = "Wr0ngPassw0rdNotTheRealOne"
    passfile = tmp_path / "wrong.pgpass"
    passfile.write_text(f"{postgres.host}:{postgres.port}:*:{postgres.user}:{wrong}\n")
    passfile.chmod(0o600)
    for args in (("list",), ("upload", "pw", "--bundle", str(path))):
        proc = runner.run(*args, extra_env={"PGPASSFILE": str(passfile)})
        assert proc.returncode == 1, (args, proc.stderr)
        line = one_error_line(proc.stderr)
        assert pg_url in line and "refused the password" in line, line
        assert wrong not in proc.stderr + proc.stdout
        assert postgres.password not in proc.stderr + proc.stdout
    assert state(runner) == {}  # nothing written


def test_read_only_server_is_one_line_exit_1_and_nothing_written(
    pg_url: str, postgres: PostgresServer, tmp_path: Path
) -> None:
    runner = Certctl(tmp_path / "unused", None, location=pg_url, key_file=store_key(tmp_path))
    first, old = bundle(tmp_path, "ro.example.com")
    assert upload(runner, "ro", first).returncode == 0
    before = state(runner)
    second, _ = bundle(tmp_path, "ro.example.com")
    dbname = urllib.parse.urlsplit(pg_url).path.strip("/")
    postgres.set_read_only(dbname)
    try:
        proc = upload(runner, "ro", second, "--replace")
        assert proc.returncode == 1, proc.stderr
        line = one_error_line(proc.stderr)
        assert pg_url in line and "read-only" in line, line
        assert runner.json("list")["certificates"][0]["name"] == "ro"  # reading still works
    finally:
        postgres.set_read_only(dbname, False)
    assert state(runner) == before
    assert live_serial(runner, "ro") == old


# ---- bad input: exit 2 --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://certctl:S3cretInTheUrl@127.0.0.1:5432/certctl",
        "postgresql://certctl@127.0.0.1:5432/certctl?password=S3cretInTheUrl",
    ],
    ids=["userinfo", "query"],
)
@pytest.mark.parametrize("how", ["option", "environment"])
def test_password_in_the_url_is_refused_and_not_echoed(url: str, how: str, tmp_path: Path) -> None:
    runner = Certctl(tmp_path / "unused", None, location=url, key_file=store_key(tmp_path))
    args = ("--store", url, "list") if how == "option" else ("list",)
    proc = runner.run(*args)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    assert "must not carry a password" in line and "PGPASSFILE" in line, line
    assert "S3cretInTheUrl" not in proc.stderr + proc.stdout


def test_psycopg_missing_says_what_to_install(pg_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "no-psycopg"
    blocker.mkdir()
    (blocker / "psycopg.py").write_text('raise ImportError("psycopg is not installed here")\n')
    runner = Certctl(tmp_path / "unused", None, location=pg_url, key_file=store_key(tmp_path))
    path, _ = bundle(tmp_path, "nopg.example.com")
    pythonpath = os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])
    for args in (("list",), ("upload", "nopg", "--bundle", str(path))):
        proc = runner.run(*args, extra_env={"PYTHONPATH": pythonpath})
        assert proc.returncode == 2, (args, proc.stderr)
        line = one_error_line(proc.stderr)
        assert INSTALL_HINT in line and "psycopg" in line, line
    assert state(runner) == {}


def test_schema_newer_than_the_code_is_refused_and_nothing_written(
    pg_url: str, postgres: PostgresServer, tmp_path: Path
) -> None:
    runner = Certctl(tmp_path / "unused", None, location=pg_url, key_file=store_key(tmp_path))
    first, old = bundle(tmp_path, "new.example.com")
    assert upload(runner, "new", first).returncode == 0
    before = state(runner)
    dbname = urllib.parse.urlsplit(pg_url).path.strip("/")
    set_version = "UPDATE certctl_meta SET value = %s WHERE key = 'schema_version'"
    postgres.sql(set_version, ("99",), dbname=dbname)
    second, _ = bundle(tmp_path, "new.example.com")
    other, _ = bundle(tmp_path, "other.example.com")
    try:
        for args in (
            ("upload", "new", "--bundle", str(second), "--replace"),
            ("upload", "other", "--bundle", str(other)),
            ("set", "new", "--deploy-hook", "true"),
            ("list",),
        ):
            proc = runner.run(*args)
            assert proc.returncode == 1, (args, proc.stderr)
            line = one_error_line(proc.stderr)
            assert "schema version 99" in line and "upgrade certctl" in line, line
            assert pg_url in line
        dumped = postgres.sql("SELECT value FROM certctl_meta ORDER BY key", dbname=dbname)
        assert ("99",) in dumped  # not "migrated" back
    finally:
        postgres.sql(set_version, (str(SCHEMA_VERSION),), dbname=dbname)
    assert state(runner) == before
    assert live_serial(runner, "new") == old


def test_wrong_store_key_is_refused_and_nothing_written(pg_url: str, tmp_path: Path) -> None:
    runner = Certctl(tmp_path / "unused", None, location=pg_url, key_file=store_key(tmp_path))
    first, old = bundle(tmp_path, "key.example.com")
    assert upload(runner, "key", first).returncode == 0
    before = state(runner)
    (tmp_path / "other").mkdir()
    wrong = Certctl(runner.store, None, location=pg_url, key_file=store_key(tmp_path / "other"))
    second, _ = bundle(tmp_path, "key.example.com")
    other, _ = bundle(tmp_path, "other.example.com")
    (tmp_path / "out").mkdir()
    for args in (
        ("upload", "key", "--bundle", str(second), "--replace"),
        ("upload", "other", "--bundle", str(other)),
        ("export", "key", "--dir", str(tmp_path / "out")),
    ):
        proc = wrong.run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        line = one_error_line(proc.stderr)
        assert "sealed with store key" in line and "use this store's key file" in line, line
    assert list((tmp_path / "out").iterdir()) == []
    assert state(runner) == before
    assert live_serial(runner, "key") == old


# ---- secrets at rest ----------------------------------------------------------------------

EAB_HMAC = base64.urlsafe_b64encode(os.urandom(48)).decode().rstrip("=")


@pytest.fixture(scope="module")
def eab_pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleServer]:
    """A Pebble requiring External Account Binding (kid-1)."""
    require_pebble()
    with PebbleServer(tmp_path_factory.mktemp("pg-eab"), eab_keys={"kid-1": EAB_HMAC}) as server:
        yield server


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsLab]:
    """BIND accepting TSIG-signed updates, and a Pebble resolving through it."""
    with dns_lab(tmp_path_factory.mktemp("pg-dnslab")) as started:
        yield started


def encodings(secret: bytes) -> list[str]:
    """How a secret could show up in a dump: base64 (both alphabets), hex, each PEM line."""
    b64 = base64.b64encode(secret).decode()
    found = [b64, base64.urlsafe_b64encode(secret).decode().rstrip("="), secret.hex()]
    found += [b64[i : i + 64] for i in range(0, len(b64) - 63, 64)]  # PEM body lines
    return [f for f in found if len(f) >= 16]


def key_secrets(pem: bytes) -> list[str]:
    """The encodings of a private key: its PEM body, its DER."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem, None)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    body = "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))
    return [body, *encodings(der), *encodings(pem)]


@pytest.mark.pebble
def test_pg_dump_after_a_full_run_holds_no_private_key_nor_secret(
    pg_url: str,
    postgres: PostgresServer,
    eab_pebble: PebbleServer,
    lab: DnsLab,
    tmp_path: Path,
) -> None:
    key_file = store_key(tmp_path)
    eab = Certctl(tmp_path / "unused", eab_pebble, location=pg_url, key_file=key_file)
    dns = Certctl(tmp_path / "unused", lab.pebble, location=pg_url, key_file=key_file)
    registered = eab.run(
        *("account", "register", "--agree-tos", "--eab-kid", "kid-1"),
        *("--eab-hmac-key-env", "EAB_KEY"),
        extra_env={"EAB_KEY": EAB_HMAC},
    )
    assert registered.returncode == 0, registered.stderr
    issued, pending = unique("dump"), unique("dumpp")
    eab.json("obtain", "-d", issued, *standalone(eab_pebble))
    eab.json("order", "-d", pending, *standalone(eab_pebble))  # a pending order with its key
    tsig = f"{unique('t').split('.')[0]}.dns1.test"
    by_dns = dns.run(
        *("obtain", "-d", tsig, "--challenge", "dns", "--dns-provider", "rfc2136"),
        *("--dns-server", lab.primary.address, "--tsig-key", lab.key.name),
        *("--tsig-secret-file", str(lab.secret_file), "--dns-nameserver", lab.primary.address),
        "--agree-tos",
        extra_env={"CERTCTL_RESOLVER": lab.resolver.address},
    )
    assert by_dns.returncode == 0, by_dns.stderr
    uploaded, _ = bundle(tmp_path, "dump-upload.example.com")
    assert upload(eab, "uploaded", uploaded).returncode == 0

    secrets: list[str] = [*encodings(base64.urlsafe_b64decode(EAB_HMAC + "==")), EAB_HMAC]
    secrets += [lab.key.secret, *encodings(base64.b64decode(lab.key.secret))]
    store = eab.open()
    keys = 0
    try:
        for name in store.names():
            for version in store.versions(name):
                secrets += key_secrets(store.read_version(name, version)["privkey.pem"])
                keys += 1
            for key_id in store.pending_key_ids(name):
                pem = store.read_pending_key(name, key_id)
                assert pem is not None
                secrets += key_secrets(pem)
                keys += 1
        for server in store.account_servers():
            account = store.read_account(server)
            assert account is not None
            secrets += key_secrets(account[1])
            keys += 1
        assert set(store.names()) == {issued, pending, tsig, "uploaded"}
    finally:
        store.close()
    assert keys >= 6  # 3 certificates, 1 pending order, 2 accounts
    dump = postgres.pg_dump(urllib.parse.urlsplit(pg_url).path.strip("/"))
    assert "certctl_versions" in dump and "certctl_accounts" in dump  # the data is there
    assert "PRIVATE KEY" not in dump
    leaked = [s[:12] + "…" for s in secrets if s in dump]
    assert leaked == []
    assert EAB_HMAC not in dump and lab.key.secret not in dump
