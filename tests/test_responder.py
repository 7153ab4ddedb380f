"""`serve-challenges` (challenges/responder.py) over real sockets: only published tokens."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certctl.challenges import responder
from certctl.challenges.responder import ChallengeServer
from certctl.store.opening import open_store

TOKEN = "tok-" + "A" * 40


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, object]]:
    store = open_store(str(tmp_path / "store"))
    store.ensure()
    store.publish_challenge(TOKEN, b"tok.thumbprint")
    server = ChallengeServer(("127.0.0.1", 0), store)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1], store
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def test_a_published_token_is_answered_and_nothing_else(served: tuple[int, object]) -> None:
    port, store = served
    assert get(port, f"/.well-known/acme-challenge/{TOKEN}") == (200, b"tok.thumbprint")
    assert get(port, f"/.well-known/acme-challenge/{TOKEN}", "HEAD")[0] == 200
    assert get(port, "/.well-known/acme-challenge/" + "B" * 43)[0] == 404
    assert get(port, "/.well-known/acme-challenge/../certctl-store.toml")[0] == 404
    assert get(port, "/")[0] == 404
    assert get(port, f"/.well-known/acme-challenge/{TOKEN}", "POST")[0] == 405
    store.withdraw_challenge(TOKEN)  # type: ignore[attr-defined]
    assert get(port, f"/.well-known/acme-challenge/{TOKEN}")[0] == 404


def test_a_client_that_sends_nothing_is_cut_off(
    served: tuple[int, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _ = served
    monkeypatch.setattr(responder._Handler, "timeout", 0.5)
    silent = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    silent.settimeout(5)
    assert silent.recv(100) == b""  # closed by the server, not by our timeout
    assert time.monotonic() - started < 4
    silent.close()
    assert get(port, f"/.well-known/acme-challenge/{TOKEN}")[0] == 200  # still serving


def test_an_oversized_request_line_is_refused(served: tuple[int, object]) -> None:
    port, _ = served
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n")
        reply = sock.recv(100)
    assert reply.startswith(b"HTTP/1.0 414") or reply.startswith(b"HTTP/1.1 414")
