"""Endpoints as users write them (`HOST[:PORT]`, `--sni`, `--starttls`), checked."""

from __future__ import annotations

import ipaddress

from certctl.errors import BadInput
from certctl.models import STARTTLS, Endpoint
from certctl.policy.names import normalize_domain

# The port each protocol's STARTTLS usually runs on (RFC 3207 SMTP, RFC 3501 IMAP, RFC 4217 FTP).
DEFAULT_PORTS = {None: 443, "smtp": 25, "imap": 143, "ftp": 21}


def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 address (no brackets)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_endpoint(text: str, *, sni: str | None = None, starttls: str | None = None) -> Endpoint:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address → an Endpoint; BadInput if wrong."""
    if starttls is not None and starttls not in STARTTLS:
        raise BadInput(f"invalid --starttls {starttls!r}: use one of {', '.join(STARTTLS)}")
    raw = text.strip()
    port_text: str | None = None
    if raw.startswith("["):
        host, bracket, rest = raw[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")) or not is_ip(host):
            raise BadInput(
                f"invalid --endpoint {text!r}: write an IPv6 address as [2001:db8::1]:443"
            )
        port_text = rest[1:] if rest else None
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
    else:
        host = raw  # a name, an IPv4 address, or a bare IPv6 address (no port)
    if not host:
        raise BadInput(f"invalid --endpoint {text!r}: give HOST[:PORT], e.g. www.example.com:443")
    port = DEFAULT_PORTS[starttls]
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise BadInput(f"invalid --endpoint {text!r}: the port must be a number 1-65535")
        port = int(port_text)
    if not is_ip(host):
        try:
            host = normalize_domain(host)
        except BadInput as e:
            raise BadInput(f"invalid --endpoint {text!r}: {e}") from None
        if host.startswith("*."):
            raise BadInput(f"invalid --endpoint {text!r}: a wildcard is not a host to connect to")
    if sni is not None:
        if is_ip(sni):
            raise BadInput(f"invalid --sni {sni!r}: SNI carries a DNS name, not an address")
        try:
            sni = normalize_domain(sni)
        except BadInput as e:
            raise BadInput(f"invalid --sni {sni!r}: {e}") from None
        if sni.startswith("*."):
            raise BadInput(
                f"invalid --sni {sni!r}: give the name a client asks for, not a wildcard"
            )
        if sni == host:
            sni = None  # the host's own name: nothing to add
    elif is_ip(host):
        raise BadInput(
            f"--endpoint {text!r} is an address: give --sni NAME, the name clients ask for there"
        )
    return Endpoint(
        host=str(ipaddress.ip_address(host)) if is_ip(host) else host,
        port=port,
        sni=sni,
        starttls=starttls,
    )


def server_name(endpoint: Endpoint) -> str:
    """The name sent as SNI and expected in the certificate."""
    return endpoint.sni or endpoint.host
