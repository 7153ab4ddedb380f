"""Is what the CA returned acceptable? The downloaded chain, checked before anything is stored.

RFC 8555 §7.4.2: the certificate URL returns application/pem-certificate-chain, the
end-entity certificate first, then the certificates that certify it. A CA that sends
anything else (an expired or not-yet-valid leaf, a leaf for other names or another
key, a private key or other non-certificate block, a chain whose links do not verify)
is at fault: nothing of it may go live.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from certctl.errors import AcmeError
from certctl.pki.certinfo import (
    MALFORMED,
    CertInfo,
    cert_info,
    key_matches,
    readable_name,
    signed_by,
)
from certctl.pki.keys import load_key

# Clocks differ: a certificate the CA dated a little ahead of this machine's clock is
# accepted up to this far ahead of its notBefore (expiry gets no allowance).
CLOCK_SKEW = timedelta(minutes=5)
_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,64})-----(.*?)-----END \1-----", re.DOTALL)
_ANY_MARKER = re.compile(rb"-----(BEGIN|END) ([^-\r\n]{0,64})-----")


@dataclass(frozen=True)
class IssuedChain:
    """The leaf (PEM), the certificates above it (PEM) and the leaf's facts."""

    cert_pem: bytes
    chain_pem: bytes
    info: CertInfo


def check_issued(fullchain: str, key_pem: bytes, domains: list[str], now: datetime) -> IssuedChain:
    """The CA's chain if the leaf is valid now for exactly `domains` and the key; else AcmeError."""
    certs = _certificates(fullchain.encode("utf-8", "replace"))
    leaf = certs[0]
    info = cert_info(leaf)
    if not key_matches(leaf, load_key(key_pem, "the order's private key")):
        raise AcmeError("the CA returned a certificate for another key than the order's")
    _check_names(info, domains)
    if info.not_before > now + CLOCK_SKEW:
        raise AcmeError(
            f"the CA returned a certificate that is not valid before"
            f" {info.not_before:%Y-%m-%d %H:%M:%S} UTC (now {now:%Y-%m-%d %H:%M:%S} UTC; check"
            " this machine's clock if that is wrong)"
        )
    if info.not_after <= now:
        raise AcmeError(
            f"the CA returned a certificate that expired at {info.not_after:%Y-%m-%d %H:%M:%S} UTC"
        )
    for position, (child, issuer) in enumerate(itertools.pairwise(certs), start=1):
        if not signed_by(child, issuer):
            raise AcmeError(
                f"the CA returned a chain whose link {position} does not verify:"
                f" {readable_name(child.subject)!r} is not signed by the next certificate,"
                f" {readable_name(issuer.subject)!r}"
            )
    from cryptography.hazmat.primitives.serialization import Encoding

    chain = b"".join(c.public_bytes(Encoding.PEM) for c in certs[1:])
    return IssuedChain(leaf.public_bytes(Encoding.PEM), chain, info)


def _certificates(data: bytes) -> list[x509.Certificate]:
    """Every PEM block, each a certificate, nothing but whitespace between them."""
    certs = []
    rest = data
    for block in _BLOCK.finditer(data):
        label = block.group(1).decode("ascii")
        if label != "CERTIFICATE":
            raise AcmeError(
                f"the CA returned a {label} block in the certificate chain (only certificates"
                " belong there)"
            )
        try:
            certs.append(x509.load_pem_x509_certificate(block.group(0)))
        except MALFORMED:
            raise AcmeError(
                f"the CA returned a certificate that cannot be parsed (number {len(certs) + 1})"
            ) from None
        rest = rest.replace(block.group(0), b"", 1)
    stray = _ANY_MARKER.search(rest)
    if stray is not None:
        label = stray.group(2).decode("ascii", "replace")
        raise AcmeError(f"the CA returned a broken {label or 'PEM'} block in the certificate chain")
    if rest.strip():
        raise AcmeError("the CA returned text that is not a certificate in the certificate chain")
    if not certs:
        raise AcmeError("the CA returned no certificate")
    return certs


def _check_names(info: CertInfo, domains: list[str]) -> None:
    """The leaf must name exactly the ordered domains."""
    have = {n.lower() for n in info.names}
    wanted = {d.lower() for d in domains}
    missing, extra = sorted(wanted - have), sorted(have - wanted)
    if missing or extra:
        named = ", ".join(sorted(have)) or "no names"
        raise AcmeError(
            f"the CA returned a certificate for {named}, not for the order's"
            f" {', '.join(sorted(wanted))}"
        )
