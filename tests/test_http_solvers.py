"""HTTP-01 solvers under hostile conditions: slow clients on the standalone server, and a
webroot whose directories are swapped for symlinks while certctl writes and removes files."""

from __future__ import annotations

import ctypes
import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certctl.challenges import http as http_solvers
from certctl.errors import CertctlError
from certctl.models import Challenge


def challenge(token: str, validation: str | None = None) -> Challenge:
    return Challenge(
        "example.test", "https://ca/authz", "https://ca/chall", "http-01", token,
        validation or f"{token}.thumbprint",
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True when the server closes `sock` (recv returns b'' or resets) within `within` s."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Challenge]]:
    monkeypatch.setattr(http_solvers, "READ_TIMEOUT", 0.5)
    monkeypatch.setattr(http_solvers, "REQUEST_DEADLINE", 1.5)
    port = free_port()
    solver = http_solvers.StandaloneSolver(port, address="127.0.0.1")
    token = challenge("tok-slow")
    solver.present([token])
    try:
        yield port, token
    finally:
        solver.cleanup([token])


def get(port: int, token: Challenge) -> tuple[int, bytes, float]:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        connection.request("GET", token.record_name, headers={"Host": token.domain})
        response = connection.getresponse()
        return response.status, response.read(), time.monotonic() - started
    finally:
        connection.close()


def test_idle_client_does_not_stall_the_standalone_server(served: tuple[int, Challenge]) -> None:
    port, token = served
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        status, body, elapsed = get(port, token)
        assert (status, body) == (200, token.validation.encode())
        assert elapsed < 1.0
        # and the server hangs up on the silent clients after its read timeout
        assert all(closed_by_peer(sock, within=2.0) for sock in idle)
    finally:
        for sock in idle:
            sock.close()


def test_dribbling_client_is_cut_off_at_the_request_deadline(
    served: tuple[int, Challenge],
) -> None:
    port, token = served
    request = f"GET {token.record_name} HTTP/1.1\r\nHost: example.test\r\n".encode()
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        started, cut = time.monotonic(), False
        for byte in request * 10:  # a byte every 0.1 s: each read is well inside READ_TIMEOUT
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                cut = True
                break
            if closed_by_peer(sock, within=0.1):
                cut = True
                break
            assert time.monotonic() - started < 5.0
        assert cut
        assert time.monotonic() - started < 3.0  # REQUEST_DEADLINE is 1.5 s here
        status, body, elapsed = get(port, token)
        assert (status, body) == (200, token.validation.encode()) and elapsed < 1.0
    finally:
        sock.close()


# ---- webroot: a component swapped for a symlink between check and use ---------------------


_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(a: Path, b: Path) -> None:
    """Swap two names in one step (renameat2 RENAME_EXCHANGE), as an attacker would."""
    if _libc.renameat2(_AT_FDCWD, bytes(a), _AT_FDCWD, bytes(b), _RENAME_EXCHANGE) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(a))


class Swapper(threading.Thread):
    """Swaps `path` between the real directory and a symlink to `outside`, as fast as it can.

    Each swap exchanges the two names atomically, so `path` never goes missing (a
    missing component would only make the solver create a fresh directory there).
    """

    def __init__(self, path: Path, outside: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.outside = path, outside
        self.link = path.with_name(path.name + ".link")
        os.symlink(outside, self.link)
        self.stop = threading.Event()
        self.swaps = 0

    def run(self) -> None:
        while not self.stop.is_set():
            exchange(self.path, self.link)  # now a symlink to outside
            self.swaps += 1
            time.sleep(0)  # let the solver run into it
            exchange(self.path, self.link)  # the real directory again

    def restore(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        if self.path.is_symlink():
            exchange(self.path, self.link)
        os.unlink(self.link)


CLEAR_REASONS = (
    "is a symlink or not a directory",  # the swap was seen while walking
    "something else is changing the webroot",  # the held directory was replaced meanwhile
)


def files_below(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


@pytest.mark.parametrize("swapped", [".well-known/acme-challenge", ".well-known"])
def test_webroot_swapped_for_a_symlink_never_writes_or_deletes_outside(
    tmp_path: Path, swapped: str
) -> None:
    webroot, outside = tmp_path / "www", tmp_path / "outside"
    (webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    (outside / "acme-challenge").mkdir(parents=True)
    victims = {f"victim-{i}" for i in range(200)}
    for victim in victims:  # files named as the tokens of the victims below: never deleted
        (outside / victim).write_text("keep")
        (outside / "acme-challenge" / victim).write_text("keep")
    before = files_below(outside)
    swapper = Swapper(webroot / swapped, outside)
    swapper.start()
    refused = 0
    try:
        for i in range(200):
            solver = http_solvers.WebrootSolver(str(webroot))
            batch = [challenge(f"victim-{i}"), challenge(f"fresh-{i}")]
            try:
                solver.present(batch)
            except CertctlError as e:
                refused += 1
                assert any(reason in str(e) for reason in CLEAR_REASONS), str(e)
            finally:
                solver.cleanup(batch)
            assert files_below(outside) == before, f"iteration {i}: outside was changed"
    finally:
        swapper.restore()
    assert swapper.swaps > 50 and refused > 0  # the race was really run
    assert files_below(outside) == before
    assert files_below(webroot) == {}  # and everything certctl created inside was removed


def test_webroot_cleanup_after_the_path_was_relinked_removes_only_its_own_files(
    tmp_path: Path,
) -> None:
    webroot, outside = tmp_path / "www", tmp_path / "outside"
    challenge_dir = webroot / ".well-known" / "acme-challenge"
    challenge_dir.mkdir(parents=True)
    outside.mkdir()
    (outside / "tok-1").write_text("keep")
    solver = http_solvers.WebrootSolver(str(webroot))
    solver.present([challenge("tok-1")])
    assert (challenge_dir / "tok-1").read_text() == "tok-1.thumbprint"
    os.rename(challenge_dir, webroot / "parked")
    challenge_dir.symlink_to(outside)  # between present and cleanup
    solver.cleanup([challenge("tok-1")])
    assert (outside / "tok-1").read_text() == "keep"
    assert list((webroot / "parked").iterdir()) == []  # its own file, where it really is
    with pytest.raises(CertctlError, match="is a symlink or not a directory"):
        http_solvers.WebrootSolver(str(webroot)).present([challenge("tok-2")])
    assert sorted(p.name for p in outside.iterdir()) == ["tok-1"]
