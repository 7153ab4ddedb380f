"""A TLS handshake with an endpoint, bounded in time, to read the chain it serves.

No HTTP request and no verification here: the chain is read as sent and judged
by pki/served.py against what the store holds. STARTTLS for SMTP (RFC 3207),
IMAP (RFC 3501 §6.2.1) and FTP (RFC 4217 §4) upgrades a plain connection first.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

from certctl.errors import OperationFailed

MAX_LINE = 4096
MAX_LINES = 100


class Unreachable(OperationFailed):
    """The endpoint could not be reached or did not complete a handshake; says why."""


@dataclass(frozen=True)
class Handshake:
    """What one handshake saw."""

    chain: list[bytes]  # DER, in the order the server sent it, leaf first
    protocol: str  # e.g. TLSv1.3
    address: str  # the peer's address and port


def fetch_chain(
    host: str,
    port: int,
    server_name: str | None,
    *,
    timeout: float,
    starttls: str | None = None,
) -> Handshake:
    """Connect, (STARTTLS,) handshake with SNI `server_name`; the served chain. Unreachable."""
    deadline = time.monotonic() + timeout
    step = "connect"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as e:
        raise Unreachable(f"{host} does not resolve ({e.strerror})") from None
    except TimeoutError:
        raise Unreachable(f"connect timed out after {timeout:g}s") from None
    except OSError as e:
        raise Unreachable(f"connect failed: {e.strerror or e}") from None
    try:
        peer = sock.getpeername()
        address = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
        if starttls:
            step = f"STARTTLS ({starttls})"
            _starttls(sock, starttls, deadline)
        step = "TLS handshake"
        _remaining(sock, deadline)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # judged afterwards, against the store
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            return Handshake(_chain_of(tls), tls.version() or "TLS", address)
    except TimeoutError:
        raise Unreachable(f"no answer within {timeout:g}s ({step})") from None
    except ssl.SSLError as e:
        reason = e.reason or e.strerror or type(e).__name__
        raise Unreachable(f"{step} failed: {reason}") from None
    except OSError as e:
        raise Unreachable(f"{step} failed: {e.strerror or e}") from None
    finally:
        sock.close()


def _chain_of(tls: ssl.SSLSocket) -> list[bytes]:
    """The certificates the server sent, DER, leaf first (unverified: as sent)."""
    public = getattr(tls, "get_unverified_chain", None)  # Python 3.13+
    if public is not None:
        return [bytes(der) for der in public()]
    private = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)  # 3.10-3.12
    if private is not None:
        chain = private() or []
        return [cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in chain]  # type: ignore[attr-defined]
    leaf = tls.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _remaining(sock: socket.socket, deadline: float) -> None:
    """Give the next step only what is left of the time bound."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    sock.settimeout(left)


class _Lines:
    """CRLF lines read from a plain socket within the deadline, never past the greeting's end."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline, self.buffer = sock, deadline, b""

    def line(self) -> str:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise Unreachable("the server sent an over-long line before STARTTLS")
            _remaining(self.sock, self.deadline)
            data = self.sock.recv(1024)
            if not data:
                raise Unreachable("the server closed the connection before STARTTLS")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")

    def reply(self) -> str:
        """A whole SMTP/FTP reply (`250-...` continued, `250 ...` last): its last line."""
        for _ in range(MAX_LINES):
            line = self.line()
            if len(line) < 4 or line[3] != "-":
                return line
        raise Unreachable("the server's reply never ended before STARTTLS")

    def send(self, text: str) -> None:
        _remaining(self.sock, self.deadline)
        self.sock.sendall(text.encode() + b"\r\n")


def _starttls(sock: socket.socket, protocol: str, deadline: float) -> None:
    """Ask for TLS on the plain connection; Unreachable when the server declines."""
    lines = _Lines(sock, deadline)
    if protocol == "smtp":
        _expect(lines.reply(), "220", protocol)
        lines.send("EHLO certctl.invalid")
        _expect(lines.reply(), "250", protocol)
        lines.send("STARTTLS")
        _expect(lines.reply(), "220", protocol)
    elif protocol == "imap":
        _expect(lines.line(), "* OK", protocol)
        lines.send("c1 STARTTLS")
        for _ in range(MAX_LINES):
            line = lines.line()
            if line.startswith("c1 "):
                _expect(line, "c1 OK", protocol)
                break
        else:
            raise Unreachable("the IMAP server never answered STARTTLS")
    elif protocol == "ftp":
        _expect(lines.reply(), "220", protocol)
        lines.send("AUTH TLS")
        _expect(lines.reply(), "234", protocol)
    else:
        raise ValueError(f"no STARTTLS for {protocol!r}")
    if lines.buffer:
        raise Unreachable(f"the {protocol} server sent data after agreeing to STARTTLS")


def _expect(line: str, prefix: str, protocol: str) -> None:
    if not line.upper().startswith(prefix.upper()):
        shown = "".join(ch if ch.isprintable() else "?" for ch in line)[:120]
        raise Unreachable(f"STARTTLS ({protocol}) refused: the server said {shown!r}")
