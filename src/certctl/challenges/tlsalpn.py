"""TLS-ALPN-01 (RFC 8737): certctl's own TLS responder, and the self-check that reads it.

The responder answers only TLS handshakes that negotiate the `acme-tls/1` ALPN
protocol and name (SNI) one of the expected identifiers; it presents, for that
name, a self-signed certificate whose only SAN is the identifier and whose critical
`acmeIdentifier` extension holds SHA-256 of the key authorization (§3). Any
other handshake is cut off without a certificate, and after the handshake the
connection is closed: no application data is ever served (§4). An IP identifier
(RFC 8738 §6) is asked for by its reverse-mapping name in SNI.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

from certctl.errors import BadInput, OperationFailed
from certctl.models import Challenge
from certctl.policy.names import ip_address_of, reverse_name
from certctl.store.contract import CertStore

ALPN = "acme-tls/1"
ACME_IDENTIFIER_OID = "1.3.6.1.5.5.7.1.31"  # id-pe-acmeIdentifier, RFC 8737 §6.1
HANDSHAKE_TIMEOUT = 5.0
PORT_WAIT = 120.0
MAX_HELLO = 16389  # one TLS record: 5-byte header + 2^14


def sni_name(identifier: str) -> str:
    """The SNI a validator sends for an identifier (RFC 8737 §3, RFC 8738 §6)."""
    return reverse_name(identifier) if ip_address_of(identifier) else identifier


def challenge_certificate(identifier: str, key_authorization: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM): self-signed, SAN = the identifier, acmeIdentifier critical."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    # the extension's value is the DER encoding of an OCTET STRING holding the digest
    value = bytes([0x04, len(digest)]) + digest
    address = ip_address_of(identifier)
    san: x509.GeneralName = (
        x509.IPAddress(ipaddress.ip_address(address)) if address else x509.DNSName(identifier)
    )
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certctl tls-alpn-01")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(ACME_IDENTIFIER_OID), value),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _context_for(identifier: str, key_authorization: str) -> ssl.SSLContext:
    """A server context presenting the challenge certificate, offering only acme-tls/1."""
    cert_pem, key_pem = challenge_certificate(identifier, key_authorization)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ALPN])
    # ssl loads certificates from files only: a private directory, removed at once
    with tempfile.TemporaryDirectory(prefix="certctl-alpn-") as directory:
        path = Path(directory) / "challenge.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem + cert_pem)
        context.load_cert_chain(path)
    return context


def read_challenge(address: str, port: int, identifier: str, key_authorization: str) -> str | None:
    """Connect as the validator does (ALPN acme-tls/1, SNI); what is wrong, or None."""
    from cryptography import x509

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed by design: the extension is the proof
    context.set_alpn_protocols([ALPN])
    try:
        raw = socket.create_connection((address, port), timeout=HANDSHAKE_TIMEOUT)
        with raw, context.wrap_socket(raw, server_hostname=sni_name(identifier)) as tls:
            protocol = tls.selected_alpn_protocol()
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as e:
        return f"TLS handshake failed ({e.__class__.__name__}: {e})"
    if protocol != ALPN:
        return f"the server did not negotiate ALPN {ALPN} (it chose {protocol or 'none'})"
    if der is None:
        return "the server presented no certificate"
    certificate = x509.load_der_x509_certificate(der)
    try:
        extension = certificate.extensions.get_extension_for_oid(
            x509.ObjectIdentifier(ACME_IDENTIFIER_OID)
        )
    except x509.ExtensionNotFound:
        return "a certificate without the acmeIdentifier extension (another TLS server?)"
    digest = hashlib.sha256(key_authorization.encode()).digest()
    value = getattr(extension.value, "value", b"")
    if not extension.critical or value != bytes([0x04, len(digest)]) + digest:
        return "an acmeIdentifier extension for another key authorization (stale or foreign)"
    return None


class _Responder:
    """One listening socket per port; answers from the contexts of the names presented."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _by_port: ClassVar[dict[int, _Responder]] = {}

    def __init__(self, sock: socket.socket, port_lock: contextlib.ExitStack) -> None:
        self.sock = sock
        self.port_lock = port_lock
        self.contexts: dict[str, ssl.SSLContext] = {}
        self.users = 0
        self.stopping = False
        self.base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.base.set_alpn_protocols([ALPN])
        self.base.sni_callback = self._pick
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _pick(self, connection: ssl.SSLObject, server_name: str | None, _: object) -> int | None:
        """SNI: the expected name's context, or end the handshake (no certificate to give)."""
        if server_name:
            context = self.contexts.get(server_name.lower().rstrip("."))
        else:  # a validator may send no SNI for an IP: the address it connected to names it
            local = str(connection.getsockname()[0]).removeprefix("::ffff:")  # type: ignore[attr-defined]
            context = self.contexts.get(sni_name(local)) if ip_address_of(local) else None
        if context is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        connection.context = context
        return None

    def _serve(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(client,), daemon=True).start()

    def _handshake(self, client: socket.socket) -> None:
        """Complete one handshake (the validator reads the certificate), then close."""
        client.settimeout(HANDSHAKE_TIMEOUT)
        if not _offers_acme_tls(client):  # RFC 8737 §4: nothing but acme-tls/1 is answered
            with contextlib.suppress(OSError):
                client.close()
            return
        with (
            contextlib.suppress(OSError, ssl.SSLError),
            client,
            self.base.wrap_socket(client, server_side=True) as tls,
        ):
            if tls.selected_alpn_protocol() != ALPN:
                return  # RFC 8737 §4: only acme-tls/1 is answered
            tls.unwrap()

    @classmethod
    def acquire(
        cls, port: int, contexts: dict[str, ssl.SSLContext], store: CertStore | None
    ) -> None:
        with cls._lock:
            shared = cls._by_port.get(port)
            if shared is None:
                port_lock = contextlib.ExitStack()
                if store is not None:
                    port_lock.enter_context(store.lock(str(port), what="port", wait=PORT_WAIT))
                try:
                    sock = _listen(port)
                except BaseException:
                    port_lock.close()
                    raise
                shared = cls._by_port[port] = _Responder(sock, port_lock)
            shared.contexts.update(contexts)
            shared.users += 1

    @classmethod
    def release(cls, port: int, names: list[str]) -> None:
        with cls._lock:
            shared = cls._by_port.get(port)
            if shared is None:
                return
            for name in names:
                shared.contexts.pop(name, None)
            shared.users -= 1
            if shared.users > 0:
                return
            del cls._by_port[port]
        shared.stopping = True
        with contextlib.suppress(OSError):
            shared.sock.shutdown(socket.SHUT_RDWR)
        shared.sock.close()
        shared.thread.join(timeout=5)
        shared.port_lock.close()


