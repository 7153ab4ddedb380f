"""HTTP-01 solvers: certctl's own standalone server, or files in a webroot."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from certctl.errors import BadInput, CertctlError, OperationFailed
from certctl.models import Challenge
from certctl.store.contract import CertStore

PREFIX = "/.well-known/acme-challenge/"
PORT_WAIT = 120.0  # seconds to wait for another certctl's standalone server on the port
# A client that connects and sends nothing, or dribbles a byte at a time (slowloris), must not
# hold a connection: each read waits at most READ_TIMEOUT, a whole request at most REQUEST_DEADLINE.
READ_TIMEOUT = 5.0
REQUEST_DEADLINE = 10.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops SYNs when several clients connect at once
    responses: dict[str, bytes]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "certctl"
    sys_version = ""

    def setup(self) -> None:
        """Bound every connection in time: per read, and for the whole exchange."""
        super().setup()
        self.connection.settimeout(READ_TIMEOUT)  # rfile and wfile read through the socket
        self._deadline = threading.Timer(REQUEST_DEADLINE, self._hang_up)
        self._deadline.daemon = True
        self._deadline.start()

    def _hang_up(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)  # wakes a blocked read

    def finish(self) -> None:
        """Cancel the deadline; a timed-out client's broken pipe is not an error."""
        self._deadline.cancel()
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        token = self.path[len(PREFIX) :] if self.path.startswith(PREFIX) else None
        body = self.server.responses.get(token) if token else None
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request logging."""


class _DualStackServer(_Server):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class _SharedServer:
    """One listening server per port, shared by concurrent renewals in this process."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _by_port: ClassVar[dict[tuple[str, int], _SharedServer]] = {}

    def __init__(self, server: _Server, port_lock: contextlib.ExitStack) -> None:
        self.server = server
        self.port_lock = port_lock
        self.users = 0
        # A short poll interval: shutdown() waits for the loop to notice (socketserver).
        self.thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @classmethod
    def acquire(
        cls, address: str, port: int, responses: dict[str, bytes], store: CertStore | None
    ) -> None:
        with cls._lock:
            shared = cls._by_port.get((address, port))
            if shared is None:
                port_lock = contextlib.ExitStack()
                if store is not None:
                    # another certctl process serving this port: wait for it to finish
                    port_lock.enter_context(store.lock(str(port), what="port", wait=PORT_WAIT))
                try:
                    server = _bind(address, port)
                except BaseException:
                    port_lock.close()
                    raise
                server.responses = {}
                shared = cls._by_port[(address, port)] = _SharedServer(server, port_lock)
            shared.server.responses.update(responses)
            shared.users += 1

    @classmethod
    def release(cls, address: str, port: int, tokens: list[str]) -> None:
        with cls._lock:
            shared = cls._by_port.get((address, port))
            if shared is None:
                return
            for token in tokens:
                shared.server.responses.pop(token, None)
            shared.users -= 1
            if shared.users > 0:
                return
            del cls._by_port[(address, port)]
        shared.server.shutdown()
        shared.server.server_close()
        shared.thread.join(timeout=5)
        shared.port_lock.close()


def _bind(address: str, port: int) -> _Server:
    try:
        if not address and socket.has_ipv6:
            try:
                return _DualStackServer(("::", port), _Handler)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise
        return _Server((address or "0.0.0.0", port), _Handler)  # noqa: S104
    except PermissionError:
        raise BadInput(
            f"cannot listen on port {port}: binding below 1024 needs root or"
            " CAP_NET_BIND_SERVICE; or use --webroot"
        ) from None
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise OperationFailed(
                f"port {port} is in use (a web server?): stop it, or use --webroot DIR"
            ) from None
        raise OperationFailed(f"cannot listen on port {port}: {e.strerror}") from None


class StandaloneSolver:
    """Serve http-01 responses from certctl's own HTTP server on `port` (all addresses)."""

    def __init__(self, port: int, address: str = "", store: CertStore | None = None) -> None:
        self.port = port
        self.address = address
        self.store = store
        self._tokens: list[str] | None = None

    def present(self, challenges: list[Challenge]) -> None:
        """Start (or join) the server for this port with the expected tokens."""
        responses = {c.token: c.validation.encode() for c in challenges if c.type == "http-01"}
        _SharedServer.acquire(self.address, self.port, responses, self.store)
        self._tokens = list(responses)

    def cleanup(self, challenges: list[Challenge]) -> None:
        """Withdraw the tokens; the last user stops the server and frees the port."""
        if self._tokens is not None:
            _SharedServer.release(self.address, self.port, self._tokens)
            self._tokens = None


_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHALLENGE_DIRS = (".well-known", "acme-challenge")


