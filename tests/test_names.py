"""Validation of certificate names (they become paths) and domains (they become identifiers)."""

from __future__ import annotations

import pytest

from certctl.errors import BadInput, ExitCode
from certctl.policy.names import (
    check_cert_name,
    default_cert_name,
    normalize_domain,
    normalize_domains,
)

# ---- certificate names ------------------------------------------------------

ACCEPTED_NAMES = [
    "a",
    "9",
    "example.com",
    "wildcard.example.com",
    "A.b-c_d",
    "x-",
    "x.",
    "a" * 64,
    "0" + "_" * 63,
]

REFUSED_NAMES = [
    pytest.param("../x", id="dotdot-slash"),
    pytest.param("a/b", id="slash"),
    pytest.param("/abs", id="absolute"),
    pytest.param(".", id="dot"),
    pytest.param("..", id="dotdot"),
    pytest.param("a..b", id="inner-dotdot"),
    pytest.param("a\x00", id="nul"),
    pytest.param("a\x00b", id="inner-nul"),
    pytest.param("a" * 65, id="65-chars"),
    pytest.param("a" * 300, id="300-chars"),
    pytest.param("-x", id="leading-dash"),
    pytest.param("_x", id="leading-underscore"),
    pytest.param(".x", id="leading-dot"),
    pytest.param("\u0430", id="cyrillic-a"),
    pytest.param("ex\u0430mple", id="cyrillic-a-inside"),
    pytest.param("caf\u00e9", id="latin-accent"),
    pytest.param("\uff41", id="fullwidth-a"),
    pytest.param("", id="empty"),
    pytest.param(" ", id="space"),
    pytest.param("a b", id="inner-space"),
    pytest.param(" a", id="leading-space"),
    pytest.param("a ", id="trailing-space"),
    pytest.param("a\n", id="trailing-newline"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("*.x", id="asterisk"),
]


@pytest.mark.parametrize("name", ACCEPTED_NAMES)
def test_cert_name_accepted(name: str) -> None:
    assert check_cert_name(name) == name


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_cert_name_refused(name: str) -> None:
    with pytest.raises(BadInput) as info:
        check_cert_name(name)
    assert info.value.exit_code == ExitCode.USAGE
    message = str(info.value)
    assert message.startswith("invalid certificate name")
    assert "\n" not in message and "\x00" not in message  # one printable line


@pytest.mark.parametrize("name", ["../x", "a/b", "-x", "a b"])
def test_cert_name_message_names_the_input(name: str) -> None:
    with pytest.raises(BadInput, match="invalid certificate name") as info:
        check_cert_name(name)
    assert repr(name) in str(info.value)


def test_cert_name_long_input_is_shortened_in_the_message() -> None:
    with pytest.raises(BadInput) as info:
        check_cert_name("b" * 300)
    message = str(info.value)
    assert "b" * 80 in message
    assert "b" * 81 not in message


@pytest.mark.parametrize("name", ["a\x00", "c" * 300])
def test_cert_name_message_quotes_input_once(name: str) -> None:
    with pytest.raises(BadInput) as info:
        check_cert_name(name)
    assert "\"'" not in str(info.value)


# ---- domains ----------------------------------------------------------------

LONG_LABEL = "a" * 63
NAME_253 = f"{LONG_LABEL}.{LONG_LABEL}.{LONG_LABEL}.{'a' * 61}"
NAME_254 = f"{LONG_LABEL}.{LONG_LABEL}.{LONG_LABEL}.{'a' * 62}"
assert len(NAME_253) == 253 and len(NAME_254) == 254

NORMALISED = [
    pytest.param("example.com", "example.com", id="plain"),
    pytest.param("EXAMPLE.COM", "example.com", id="upper"),
    pytest.param("Www.Example.Com", "www.example.com", id="mixed"),
    pytest.param("example.com.", "example.com", id="trailing-dot"),
    pytest.param("  example.com  ", "example.com", id="surrounding-space"),
    pytest.param("b\u00fccher.de", "xn--bcher-kva.de", id="idn"),
    pytest.param("B\u00dcCHER.DE", "xn--bcher-kva.de", id="idn-upper"),
    pytest.param("XN--BCHER-KVA.de", "xn--bcher-kva.de", id="a-label-upper"),
    pytest.param("\u0430pple.com", "xn--pple-43d.com", id="cyrillic-a-lookalike"),
    pytest.param("*.example.com", "*.example.com", id="wildcard"),
    pytest.param("*.Example.COM.", "*.example.com", id="wildcard-upper-dot"),
    pytest.param("*.b\u00fccher.de", "*.xn--bcher-kva.de", id="wildcard-idn"),
    pytest.param(f"{LONG_LABEL}.com", f"{LONG_LABEL}.com", id="63-char-label"),
    pytest.param(NAME_253, NAME_253, id="253-chars"),
    pytest.param(NAME_253 + ".", NAME_253, id="253-chars-plus-root-dot"),
    pytest.param("a-b.x.co", "a-b.x.co", id="inner-dash"),
]


@pytest.mark.parametrize(("given", "expected"), NORMALISED)
def test_domain_normalised(given: str, expected: str) -> None:
    assert normalize_domain(given) == expected


REFUSED_DOMAINS = [
    pytest.param("*.*.x.com", id="double-wildcard"),
    pytest.param("a*.x.com", id="partial-wildcard"),
    pytest.param("x.*.com", id="inner-wildcard"),
    pytest.param("*.com", id="wildcard-tld"),
    pytest.param("x", id="single-label"),
    pytest.param("localhost", id="localhost"),
    pytest.param("*.192.0.2.1", id="wildcard-ip"),
    pytest.param("a.b.c.123", id="numeric-tld"),
    pytest.param("-a.com", id="leading-dash"),
    pytest.param("a-.com", id="trailing-dash"),
    pytest.param("a.-b.com", id="inner-label-dash"),
    pytest.param("xn--zz.com", id="bad-punycode"),
    pytest.param("*.xn--zz.com", id="wildcard-bad-punycode"),
    pytest.param("a" * 64 + ".com", id="64-char-label"),
    pytest.param(NAME_254, id="254-chars"),
    pytest.param("example..com", id="empty-label"),
    pytest.param("example.com..", id="two-trailing-dots"),
    pytest.param("...", id="dots"),
    pytest.param("a_b.com", id="underscore"),
    pytest.param("ex ample.com", id="inner-space"),
    pytest.param("exa\x00mple.com", id="nul"),
    pytest.param("https://example.com", id="url"),
    pytest.param("example.com/path", id="path"),
]


@pytest.mark.parametrize("domain", REFUSED_DOMAINS)
def test_domain_refused(domain: str) -> None:
    with pytest.raises(BadInput) as info:
        normalize_domain(domain)
    message = str(info.value)
    assert "\n" not in message and "\x00" not in message
    # the message names the input: whole when short and printable, else its beginning
    if domain.isprintable() and len(domain) <= 80:
        assert repr(domain) in message
    else:
        for part in domain.split("\x00"):
            assert part[:60] in message


@pytest.mark.parametrize("domain", ["", " ", "\t"])
def test_empty_domain_refused(domain: str) -> None:
    with pytest.raises(BadInput, match="empty domain"):
        normalize_domain(domain)


@pytest.mark.parametrize(
    ("given", "identifier"),
    [("192.0.2.1", "192.0.2.1"), ("2001:db8::1", "2001:db8::1"), ("::1", "::1"), ("[::1]", "::1")],
)
def test_ip_address_is_an_identifier_of_its_own(given: str, identifier: str) -> None:
    """RFC 8738: IP addresses are ordered as "ip" identifiers (issue #16; refused before)."""
    assert normalize_domain(given) == identifier


def test_bad_punycode_names_the_label() -> None:
    with pytest.raises(BadInput, match="punycode") as info:
        normalize_domain("www.xn--zz.com")
    assert "xn--zz" in str(info.value)


IDNA2008 = [
    pytest.param("stra\u00dfe.de", "xn--strae-oqa.de", id="sharp-s"),
    pytest.param("fa\u00df.de", "xn--fa-hia.de", id="sharp-s-2"),
    pytest.param("\u03c2.gr", "xn--3xa.gr", id="final-sigma"),
]


@pytest.mark.parametrize(("given", "expected"), IDNA2008)
def test_idn_uses_idna2008(given: str, expected: str) -> None:
    assert normalize_domain(given) == expected


def test_zero_width_joiner_refused() -> None:
    with pytest.raises(BadInput):
        normalize_domain("a\u200db.com")


# ---- normalize_domains ------------------------------------------------------


def test_normalize_domains_deduplicates_keeping_order() -> None:
    given = ["B.com", "a.com", "b.com.", "A.COM", "*.c.com", "c.com", "*.C.com"]
    assert normalize_domains(given) == ["b.com", "a.com", "*.c.com", "c.com"]


def test_normalize_domains_accepts_a_tuple() -> None:
    assert normalize_domains(("www.x.org", "x.org")) == ["www.x.org", "x.org"]


def test_normalize_domains_refuses_empty_list() -> None:
    with pytest.raises(BadInput, match="no domain"):
        normalize_domains([])


def test_normalize_domains_refuses_one_bad_domain_by_name() -> None:
    with pytest.raises(BadInput, match="bad_domain"):
        normalize_domains(["good.com", "bad_domain.com"])


def test_normalize_domains_limit_counts_distinct_names() -> None:
    assert len(normalize_domains([f"a{i}.com" for i in range(100)])) == 100
    assert len(normalize_domains([f"a{i % 100}.com" for i in range(150)])) == 100
    with pytest.raises(BadInput, match="100"):
        normalize_domains([f"a{i}.com" for i in range(101)])


# ---- default_cert_name ------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("example.com", "example.com"),
        ("*.example.com", "wildcard.example.com"),
        ("*.xn--bcher-kva.de", "wildcard.xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ],
)
def test_default_cert_name(domain: str, expected: str) -> None:
    assert default_cert_name(domain) == expected


@pytest.mark.parametrize(
    "domain",
    [NAME_253, "*." + NAME_253[:251], f"{'b' * 62}.c.example.com", f"*.{'b' * 60}.c.com"],
)
def test_default_cert_name_of_long_domain_is_a_valid_name(domain: str) -> None:
    name = default_cert_name(domain)
    assert check_cert_name(name) == name
    assert len(name) <= 64
    assert not name.endswith((".", "-"))
    expected_start = "wildcard." if domain.startswith("*.") else domain[:20]
    assert name.startswith(expected_start)
