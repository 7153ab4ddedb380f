"""Small TLS servers on loopback for probe tests: one serving a chosen chain, one silent.

with TlsServer(fullchain_pem, key_pem) as server:    # sends exactly fullchain_pem
    ... server.port ...
with SilentServer() as server:                        # accepts, never answers
    ...
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
from pathlib import Path
from types import TracebackType


class TlsServer:
    """Accepts TLS connections on 127.0.0.1 and completes the handshake with `chain_pem`."""

    def __init__(self, chain_pem: bytes, key_pem: bytes) -> None:
        self._dir = tempfile.TemporaryDirectory()
        cert, key = Path(self._dir.name) / "chain.pem", Path(self._dir.name) / "key.pem"
        cert.write_bytes(chain_pem)
        key.write_bytes(key_pem)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.server_names: list[str | None] = []
        self.context.sni_callback = self._sni
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _sni(self, sslobj: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        self.server_names.append(name)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    pass
            except OSError:
                pass
            finally:
                conn.close()

    def __enter__(self) -> TlsServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        self._dir.cleanup()


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never says a word (a hung server)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        self.sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.held:
            conn.close()
        self.sock.close()


class StartTlsServer(TlsServer):
    """A plain-text dialogue (`script`: lines to send, each with what to expect back), then TLS."""

    def __init__(self, chain_pem: bytes, key_pem: bytes, script: list[tuple[str, str]]) -> None:
        super().__init__(chain_pem, key_pem)
        self.script = script  # (line we send, prefix of the line we then expect; "" = none)
        self.heard: list[str] = []

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                reader = conn.makefile("rb")
                for send, expect in self.script:
                    conn.sendall(send.encode() + b"\r\n")
                    if expect:
                        line = reader.readline().decode().rstrip("\r\n")
                        self.heard.append(line)
                        if not line.startswith(expect):
                            break
                else:
                    with self.context.wrap_socket(conn, server_side=True):
                        pass
            except OSError:
                pass
            finally:
                conn.close()
