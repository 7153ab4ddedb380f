"""Self-tests for the PostgreSQL harness in tests/postgres.py, against a real server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import postgres as harness
from postgres import PostgresServer, database_name, require_postgres

require_postgres()  # skip the module (fail under CI=true) without a server or psycopg
import psycopg  # noqa: E402


def _table_names(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    return [name for (name,) in rows]


def test_url_and_passfile_connect_as_certctl(postgres: PostgresServer, pg_url: str) -> None:
    """The URL has no password; PGPASSFILE (0600) supplies it; the role is no superuser."""
    assert pg_url.startswith(f"postgresql://certctl@127.0.0.1:{postgres.port}/")
    assert postgres.password not in pg_url
    assert os.environ["PGPASSFILE"] == str(postgres.passfile)
    assert stat.S_IMODE(postgres.passfile.stat().st_mode) == 0o600
    with psycopg.connect(pg_url) as conn:
        user, superuser, address = conn.execute(
            "SELECT current_user, usesuper, inet_server_addr()::text"
            " FROM pg_user WHERE usename = current_user"
        ).fetchone() or (None, None, None)
        conn.execute("CREATE TABLE certificates (name text PRIMARY KEY)")
        conn.execute("INSERT INTO certificates VALUES ('a.example.com')")
    assert (user, superuser, address) == ("certctl", False, "127.0.0.1/32")
    assert _table_names(pg_url) == ["certificates"]


def test_a_subprocess_inherits_pgpassfile(pg_url: str) -> None:
    """certctl run as a subprocess connects with nothing but the URL and the environment."""
    code = "import sys, psycopg; print(psycopg.connect(sys.argv[1]).execute('SELECT 41 + 1')"
    code += ".fetchone()[0])"
    proc = subprocess.run(
        [sys.executable, "-c", code, pg_url], capture_output=True, text=True, timeout=30
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "42"), proc.stderr


def test_wrong_or_missing_password_is_refused(
    postgres: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    """scram-sha-256 on TCP: a wrong password, or none at all, is refused."""
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_url, password="wrong-" + postgres.password, connect_timeout=5)
    empty = tmp_path / "empty-pgpass"
    empty.write_text("")
    empty.chmod(0o600)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(pg_url, passfile=str(empty), connect_timeout=5)


def test_two_databases_are_separate(postgres: PostgresServer, pg_url: str) -> None:
    """A second database of the same server does not see the first one's tables."""
    other = database_name("other")
    other_url = postgres.create_database(other)
    try:
        with psycopg.connect(pg_url) as conn:
            conn.execute("CREATE TABLE only_here (x int)")
        assert other_url != pg_url
        assert _table_names(other_url) == []
        assert _table_names(pg_url) == ["only_here"]
    finally:
        postgres.drop_database(other)
    assert postgres.sql("SELECT 1 FROM pg_database WHERE datname = %s", (other,)) == []


def test_read_only_switch(postgres: PostgresServer, pg_url: str) -> None:
    """set_read_only makes new sessions refuse writes (a replica); False undoes it."""
    dbname = pg_url.rsplit("/", 1)[1]
    postgres.set_read_only(dbname)
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("CREATE TABLE t (x int)")
    postgres.set_read_only(dbname, False)
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE t (x int)")
    assert _table_names(pg_url) == ["t"]


def test_terminate_backends_drops_a_connection(postgres: PostgresServer, pg_url: str) -> None:
    """terminate_backends ends a client's session mid-transaction; its work is rolled back."""
    dbname = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE t (x int)")
    conn = psycopg.connect(pg_url)
    try:
        conn.execute("INSERT INTO t VALUES (1)")  # transaction open, not committed
        assert postgres.terminate_backends(dbname) == 1
        with pytest.raises(psycopg.OperationalError):
            conn.execute("INSERT INTO t VALUES (2)")
    finally:
        conn.close()
    with psycopg.connect(pg_url) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_pg_dump_contains_the_table(postgres: PostgresServer, pg_url: str) -> None:
    """pg_dump (the server's own version) returns the schema and the rows."""
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE dumped_things (name text)")
        conn.execute("INSERT INTO dumped_things VALUES ('marker-7f3a')")
    dump = postgres.pg_dump(pg_url.rsplit("/", 1)[1])
    assert "CREATE TABLE public.dumped_things" in dump
    assert "marker-7f3a" in dump


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as listener:  # REUSEADDR: only a listener, not TIME_WAIT, blocks it
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _process_exists(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def test_own_server_restarts_and_stop_leaves_nothing() -> None:
    """A second server: data survives shutdown+start; stop ends its PID, frees port and dir."""
    server = PostgresServer(require_postgres())
    with server:
        pid, port, tmp_dir = server.pid, server.port, server.tmp_dir
        assert pid is not None and tmp_dir is not None and _process_exists(pid)
        assert not _port_is_free(port)
        if os.geteuid() == 0:  # initdb and postgres refuse root: run as the postgres user
            assert Path(f"/proc/{pid}").stat().st_uid != 0
            assert server.data_dir.stat().st_uid != 0
        url = server.create_database("kept")
        with server.connect("kept") as conn:
            conn.execute("CREATE TABLE survives (x int)")

        server.shutdown()
        assert not _process_exists(pid) and _port_is_free(port)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, passfile=str(server.passfile), connect_timeout=2)
        server.start()
        assert server.port == port and server.pid != pid
        with server.connect("kept") as conn:
            assert conn.execute("SELECT to_regclass('survives')::text").fetchone() == ("survives",)
        pid = server.pid
        assert pid is not None
    assert server.pid is None
    assert not _process_exists(pid)
    assert _port_is_free(port)
    assert not tmp_dir.exists()


def test_a_killed_test_run_leaves_no_server_behind(tmp_path: Path) -> None:
    """The server gets SIGINT when the process that started it dies, even by SIGKILL."""
    code = (
        "import sys, time\nsys.path.insert(0, sys.argv[1])\n"
        "from postgres import PostgresServer\n"
        "server = PostgresServer().start()\n"
        "print(server.pid, server.tmp_dir, flush=True)\ntime.sleep(120)\n"
    )
    runner = subprocess.Popen(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert runner.stdout is not None
        pid_text, tmp_dir = runner.stdout.readline().split()
    finally:
        runner.kill()
        runner.wait()
    pid = int(pid_text)
    deadline = time.monotonic() + 10
    while _process_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _process_exists(pid)
    if alive:  # do not leave it running when the test fails
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(tmp_dir, ignore_errors=True)  # atexit never ran in the killed process
    assert not alive


def test_missing_server_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the server tools: a skip naming the Debian package; under CI=true a failure."""
    monkeypatch.setattr(harness, "DEBIAN_GLOB", "/nonexistent/*/bin")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian: postgresql"):
        harness.require_postgres()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI must run scripts/setup\.sh"):
        harness.require_postgres()


def test_database_names_from_test_ids_are_valid_and_unique(postgres: PostgresServer) -> None:
    """Any test id (parameters, long names, leading digits) gives a fresh, usable name."""
    test_id = "9_test_" + "x" * 80 + "[postgresql://a-b/c]"
    first, second = database_name(test_id), database_name(test_id)
    assert first != second and len(first.encode()) <= 63 and first[0].isalpha()
    postgres.create_database(first)
    try:
        assert postgres.sql("SELECT datname FROM pg_database WHERE datname = %s", (first,)) == [
            (first,)
        ]
    finally:
        postgres.drop_database(first)
