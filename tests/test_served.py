"""The pure parts of endpoint probing, table-driven: endpoint syntax, name matching, verdicts.

STARTTLS dialogues (IMAP, FTP) run against a real socket server speaking just enough of each.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certctl.errors import BadInput
from certctl.models import Endpoint
from certctl.net.tls import Unreachable, fetch_chain
from certctl.pki.served import judge, name_matches
from certctl.policy.endpoints import parse_endpoint
from tlsserver import StartTlsServer

from certfactory import DER, Issued, make_leaf, private_key

SITE = "site.example.com"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("www.example.com", {}, Endpoint("www.example.com", 443)),
        ("WWW.Example.COM.:8443", {}, Endpoint("www.example.com", 8443)),
        ("bücher.example", {}, Endpoint("xn--bcher-kva.example", 443)),
        ("192.0.2.7", {"sni": SITE}, Endpoint("192.0.2.7", 443, SITE)),
        ("192.0.2.7:8443", {"sni": SITE}, Endpoint("192.0.2.7", 8443, SITE)),
        ("2001:db8::1", {"sni": SITE}, Endpoint("2001:db8::1", 443, SITE)),
        ("[2001:DB8::1]:8443", {"sni": SITE}, Endpoint("2001:db8::1", 8443, SITE)),
        ("mail.example.com", {"starttls": "smtp"}, Endpoint("mail.example.com", 25, None, "smtp")),
        (
            "mail.example.com:587",
            {"starttls": "smtp"},
            Endpoint("mail.example.com", 587, None, "smtp"),
        ),
        ("mail.example.com", {"starttls": "imap"}, Endpoint("mail.example.com", 143, None, "imap")),
        ("ftp.example.com", {"starttls": "ftp"}, Endpoint("ftp.example.com", 21, None, "ftp")),
        (SITE, {"sni": SITE.upper()}, Endpoint(SITE, 443)),  # its own name: no extra SNI
    ],
)
def test_parse_endpoint(text: str, options: dict[str, str], expected: Endpoint) -> None:
    assert parse_endpoint(text, **options) == expected


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("", {}, "give HOST[:PORT]"),
        (":443", {}, "give HOST[:PORT]"),
        ("www.example.com:70000", {}, "1-65535"),
        ("[2001:db8::1", {"sni": SITE}, "[2001:db8::1]:443"),
        ("[www.example.com]:443", {}, "[2001:db8::1]:443"),
        ("2001:db8::1", {}, "give --sni NAME"),
        ("localhost", {}, "fully qualified"),
        ("www.example.com", {"sni": "*.example.com"}, "invalid --sni"),
        ("www.example.com", {"starttls": "pop3"}, "use one of smtp, imap, ftp"),
    ],
)
def test_parse_endpoint_refuses(text: str, options: dict[str, str], message: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_endpoint(text, **options)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("www.example.com", "www.example.com", True),
        ("WWW.example.com", "www.EXAMPLE.com.", True),
        ("*.example.com", "www.example.com", True),
        ("*.example.com", "example.com", False),  # RFC 6125: the wildcard is one whole label
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", ".example.com", False),
        ("www.example.com", "ww.example.com", False),
        ("192.0.2.7", "192.0.2.7", True),
    ],
)
def test_name_matches(pattern: str, host: str, matches: bool) -> None:
    assert name_matches(pattern, host) is matches


def served(leaf: Issued, *, chain: bool = True) -> list[bytes]:
    return [leaf.cert_der(), *((c.public_bytes(DER) for c in leaf.chain) if chain else ())]


def verdict(
    leaf: Issued,
    sent: list[bytes],
    name: str = SITE,
    versions: dict[str, int] | None = None,
    live: int = 1,
    now: datetime = NOW,
) -> tuple[str, str]:
    from certctl.pki.certinfo import fingerprint

    known = versions if versions is not None else {fingerprint(leaf.cert): 1}
    result = judge(
        sent,
        server_name=name,
        live_version=live,
        live_chain_pem=leaf.chain_pem(),
        version_of=known.get,
        now=now,
    )
    return result.status, result.detail


def test_verdicts_in_order_of_urgency() -> None:
    leaf = make_leaf(SITE, "*.shop.example.com", now=NOW)
    assert verdict(leaf, served(leaf)) == ("served", "live version 1")
    assert verdict(leaf, served(leaf), name="a.shop.example.com")[0] == "served"
    assert verdict(leaf, served(leaf), name="shop.example.com") == (
        "name-mismatch",
        f"version 1 is for {SITE}, *.shop.example.com, not shop.example.com",
    )
    assert verdict(leaf, served(leaf), live=2) == ("older", "older version 1, not the live 2")
    status, detail = verdict(leaf, served(leaf), versions={})
    assert status == "unknown" and "issuer Test Int2" in detail
    assert verdict(leaf, served(leaf, chain=False))[0] == "chain-incomplete"
    later = NOW + timedelta(days=91)
    assert verdict(leaf, served(leaf), now=later) == (
        "expired",
        f"version 1 expired {leaf.cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
    )
    # expired outranks every other finding: an old, unknown certificate for other names
    assert (
        verdict(leaf, served(leaf, chain=False), name="x.example.org", versions={}, now=later)[0]
        == "expired"
    )
    early = NOW - timedelta(days=1)
    assert verdict(leaf, served(leaf), now=early)[1].startswith("version 1 is not valid before")
    assert verdict(leaf, [b"garbage"]) == ("unknown", "the server sent no readable certificate")
    assert verdict(leaf, []) == ("unknown", "the server sent no readable certificate")


def test_a_self_signed_root_sent_along_is_fine() -> None:
    leaf = make_leaf(SITE, now=NOW)
    assert leaf.root is not None
    assert verdict(leaf, [*served(leaf), leaf.root.public_bytes(DER)])[0] == "served"


@pytest.mark.parametrize(
    ("protocol", "script"),
    [
        ("imap", [("* OK IMAP4rev1 ready", "c1 STARTTLS"), ("c1 OK begin TLS now", "")]),
        ("ftp", [("220-welcome", ""), ("220 ready", "AUTH TLS"), ("234 AUTH TLS ok", "")]),
        (
            "smtp",
            [("220 mx ESMTP", "EHLO "), ("250-mx\r\n250 STARTTLS", "STARTTLS"), ("220 go", "")],
        ),
    ],
)
def test_starttls_dialogues(protocol: str, script: list[tuple[str, str]]) -> None:
    leaf = make_leaf(SITE, key=private_key("ec256", 60))
    with StartTlsServer(leaf.fullchain_pem(), leaf.key_pem(), script) as server:
        handshake = fetch_chain("127.0.0.1", server.port, SITE, timeout=3, starttls=protocol)
    assert handshake.chain[0] == leaf.cert_der()
    assert len(handshake.chain) == 1 + len(leaf.chain)


def test_starttls_refused_is_unreachable_with_what_the_server_said() -> None:
    leaf = make_leaf(SITE, key=private_key("ec256", 61))
    script = [("* OK ready", "c1 STARTTLS"), ("c1 NO not here", "")]
    with (
        StartTlsServer(leaf.fullchain_pem(), leaf.key_pem(), script) as server,
        pytest.raises(Unreachable) as caught,
    ):
        fetch_chain("127.0.0.1", server.port, SITE, timeout=3, starttls="imap")
    assert str(caught.value) == "STARTTLS (imap) refused: the server said 'c1 NO not here'"
