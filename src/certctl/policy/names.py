"""Validation of user-given names: certificate names (which become paths) and domains."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from certctl.errors import BadInput

_CERT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def check_cert_name(name: str) -> str:
    """Return `name` if it is a valid certificate name, else raise BadInput.

    DESIGN §1.1: letters, digits, '-', '_', '.'; starts with a letter or digit;
    at most 64 characters. '..' is refused too, so a name is always one safe
    path component.
    """
    if not _CERT_NAME.fullmatch(name) or ".." in name:
        raise BadInput(
            f"invalid certificate name {_shown(name)}: use 1-64 letters, digits, '-', '_' or '.',"
            " starting with a letter or digit"
        )
    return name


def _shown(text: str) -> str:
    """The user's input, quoted once, shortened and made printable."""
    return repr(text[:80]) + ("..." if len(text) > 80 else "")


def _to_ascii(name: str) -> str:
    """A-labels per IDNA 2008 / UTS 46 (what browsers and CAs use), lower case."""
    if name.isascii():
        return name.lower()
    import idna

    return str(idna.encode(name, uts46=True).decode("ascii")).lower()


def normalize_domain(domain: str) -> str:
    """Return the ACME identifier for `domain`: lower case, A-labels, no trailing dot.

    A single leading '*.' marks a wildcard (DNS-01 only). An IP address (RFC 8738) is
    returned in its canonical text form (RFC 5952 for IPv6: `2001:db8::1`).
    """
    raw = domain.strip()
    shown = _shown(raw)
    if not raw:
        raise BadInput("empty domain name: give a domain such as example.com with -d")
    name = raw.rstrip(".") if raw.endswith(".") and not raw.endswith("..") else raw
    wildcard = name.startswith("*.")
    if wildcard:
        name = name[2:]
    address = ip_address_of(name.strip("[]"))
    if address is not None:
        if wildcard:
            raise BadInput(f"invalid domain {shown}: an IP address cannot be a wildcard")
        return address
    try:
        ascii_name = _to_ascii(name)
    except (UnicodeError, ValueError):
        raise BadInput(
            f"invalid domain {shown}: not a valid (internationalised) DNS name"
        ) from None
    labels = ascii_name.split(".")
    for label in labels:
        if label.startswith("xn--"):
            try:
                import idna

                idna.decode(label)
            except (UnicodeError, ValueError):
                raise BadInput(f"invalid domain {shown}: {label!r} is not valid punycode") from None
    if (
        len(labels) < 2
        or len(ascii_name) > 253
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise BadInput(
            f"invalid domain {shown}: expected a fully qualified name such as"
            " www.example.com (wildcards only as a leading '*.')"
        )
    return f"*.{ascii_name}" if wildcard else ascii_name


def ip_address_of(name: str) -> str | None:
    """The canonical text of `name` when it is an IP address (RFC 8738 identifier), else None."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return None


IP_PROFILES = ("shortlived",)  # Let's Encrypt issues IP-address certificates only from these


def profile_for_ip(offered: Iterable[str]) -> str | None:
    """The profile an IP-address order needs when the CA advertises profiles; None: its default."""
    names = set(offered)
    return next((p for p in IP_PROFILES if p in names), None)


def reverse_name(address: str) -> str:
    """RFC 8738 §6: the SNI for an IP identifier is its reverse-mapping name (in-addr/ip6.arpa)."""
    import ipaddress

    return ipaddress.ip_address(address).reverse_pointer


def normalize_domains(domains: list[str] | tuple[str, ...]) -> list[str]:
    """Normalise and de-duplicate domains, keeping the user's order."""
    if not domains:
        raise BadInput("no domain given: add at least one -d DOMAIN")
    seen: dict[str, None] = {}
    for domain in domains:
        seen.setdefault(normalize_domain(domain), None)
    if len(seen) > 100:
        raise BadInput("too many domains: ACME CAs accept at most 100 names per certificate")
    return list(seen)


def default_cert_name(domain: str) -> str:
    """Derive a certificate name from its first domain (`*.x.org` → `wildcard.x.org`).

    An IPv6 address becomes a safe path component: `2001:db8::1` → `ip6-2001-db8--1`.
    """
    name = "wildcard." + domain[2:] if domain.startswith("*.") else domain
    if ":" in name:
        name = "ip6-" + name.replace(":", "-")
    return check_cert_name(name[:64].rstrip(".-"))


def unicode_domain(domain: str) -> str:
    """The U-label form of a stored (A-label) domain; the domain itself when all ASCII labels.

    A label that does not decode (it never should: domains are checked when ordered)
    is shown as it is.
    """
    if "xn--" not in domain:
        return domain
    import idna

    return ".".join(_unicode_label(label, idna.decode) for label in domain.split("."))


def _unicode_label(label: str, decode: Callable[[str], str]) -> str:
    if not label.startswith("xn--"):
        return label
    try:
        return str(decode(label))
    except (UnicodeError, ValueError):
        return label  # shown as stored


def shown_domain(domain: str) -> str:
    """A domain as people read it: `xn--bcher-kva.de (bücher.de)` when the forms differ."""
    readable = unicode_domain(domain)
    return domain if readable == domain else f"{domain} ({readable})"


def is_cert_name(name: str) -> bool:
    """True when `name` is a valid certificate name (see check_cert_name)."""
    return bool(_CERT_NAME.fullmatch(name)) and ".." not in name


def lookup_domain(given: str) -> str | None:
    """The ACME identifier `given` stands for when it is used in place of a name, else None.

    `*.example.com`, `Example.COM.` and `bücher.de` become their stored forms
    (`*.example.com`, `example.com`, `xn--bcher-kva.de`).
    """
    try:
        return normalize_domain(given)
    except BadInput:
        return None


def refuse_cert_name(given: str) -> BadInput:
    """The error for input that is neither a certificate name nor a domain."""
    return BadInput(
        f"invalid certificate name {_shown(given)}: give a name from 'certctl list' or one of"
        " its certificate's domains (e.g. '*.example.com'); names are 1-64 letters, digits,"
        " '-', '_' or '.', starting with a letter or digit"
    )


def cert_name_for(given: str) -> str:
    """The name a new certificate gets when the user names it (`order --name`, `upload NAME`).

    A valid name is kept; a domain given as a name gets the name certctl derives
    from it (`*.example.com` → `wildcard.example.com`, `bücher.de` → `xn--bcher-kva.de`).
    """
    if is_cert_name(given):
        return given
    domain = lookup_domain(given)
    if domain is None:
        return check_cert_name(given)  # raises, naming what is allowed
    return default_cert_name(domain)
