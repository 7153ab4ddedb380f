"""Shared fixtures: a real Pebble CA, a store, and helpers to run certctl."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from certctl.cli import cli

from pebble import PebbleServer, require_pebble
from postgres import CLIENT_ENV, PostgresServer, database_name, require_postgres

CERTCTL = [sys.executable, "-m", "certctl"]

pytest_plugins = ("pebblewatch",)


def unique(label: str = "t") -> str:
    """A domain no other test uses (Pebble keeps authorizations per account)."""
    return f"{label}-{uuid.uuid4().hex[:10]}.example.com"


def standalone(pebble: PebbleServer) -> list[str]:
    """Options for HTTP-01 with certctl's own server on Pebble's validation port."""
    return ["--standalone", "--http-port", str(pebble.http_port), "--agree-tos"]


@contextmanager
def _serving(port: int, handler: Any) -> Iterator[None]:
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serve_directory(directory: Path, port: int) -> Any:
    """A plain web server for `directory` on 127.0.0.1:port, like nginx on a webroot."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    return _serving(port, handler)


def serve_text(port: int, body: bytes) -> Any:
    """A web server answering every GET with `body` (a misconfigured or decoy server)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return _serving(port, Handler)


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleServer]:
    """One Pebble (5% bad nonces, as by default) for the whole session."""
    require_pebble()
    server = PebbleServer(tmp_path_factory.mktemp("pebble"), nonce_reject=5)
    with server:
        yield server


def own_pebble() -> Any:
    """A module-scoped `pebble` fixture: `pebble = own_pebble()` in a test module.

    For modules that send many hosts at once at one CA, which is where Pebble has
    deadlocked (see the watchdog below): a wedge there can't reach the session's accounts
    and orders, and the session's Pebble isn't shared with their load.
    """

    @pytest.fixture(scope="module")
    def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleServer]:
        require_pebble()
        with PebbleServer(tmp_path_factory.mktemp("pebble")) as server:
            yield server

    return pebble


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server (tests/postgres.py) for the whole session."""
    with PostgresServer(require_postgres()) as server:
        yield server


@pytest.fixture
def pg_url(
    postgres: PostgresServer, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh empty database (dropped afterwards) as certctl's URL; PGPASSFILE set for it."""
    for name in CLIENT_ENV:  # the caller's libpq settings must not leak into the test
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(postgres.passfile))
    dbname = database_name(request.node.name)
    url = postgres.create_database(dbname)
    yield url
    postgres.drop_database(dbname)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A fresh store directory path (not yet created)."""
    return tmp_path / "store"


BACKENDS = ("filesystem", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test using the `certctl` fixture runs on both store backends.

    `@pytest.mark.filesystem_only` keeps a test about the store's files (modes, the
    live symlink, fault points between file writes) on the filesystem alone.
    """
    if "backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("filesystem_only")
        metafunc.parametrize("backend", BACKENDS[:1] if only else BACKENDS, scope="function")