def _offers_acme_tls(client: socket.socket) -> bool:
    """Whether the ClientHello (peeked, not consumed) offers ALPN acme-tls/1 (RFC 7301 §3.1).

    OpenSSL completes a handshake that offers other protocols, or none, without ALPN;
    the challenge certificate must not be shown to such a client, so it is refused first.
    """
    data = b""
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT
    try:
        while time.monotonic() < deadline:
            data = client.recv(MAX_HELLO, socket.MSG_PEEK)
            if not data or data[0] != 0x16:  # not a TLS handshake record
                return False
            if len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[3:5], "big"):
                break
            time.sleep(0.01)
    except OSError:
        return False
    return ALPN.encode() in _alpn_names(data[5:])


def _alpn_names(hello: bytes) -> list[bytes]:
    """The protocol names of a ClientHello's ALPN extension (type 16); [] if none or malformed."""
    try:
        if hello[0] != 0x01:  # ClientHello
            return []
        at = 4 + 2 + 32  # handshake header, legacy_version, random
        at += 1 + hello[at]  # session id
        at += 2 + int.from_bytes(hello[at : at + 2], "big")  # cipher suites
        at += 1 + hello[at]  # compression methods
        end = at + 2 + int.from_bytes(hello[at : at + 2], "big")
        at += 2
        while at + 4 <= end:
            kind = int.from_bytes(hello[at : at + 2], "big")
            size = int.from_bytes(hello[at + 2 : at + 4], "big")
            body = hello[at + 4 : at + 4 + size]
            if kind == 16:
                names, pos = [], 2
                while pos < len(body):
                    names.append(body[pos + 1 : pos + 1 + body[pos]])
                    pos += 1 + body[pos]
                return names
            at += 4 + size
    except IndexError:
        return []
    return []


def _listen(port: int) -> socket.socket:
    """A listening socket on every address (IPv4 and IPv6 where the host has it)."""
    try:
        try:
            sock = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
        except (OSError, ValueError) as e:
            if isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
                raise
            sock = socket.create_server(("0.0.0.0", port))  # noqa: S104
    except PermissionError:
        raise BadInput(
            f"cannot listen on port {port}: binding below 1024 needs root or"
            " CAP_NET_BIND_SERVICE; or use --tls-port with a port forwarded from 443"
        ) from None
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise OperationFailed(
                f"port {port} is in use (a web server?): stop it for the validation, or use"
                " --challenge http"
            ) from None
        raise OperationFailed(f"cannot listen on port {port}: {e.strerror}") from None
    return sock


class TlsAlpnSolver:
    """Serve tls-alpn-01 challenge certificates from certctl's own responder on `port`."""

    def __init__(self, port: int, store: CertStore | None = None) -> None:
        self.port = port
        self.store = store
        self._names: list[str] | None = None

    def present(self, challenges: list[Challenge]) -> None:
        """Start (or join) the responder for this port with the expected names."""
        contexts = {
            sni_name(c.domain): _context_for(c.domain, c.validation)
            for c in challenges
            if c.type == "tls-alpn-01"
        }
        _Responder.acquire(self.port, contexts, self.store)
        self._names = list(contexts)

    def cleanup(self, challenges: list[Challenge]) -> None:
        """Withdraw the names; the last user stops the responder and frees the port."""
        if self._names is not None:
            _Responder.release(self.port, self._names)
            self._names = None
