"""HTTP-01 solvers under hostile conditions: slow clients on the standalone server, and a
webroot whose directories are swapped for symlinks while certctl writes and removes files."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator

import pytest

from certctl.challenges import http as http_solvers
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
