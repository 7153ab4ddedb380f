"""Run a throwaway PostgreSQL server on a free loopback port for the store tests."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pytest

from pebble import _tail, free_port

if TYPE_CHECKING:  # psycopg is imported lazily: conftest must load without it
    import psycopg
    from psycopg import sql

DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"
TOOLS = ("initdb", "postgres", "pg_dump")
OS_USER = "postgres"  # runs the server when the suite runs as root (initdb refuses root)
SUPERUSER = "postgres"
ROLE = "certctl"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 3
_POLL_INTERVAL = 0.05
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# PG* variables of the caller would change where the server's tools connect
CLIENT_ENV = (
    "PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGPASSFILE",
    "PGSERVICE", "PGSERVICEFILE", "PGSSLMODE", "PGOPTIONS", "PGCONNECT_TIMEOUT",
)  # fmt: skip


class PostgresError(RuntimeError):
    """initdb or the server failed, or the server did not come up in time."""


@dataclass(frozen=True)
class Binaries:
    """One PostgreSQL installation's server tools, all from the same bin directory."""

    bindir: Path

    @property
    def initdb(self) -> str:
        return str(self.bindir / "initdb")

    @property
    def postgres(self) -> str:
        return str(self.bindir / "postgres")

    @property
    def pg_dump(self) -> str:
        return str(self.bindir / "pg_dump")