class WebrootSolver:
    """Write each response to <webroot>/.well-known/acme-challenge/<token>; remove it after.

    The path below the webroot is walked with directory file descriptors: each level is
    opened with O_NOFOLLOW | O_DIRECTORY relative to the one above, and files are created
    and removed relative to the held descriptor (`dir_fd=`). A component swapped for a
    symlink between a check and a use is never followed: it is refused with an error.
    The descriptors are held from present() to cleanup(), so cleanup removes exactly the
    files present() created, wherever someone has moved or relinked the path meanwhile.
    """

    def __init__(self, webroot: str) -> None:
        self.webroot = Path(webroot)
        self._fds: list[int] = []  # webroot, .well-known, acme-challenge
        self._created_dirs: list[int] = []  # levels (1, 2) that present() created
        self._created_files: list[str] = []

    def _challenge_dir(self) -> int:
        """The held descriptor of acme-challenge, opening (and creating) the levels first."""
        if len(self._fds) == 1 + len(_CHALLENGE_DIRS):
            return self._fds[-1]
        self.cleanup([])  # a walk that failed half-way: start again from the webroot
        try:
            # the webroot itself is the user's choice: a symlink there is followed
            self._fds.append(os.open(self.webroot, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError:
            raise BadInput(f"webroot {self.webroot} is not a directory: check --webroot") from None
        for level, part in enumerate(_CHALLENGE_DIRS, start=1):
            self._fds.append(self._open_level(level, part))
        return self._fds[-1]

    def _open_level(self, level: int, part: str) -> int:
        parent = self._fds[-1]
        shown = self.webroot.joinpath(*_CHALLENGE_DIRS[:level])
        for _ in range(2):
            try:
                return os.open(part, _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                try:
                    os.mkdir(part, 0o755, dir_fd=parent)
                except FileExistsError:
                    continue  # someone else made it meanwhile: open what is there now
                except OSError as e:
                    if e.errno == errno.ENOENT:  # the held parent was removed or replaced
                        raise self._not_a_directory(shown, e) from None
                    raise OperationFailed(f"cannot create {shown}: {e.strerror}") from None
                fd = self._open_created(part, parent, shown)
                self._created_dirs.append(level)
                return fd
            except OSError as e:
                raise self._not_a_directory(shown, e) from None
        raise OperationFailed(f"{shown} keeps changing: something else is changing the webroot")

    def _open_created(self, part: str, parent: int, shown: Path) -> int:
        try:
            fd = os.open(part, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:  # swapped between mkdir and open
            raise self._not_a_directory(shown, e) from None
        os.fchmod(fd, 0o755)
        return fd

    @staticmethod
    def _not_a_directory(shown: Path, error: OSError) -> CertctlError:
        if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            return BadInput(
                f"{shown} is a symlink or not a directory: certctl writes only inside the"
                " webroot; replace it with a directory"
            )
        if error.errno == errno.ENOENT:
            return OperationFailed(
                f"{shown} was removed or replaced while certctl opened it; something else is"
                " changing the webroot"
            )
        return OperationFailed(f"cannot open {shown}: {error.strerror}")

    def check(self) -> None:
        """Before an order is placed: the webroot must exist."""
        if not self.webroot.is_dir():
            raise BadInput(f"webroot {self.webroot} is not a directory: check --webroot")

    def present(self, challenges: list[Challenge]) -> None:
        """Write the response files (world-readable: the web server must serve them)."""
        directory = self._challenge_dir()
        for challenge in challenges:
            shown = self.webroot.joinpath(*_CHALLENGE_DIRS, challenge.token)
            if not _TOKEN.fullmatch(challenge.token):  # RFC 8555 §8.3: base64url
                raise OperationFailed(f"the CA sent an unusable token {challenge.token!r}")
            try:
                fd = os.open(
                    challenge.token,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o644,
                    dir_fd=directory,
                )
            except FileExistsError:
                raise OperationFailed(
                    f"{shown} already exists; remove it (certctl only removes what it created)"
                ) from None
            except FileNotFoundError:  # the held directory was removed or replaced meanwhile
                raise OperationFailed(
                    f"cannot write {shown}: the directory was removed or replaced while certctl"
                    " wrote to it; something else is changing the webroot"
                ) from None
            except OSError as e:
                raise OperationFailed(f"cannot write {shown}: {e.strerror}") from None
            self._created_files.append(challenge.token)
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o644)
                handle.write(challenge.validation.encode())

    def cleanup(self, challenges: list[Challenge]) -> None:
        """Remove exactly the files and directories present() created (through the held fds)."""
        fds, self._fds = self._fds, []
        try:
            if fds:
                for token in self._created_files:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(token, dir_fd=fds[-1])
                for level in reversed(self._created_dirs):
                    with contextlib.suppress(OSError):  # only if still an empty directory
                        os.rmdir(_CHALLENGE_DIRS[level - 1], dir_fd=fds[level - 1])
        finally:
            for fd in fds:
                os.close(fd)
            self._created_files.clear()
            self._created_dirs.clear()
