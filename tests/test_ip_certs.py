"""IP-address certificates (RFC 8738): HTTP-01 and TLS-ALPN-01 against Pebble, DNS-01 refused."""

from __future__ import annotations

import ipaddress
from contextlib import closing

import pytest
from cryptography import x509

from certctl.errors import BadInput
from certctl.policy.names import default_cert_name, normalize_domain, profile_for_ip

from conftest import Certctl, make_due
from pebble import PebbleServer


def test_ip_identifiers_are_canonical_and_names_path_safe() -> None:
    assert normalize_domain("192.0.2.10") == "192.0.2.10"
    assert normalize_domain("2001:DB8:0::1") == "2001:db8::1"
    assert normalize_domain("[2001:db8::1]") == "2001:db8::1"
    assert default_cert_name("2001:db8::1") == "ip6-2001-db8--1"
    assert default_cert_name("192.0.2.10") == "192.0.2.10"
    with pytest.raises(BadInput, match="cannot be a wildcard"):
        normalize_domain("*.192.0.2.10")
    assert profile_for_ip({"classic": "", "shortlived": ""}) == "shortlived"
    assert profile_for_ip({}) is None


def test_dns01_for_an_ip_is_refused_with_the_reason(certctl: Certctl) -> None:
    proc = certctl.run("order", "-d", "192.0.2.10", "--challenge", "dns")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        "192.0.2.10 is an IP address: DNS-01 cannot prove control of an IP address"
        " (RFC 8738 §7); use --challenge http or --challenge tls-alpn"
    )
    assert certctl.json("list")["certificates"] == []


def _ip_sans(certctl: Certctl, name: str) -> list[str]:
    leaf = x509.load_pem_x509_certificates(certctl.live(name)["fullchain.pem"])[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == []
    return [str(a) for a in sans.get_values_for_type(x509.IPAddress)]


@pytest.mark.pebble
@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("method", ["http", "tls-alpn"])
def test_ip_certificate_issued_and_renewed(
    certctl: Certctl, pebble: PebbleServer, address: str, method: str
) -> None:
    how = (
        ["--standalone", "--http-port", str(pebble.http_port)]
        if method == "http"
        else ["--challenge", "tls-alpn", "--tls-port", str(pebble.tls_port)]
    )
    proc = certctl.run("obtain", "-d", address, *how, "--agree-tos")
    assert proc.returncode == 0, proc.stderr
    assert "using the CA's 'shortlived' profile" in proc.stderr
    name = default_cert_name(str(ipaddress.ip_address(address)))
    assert _ip_sans(certctl, name) == [address]
    with closing(certctl.open()) as store:
        record = store.read(name)
    assert record.profile == "shortlived" and record.domains == [address]
    make_due(certctl, name)
    renewed = certctl.run("renew-due")
    assert renewed.returncode == 0, renewed.stderr
    with closing(certctl.open()) as store:
        record = store.read(name)
    assert record.current is not None and record.current.version == 2
    assert record.profile == "shortlived"