def _version_key(bindir: str) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<version>/bin: newest version last."""
    return tuple(int(n) for n in re.findall(r"\d+", Path(bindir).parent.name))


def find_binaries() -> Binaries | None:
    """The server tools: initdb's directory on PATH, else Debian's newest /usr/lib/postgresql."""
    candidates = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    candidates += sorted(glob.glob(DEBIAN_GLOB), key=_version_key, reverse=True)
    for bindir in candidates:
        if all(os.access(os.path.join(bindir, t), os.X_OK) for t in TOOLS):
            return Binaries(Path(bindir))
    return None


def _die_with_parent() -> None:
    """In the child: a fast shutdown (SIGINT) when the test run dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def require_postgres() -> Binaries:
    """The server tools (with psycopg importable), or skip (fail when CI=true) if missing."""
    found = find_binaries()
    problems = []
    if found is None:
        problems.append(f"PostgreSQL server ({'/'.join(TOOLS)}) not installed (Debian: postgresql)")
    if _running_as_root():
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            problems.append(f"no `{OS_USER}` OS user to run the server as (Debian: postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        problems.append("psycopg not installed (pip install 'psycopg[binary]>=3.1')")
    if not problems:
        assert found is not None
        return found
    message = "; ".join(problems)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must run scripts/setup.sh first", pytrace=False)
    pytest.skip(
        f"{message}; run `sudo scripts/setup.sh` to enable the PostgreSQL tests",
        allow_module_level=True,  # a test module may call it before importing psycopg
    )


def database_name(test_id: str) -> str:
    """A valid, unique database name derived from a test id (`test_x[a-b]` → `test_x_a_b_1f2e…`)."""
    stem = re.sub(r"[^a-z0-9]+", "_", test_id.lower()).strip("_")[:40] or "t"
    if not stem[0].isalpha():
        stem = "t_" + stem
    return f"{stem}_{uuid.uuid4().hex[:8]}"


class PostgresServer:
    """A `postgres` on 127.0.0.1 on a free port; data, socket and logs in a fresh temp dir.

    TCP clients authenticate with scram-sha-256 (the login role `certctl`, its password in
    `passfile`); the superuser `postgres` connects over the unix socket in the temp dir (trust),
    which only the server's OS user (and root) can reach.
    """

    host = "127.0.0.1"
    user = ROLE

    def __init__(self, binaries: Binaries | None = None) -> None:
        """Configure (but do not start) the server; `binaries` default to require_postgres()."""
        self.binaries = binaries
        self.password = secrets.token_urlsafe(24)  # no ':' or '\\': safe in a passfile line
        self.port = 0
        self.tmp_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths and addresses ------------------------------------------------------------------

    def _dir(self) -> Path:
        if self.tmp_dir is None:
            raise PostgresError("PostgreSQL server not started")
        return self.tmp_dir

    @property
    def server_dir(self) -> Path:
        """Owned by the server's OS user: the data directory and the socket live here."""
        return self._dir() / "server"

    @property
    def data_dir(self) -> Path:
        return self.server_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.server_dir

    @property
    def passfile(self) -> Path:
        """libpq password file (0600) with the `certctl` role's password: set it as PGPASSFILE."""
        return self._dir() / "pgpass"

    @property
    def log_path(self) -> Path:
        return self._dir() / "postgres.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while it runs."""
        return self._proc.pid if self._proc is not None else None

    def url(self, dbname: str) -> str:
        """`postgresql://certctl@127.0.0.1:PORT/DBNAME` (the password comes from the passfile)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{urllib.parse.quote(dbname)}"

    def superuser_url(self, dbname: str = "postgres") -> str:
        """The superuser over the unix socket (no password needed), for test set-up only."""
        query = urllib.parse.urlencode({"host": str(self.socket_dir), "port": self.port})
        return f"postgresql://{SUPERUSER}@/{urllib.parse.quote(dbname)}?{query}"

    # -- life cycle ---------------------------------------------------------------------------

    def _as_server_user(self) -> dict[str, Any]:
        """Popen arguments that run a tool as the server's OS user (as root: `postgres`)."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        kwargs: dict[str, Any] = {"env": env, "cwd": str(self.server_dir)}
        if _running_as_root():
            entry = pwd.getpwnam(OS_USER)
            env["HOME"] = entry.pw_dir
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        return kwargs

    def _initdb(self, binaries: Binaries) -> None:
        top = Path(tempfile.mkdtemp(prefix="certctl-pg-"))
        self.tmp_dir = top
        self.server_dir.mkdir(mode=0o700)
        if _running_as_root():  # the server's user must reach server/, nothing else of ours
            top.chmod(0o711)
            entry = pwd.getpwnam(OS_USER)
            os.chown(self.server_dir, entry.pw_uid, entry.pw_gid)
        proc = subprocess.run(
            [binaries.initdb, "-D", str(self.data_dir), "-U", SUPERUSER, "--no-sync",
             "--no-locale", "--encoding=UTF8", "--auth-local=trust",
             "--auth-host=scram-sha-256"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=120, **self._as_server_user(),
        )  # fmt: skip
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).decode(errors="replace")
            raise PostgresError(f"initdb exited {proc.returncode}:\n{output[-4000:]}")
        # TCP only from loopback and only with a password; the socket (in our dir) trusted
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )

    def start(self) -> PostgresServer:
        """initdb (first start only), start the server, create the `certctl` role; bounded."""
        binaries = self.binaries = self.binaries or require_postgres()
        first = self.tmp_dir is None
        try:
            return self._start(binaries, first)
        except BaseException:
            if first:
                self.stop()  # no half-made server dir left behind
            raise

    def _start(self, binaries: Binaries, first: bool) -> PostgresServer:
        if first:
            self._initdb(binaries)
        fixed_port = bool(self.port)  # a restart keeps the port clients were given
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = self.port if fixed_port else free_port()
            self._launch(binaries)
            atexit.register(self.stop)
            try:
                self._wait_ready()
                break
            except PostgresError:
                self.shutdown()
                in_use = "already in use" in _tail(self.log_path)
                if attempt == START_ATTEMPTS or not in_use or fixed_port:
                    raise
        if first:
            self.sql(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}",
                identifiers=(ROLE,),
                literals=(self.password,),
            )
        self._write_passfile()
        return self

    def _launch(self, binaries: Binaries) -> None:
        settings = {
            "port": str(self.port),
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",  # ten simulated hosts at --parallel 4: ~90
            "shared_buffers": "16MB",
            "logging_collector": "off",
        }
        cmd = [binaries.postgres, "-D", str(self.data_dir)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # runs after the switch to the server's user
                **self._as_server_user(),
            )

    def _wait_ready(self) -> None:
        """Poll until the superuser can run a query over the socket and TCP accepts."""
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise PostgresError(
                    f"postgres exited {self._proc.returncode} during startup:\n"
                    f"{_tail(self.log_path)}"
                )
            try:
                with psycopg.connect(self.superuser_url(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except (psycopg.OperationalError, OSError):
                pass
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"postgres not ready after {START_TIMEOUT:.0f}s:\n{_tail(self.log_path)}"
                )
            time.sleep(_POLL_INTERVAL)

    def _write_passfile(self) -> None:
        line = f"{self.host}:{self.port}:*:{self.user}:{self.password}\n"
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(line)

    def shutdown(self) -> None:
        """Stop the server process by PID (SIGINT: fast shutdown; then SIGKILL); keep the data."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        """Stop the server and remove its temp dir (data, socket, passfile, log)."""
        self.shutdown()
        top, self.tmp_dir = self.tmp_dir, None
        if top is not None:
            shutil.rmtree(top, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- administration (superuser) -------------------------------------------------------------

    def sql(
        self,
        statement: str,
        params: tuple[Any, ...] | None = None,
        *,
        dbname: str = "postgres",
        identifiers: tuple[str, ...] = (),
        literals: tuple[Any, ...] = (),
    ) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser (autocommit) and return its rows.

        `{}` placeholders are filled with the quoted `identifiers`, then `literals` (for
        statements that take no bind parameters, like CREATE ROLE); `%s` take `params`.
        """
        import psycopg
        from psycopg import sql

        parts: list[sql.Composable] = [sql.Identifier(i) for i in identifiers]
        parts += [sql.Literal(v) for v in literals]
        query = sql.SQL(statement).format(*parts) if parts else sql.SQL(statement)
        with psycopg.connect(self.superuser_url(dbname), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def connect(self, dbname: str, **kwargs: Any) -> psycopg.Connection[Any]:
        """A psycopg connection as `certctl` over TCP with the password from the passfile."""
        import psycopg

        return psycopg.connect(self.url(dbname), passfile=str(self.passfile), **kwargs)

    def create_database(self, name: str) -> str:
        """Create an empty database owned by `certctl`; return its URL (no password in it)."""
        self.sql("CREATE DATABASE {} OWNER {}", identifiers=(name, ROLE))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop the database, disconnecting whoever is still connected."""
        self.sql("DROP DATABASE IF EXISTS {} WITH (FORCE)", identifiers=(name,))

    def set_read_only(self, name: str, read_only: bool = True) -> None:
        """Make new sessions on the database read-only (like a replica), or writable again."""
        value = "on" if read_only else "off"
        statement = f"ALTER DATABASE {{}} SET default_transaction_read_only = {value}"
        self.sql(statement, identifiers=(name,))

    def terminate_backends(self, name: str) -> int:
        """pg_terminate_backend every session on the database (a dropped connection); count."""
        rows = self.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        return sum(1 for (done,) in rows if done)

    def pg_dump(self, dbname: str) -> str:
        """Plain-SQL dump of the database (schema and data) by the server's own pg_dump."""
        binaries = self.binaries or require_postgres()
        env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV}
        proc = subprocess.run(
            [binaries.pg_dump, "--no-password", "--dbname", self.superuser_url(dbname)],
            stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=120,
        )  # fmt: skip
        if proc.returncode != 0:
            raise PostgresError(f"pg_dump {dbname} exited {proc.returncode}: {proc.stderr!r}")
        return proc.stdout.decode()

    def log(self) -> str:
        """The server's log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except (FileNotFoundError, PostgresError):
            return ""