def wait_stopped(proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Until `proc` has stopped itself at its pause point (CERTCTL_TEST_FAULT=pause:...).

    A process that exits instead, or is still running at the deadline, fails the test at
    once with what it printed (it is killed in the second case).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        if state == "Z" or proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(
                f"certctl exited {proc.returncode} instead of pausing\nstdout: {out}\nstderr: {err}"
            )
        time.sleep(0.05)
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(
        f"certctl did not reach its pause point in {timeout:.0f}s\nstdout: {out}\nstderr: {err}"
    )


class Certctl:
    """Runs certctl against one store and one Pebble, in-process or as a subprocess.

    `location` is what CERTCTL_STORE gets: the directory `store` (filesystem backend)
    or a postgresql:// URL with `key_file` as its store key. Tests look into the store
    through the store contract (`open()`, `live()`), never by path, so they hold on
    both backends.
    """

    def __init__(
        self,
        store: Path,
        pebble: PebbleServer | None,
        location: str | None = None,
        key_file: Path | None = None,
    ) -> None:
        self.store = store
        self.pebble = pebble
        self.location = location or str(store)
        self.key_file = key_file

    @property
    def backend(self) -> str:
        """ "postgresql" or "filesystem"."""
        return "postgresql" if self.location.startswith("postgresql://") else "filesystem"

    def open(self) -> Any:
        """The store as certctl opens it (the contract: store/contract.py); close it after."""
        from certctl.store.opening import open_store

        return open_store(self.location, warn=lambda message: None, key_file=self.key_file)

    def live(self, name: str) -> dict[str, bytes]:
        """The live PEM files (cert.pem, chain.pem, fullchain.pem, privkey.pem) of `name`."""
        backend = self.open()
        try:
            files = backend.read_live(name)
        finally:
            backend.close()
        assert files is not None, f"{name} has no live version"
        return dict(files)

    def env(self) -> dict[str, str]:
        """Environment pointing certctl at the store and the test CA."""
        env = {
            "CERTCTL_STORE": self.location,
            "CERTCTL_CONFIG": os.devnull,
            "NO_COLOR": "1",
        }
        if self.key_file is not None:
            env["CERTCTL_STORE_KEY_FILE"] = str(self.key_file)
        if self.pebble is not None:
            env.update(
                CERTCTL_SERVER=self.pebble.directory_url,
                CERTCTL_CA_BUNDLE=str(self.pebble.ca_bundle),
                CERTCTL_RESOLVER=self.pebble.dns_address,
                CERTCTL_CHECK_HTTP_PORT=str(self.pebble.http_port),
                CERTCTL_CHECK_TLS_PORT=str(self.pebble.tls_port),
            )
        return env

    def invoke(self, *args: str, input: str | None = None) -> Result:
        """Run in-process through click's CliRunner (the real entry point)."""
        runner = CliRunner()
        return runner.invoke(cli, list(args), env=self.env(), input=input, catch_exceptions=False)

    def run(
        self, *args: str, check: bool = False, extra_env: dict[str, str] | None = None, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run as a real subprocess, stdin closed (as cron does)."""
        env = {**os.environ, **self.env(), **(extra_env or {})}
        env.pop("CERTCTL_DEBUG", None)
        proc = subprocess.run(
            [*CERTCTL, *args],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=kw.pop("timeout", 120),
            **kw,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"certctl {args} exited {proc.returncode}: {proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        """Run a subprocess with --json and parse stdout."""
        proc = self.run(*args, "--json", check=True)
        return json.loads(proc.stdout)


def store_key(directory: Path) -> Path:
    """A new store key file (0600) in `directory`."""
    from certctl.store.sealing import generate_key_file

    path = directory / "store.key"
    generate_key_file(path)
    return path


@pytest.fixture
def certctl(
    store: Path, pebble: PebbleServer, backend: str, request: pytest.FixtureRequest
) -> Certctl:
    """certctl wired to a fresh store (each backend in turn) and the session's Pebble."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        return Certctl(store, pebble, location=url, key_file=store_key(store.parent))
    return Certctl(store, pebble)


@pytest.fixture
def offline(store: Path, backend: str, request: pytest.FixtureRequest) -> Certctl:
    """certctl with a fresh store (each backend in turn) and no CA (commands that need none)."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        return Certctl(store, None, location=url, key_file=store_key(store.parent))
    return Certctl(store, None)


def make_due_by_ari(certctl: Certctl, name: str) -> None:
    """Make the live certificate due by the CA's renewal window (as last fetched): begun.

    Unlike make_due, a renewal ends it: the new certificate is not due, so a second run
    that comes after the first renewal has nothing to do (what "renewed once" needs).
    """
    store = certctl.open()
    try:
        with store.lock(name):
            record = store.read(name)
            assert record.current is not None
            start = record.current.not_before + timedelta(seconds=1)
            record.renewal.update(
                ari_start=start,
                ari_pick=start,
                ari_end=datetime.now(UTC) + timedelta(days=1),
                ari_next_check=datetime.now(UTC) + timedelta(days=1),
            )
            store.write(record)
    finally:
        store.close()


def make_due(store: Path | Certctl, name: str, days: float = 1000) -> None:
    """Make a certificate due now: renew when `days` (beyond its lifetime) are left.

    Written to the store directly (a directory, or the store of a Certctl runner on
    either backend): `certctl set` refuses a renewal point that makes a fresh
    certificate due at once (every renew-due run would renew it).
    """
    from certctl.store import Store

    backend = store.open() if isinstance(store, Certctl) else Store(store)
    try:
        with backend.lock(name):
            record = backend.read(name)
            record.renew_before_days = days
            backend.write(record)
    finally:
        backend.close()
