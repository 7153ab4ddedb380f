"""TLS-ALPN-01 (RFC 8737): certctl's own responder, its self-check, and Pebble validating it."""

from __future__ import annotations

import hashlib
import shlex
import socket
import ssl
from contextlib import closing

import pytest
from cryptography import x509

from certctl.challenges import selfcheck, tlsalpn
from certctl.models import CertRecord, Challenge, Validation
from certctl.policy import hints

from conftest import Certctl, make_due, unique
from pebble import PebbleServer, free_port

KEY_AUTHORIZATION = "token-abcdefghijklmnop.thumbprint-0123456789"


def _challenge(domain: str, validation: str = KEY_AUTHORIZATION) -> Challenge:
    return Challenge(
        domain, "https://ca/authz/1", "https://ca/chall/1", "tls-alpn-01", "tok", validation
    )


def _handshake(
    port: int, sni: str | None, alpn: list[str] | None
) -> tuple[str | None, bytes | None]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with raw, context.wrap_socket(raw, server_hostname=sni) as tls:
        return tls.selected_alpn_protocol(), tls.getpeercert(binary_form=True)


def test_challenge_certificate_carries_the_critical_acme_identifier() -> None:
    cert_pem, _ = tlsalpn.challenge_certificate("example.com", KEY_AUTHORIZATION)
    cert = x509.load_pem_x509_certificate(cert_pem)
    extension = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"))
    assert extension.critical
    digest = hashlib.sha256(KEY_AUTHORIZATION.encode()).digest()
    assert extension.value.value == b"\x04\x20" + digest  # DER OCTET STRING (RFC 8737 §3)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["example.com"]
    ip_pem, _ = tlsalpn.challenge_certificate("2001:db8::1", KEY_AUTHORIZATION)
    ip_sans = x509.load_pem_x509_certificate(ip_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert [str(a) for a in ip_sans.value.get_values_for_type(x509.IPAddress)] == ["2001:db8::1"]


def test_responder_answers_only_acme_tls_1_for_the_expected_name() -> None:
    port = free_port()
    solver = tlsalpn.TlsAlpnSolver(port)
    solver.present([_challenge("alpn.example.com")])
    try:
        protocol, der = _handshake(port, "alpn.example.com", ["acme-tls/1"])
        assert protocol == "acme-tls/1" and der is not None
        # another ALPN protocol, no ALPN, another name: no challenge answer
        for sni, alpn in (
            ("alpn.example.com", ["http/1.1"]),
            ("alpn.example.com", None),
            ("other.example.com", ["acme-tls/1"]),
        ):
            with pytest.raises((ssl.SSLError, OSError)):
                protocol, der = _handshake(port, sni, alpn)
                assert protocol == "acme-tls/1"  # a handshake that completes must not be served
                raise OSError("handshake completed without acme-tls/1")
        assert selfcheck.check_tls_alpn([_challenge("127.0.0.1")], port, []) != []
        assert selfcheck.check_tls_alpn([_challenge("alpn.example.com")], port, [("127.0.0.1", 1)])[
            0
        ].seen.startswith("no address")
    finally:
        solver.cleanup([])
    with socket.create_server(("127.0.0.1", port)):
        pass  # the port is free again


def test_selfcheck_names_a_stale_key_authorization() -> None:
    port = free_port()
    solver = tlsalpn.TlsAlpnSolver(port)
    solver.present([_challenge("127.0.0.1")])
    try:
        assert selfcheck.check_tls_alpn([_challenge("127.0.0.1")], port, []) == []
        stale = selfcheck.check_tls_alpn([_challenge("127.0.0.1", "tok.other")], port, [])
        assert len(stale) == 1 and "another key authorization" in stale[0].seen
    finally:
        solver.cleanup([])
    closed = selfcheck.check_tls_alpn([_challenge("127.0.0.1")], port, [])
    assert len(closed) == 1 and closed[0].seen.startswith("TLS handshake failed")


@pytest.mark.pebble
def test_tls_alpn_three_steps_then_renew_due(certctl: Certctl, pebble: PebbleServer) -> None:
    domain = unique()
    port = str(pebble.tls_port)
    proc = certctl.run(
        "order", "-d", domain, "--challenge", "tls-alpn", "--tls-port", port, "--agree-tos"
    )
    assert proc.returncode == 0, proc.stderr
    assert "ALPN:    acme-tls/1 (RFC 8737)" in proc.stdout
    verified = certctl.json("verify", domain)
    assert verified["status"] == "valid"
    assert [(e["type"], e["where"], e["visible"]) for e in verified["selfcheck"]] == [
        ("tls-alpn-01", f"acme-tls/1 at {domain}", True)
    ]
    assert certctl.json("issue", domain)["version"] == 1
    listed = certctl.json("list")["certificates"]
    assert [(e["name"], e["renewal"]) for e in listed] == [(domain, "tls-alpn-01 standalone")]
    make_due(certctl, domain)
    renewed = certctl.run("renew-due")
    assert renewed.returncode == 0, renewed.stderr
    with closing(certctl.open()) as store:
        record = store.read(domain)
    assert record.current is not None and record.current.version == 2
    assert record.validation.tls_port == pebble.tls_port


@pytest.mark.pebble
def test_tls_alpn_selfcheck_refuses_before_the_ca_is_asked(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique()
    other = str(free_port())  # the responder listens where the self-check (and CA) don't look
    assert (
        certctl.run(
            "order", "-d", domain, "--challenge", "tls-alpn", "--tls-port", other, "--agree-tos"
        ).returncode
        == 0
    )
    proc = certctl.run("verify", domain)
    assert proc.returncode == 3, proc.stderr
    assert "not visible yet (the CA was not asked)" in proc.stderr
    assert f"acme-tls/1 at {domain}:{pebble.tls_port}" in proc.stderr
    with closing(certctl.open()) as store:
        order = store.read(domain).order
    assert order is not None and order.status == "pending"


def test_tls_alpn_refuses_wildcards_and_foreign_options(certctl: Certctl) -> None:
    wildcard = certctl.run("order", "-d", "*.example.com", "--challenge", "tls-alpn")
    assert wildcard.returncode == 2 and "wildcards need DNS validation" in wildcard.stderr
    webroot = certctl.run("order", "-d", "example.com", "--challenge", "tls-alpn", "--webroot", "/")
    assert webroot.returncode == 2 and "is not for TLS-ALPN-01" in webroot.stderr
    port = certctl.run("order", "-d", "example.com", "--tls-port", "8443")
    assert port.returncode == 2 and "--tls-port needs --challenge tls-alpn" in port.stderr


@pytest.mark.parametrize(
    ("validation", "expected"),
    [
        (
            Validation("tls-alpn", "standalone", tls_port=8443),
            ["--challenge", "tls-alpn", "--tls-port", "8443"],
        ),
        (Validation("tls-alpn", "standalone"), ["--challenge", "tls-alpn"]),
        (Validation("dns-persist", "persist"), ["--challenge", "dns-persist"]),
    ],
)
def test_order_again_hint_keeps_the_method(validation: Validation, expected: list[str]) -> None:
    """The pasted command orders with the same method (not --standalone HTTP-01)."""
    record = CertRecord(name="a.example.com", domains=["a.example.com"], validation=validation)
    args = shlex.split(hints.order_again(record))
    assert args[args.index("a.example.com") + 1 :][: len(expected)] == expected or all(
        a in args for a in expected
    )
    assert "--standalone" not in args and "--http-port" not in args
