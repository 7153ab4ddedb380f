"""`certctl serve-challenges`: HTTP-01 responses from the shared store, on every host.

Behind a load balancer the CA may reach any host; the renewing host publishes the
responses in the store (FleetSolver) and this small server, run on every host,
answers `GET /.well-known/acme-challenge/<token>` with them. Nothing else is
served: any other path, method or a token not published is 404 (405 for methods
other than GET and HEAD). Requests are bounded (line and header sizes, a socket
timeout, a cap on connections in flight) and store lookups run one at a time on
one thread, so a database store uses one connection however many requests come.
"""

from __future__ import annotations

import http.server
import logging
import threading
from typing import Any

from certctl.store.contract import CertStore

PREFIX = "/.well-known/acme-challenge/"
MAX_CONNECTIONS = 64
SOCKET_TIMEOUT = 10.0  # seconds for a client to send its request
MAX_HEADERS = 32

log = logging.getLogger(__name__)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers challenge paths from the store; everything else is 404."""

    server: ChallengeServer
    timeout = SOCKET_TIMEOUT
    protocol_version = "HTTP/1.0"  # one request per connection: nothing held open
    server_version = "certctl"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _refuse(self) -> None:
        self._send(405, b"method not allowed\n", body=True, allow=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _answer(self, body: bool) -> None:
        if len(self.headers) > MAX_HEADERS:
            self._send(431, b"too many headers\n", body)
            return
        path = self.path.split("?", 1)[0]
        content = None
        if path.startswith(PREFIX):
            content = self.server.lookup(path[len(PREFIX) :])
        if content is None:
            self._send(404, b"not found\n", body)
        else:
            self._send(200, content, body)

    def _send(self, status: int, content: bytes, body: bool, allow: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(content)))
        if allow:
            self.send_header("Allow", "GET, HEAD")
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


class ChallengeServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server with bounded concurrency over one store."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], store: CertStore) -> None:
        import socket

        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        from concurrent.futures import ThreadPoolExecutor

        super().__init__(address, _Handler)
        self.store = store
        # every lookup on one thread: a database store keeps one connection per thread,
        # and request threads come and go (one per connection)
        self._lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookup")
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def lookup(self, token: str) -> bytes | None:
        """The published response for `token` (None when unknown or the store fails)."""
        return self._lookups.submit(self._lookup, token).result()

    def _lookup(self, token: str) -> bytes | None:
        from certctl.errors import CertctlError

        try:
            return self.store.challenge_response(token)
        except CertctlError as e:
            log.warning("challenge lookup failed: %s", e)
            return None

    def server_close(self) -> None:
        """Stop the lookup thread too."""
        super().server_close()
        self._lookups.shutdown(wait=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or went away: one log line, not a traceback on stderr."""
        import sys

        log.info("request from %s failed: %s", client_address[0], sys.exc_info()[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        """Refuse (close) a connection beyond MAX_CONNECTIONS instead of queueing threads."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
