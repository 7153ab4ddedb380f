"""What an endpoint served, judged against what certctl holds: DER in, a verdict out.

The verdicts (README "Watching what is served"), most urgent first: `expired`,
`name-mismatch`, `unknown` (a certificate this store never held), `older` (a
previous version), `chain-incomplete` (an intermediate of the live version not
sent, or a chain whose links don't verify), `served` (the live version, complete).
`unreachable` comes from the handshake, never from here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from certctl.pki.certinfo import (
    MALFORMED,
    clean,
    fingerprint,
    name_of,
    readable_name,
    serial_hex,
    signed_by,
)

SERVED = "served"
OLDER = "older"
UNKNOWN = "unknown"
EXPIRED = "expired"
NAME_MISMATCH = "name-mismatch"
CHAIN_INCOMPLETE = "chain-incomplete"
UNREACHABLE = "unreachable"
VERDICTS = (SERVED, OLDER, UNKNOWN, EXPIRED, NAME_MISMATCH, CHAIN_INCOMPLETE, UNREACHABLE)


@dataclass(frozen=True)
class Served:
    """Facts about the leaf an endpoint sent (None where the chain could not be read)."""

    serial: str | None = None
    fingerprint: str | None = None
    not_after: datetime | None = None
    names: tuple[str, ...] = ()
    version: int | None = None  # which stored version it is, if any


@dataclass(frozen=True)
class Verdict:
    """One endpoint's verdict and the one line that explains it."""

    status: str
    detail: str
    served: Served


def pem_fingerprint(pem: bytes) -> str | None:
    """The SHA-256 fingerprint of a stored version's cert.pem, or None if unreadable."""
    try:
        return fingerprint(x509.load_pem_x509_certificate(pem))
    except MALFORMED:
        return None


def judge(
    chain: list[bytes],
    *,
    server_name: str,
    live_version: int | None,
    live_chain_pem: bytes,
    version_of: Callable[[str], int | None],
    now: datetime,
) -> Verdict:
    """Judge the served `chain` (DER, as sent) for a client asking for `server_name`.

    `version_of(fingerprint)` names the stored version with that leaf (None: unknown);
    `live_chain_pem` is the live version's intermediates, which must all be sent.
    """
    try:
        certs = [x509.load_der_x509_certificate(der) for der in chain]
        leaf = certs[0]
        names = tuple(_dns_names(leaf))
        facts = Served(serial_hex(leaf.serial_number), fingerprint(leaf), leaf.not_valid_after_utc)
    except (*MALFORMED, IndexError):
        return Verdict(UNKNOWN, "the server sent no readable certificate", Served())
    version = version_of(facts.fingerprint or "")
    facts = Served(facts.serial, facts.fingerprint, facts.not_after, names, version)
    which = f"version {version}" if version is not None else f"serial {facts.serial}"
    if facts.not_after is not None and facts.not_after <= now:
        return Verdict(EXPIRED, f"{which} expired {facts.not_after:%Y-%m-%d %H:%M} UTC", facts)
    if not leaf.not_valid_before_utc <= now:
        return Verdict(
            EXPIRED,
            f"{which} is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            facts,
        )
    if not any(name_matches(pattern, server_name) for pattern in names):
        shown = ", ".join(names[:5]) or "no DNS names"
        return Verdict(NAME_MISMATCH, f"{which} is for {shown}, not {server_name}", facts)
    if version is None:
        return Verdict(
            UNKNOWN,
            f"a certificate this store never held (serial {facts.serial}, issuer {_issuer(leaf)})",
            facts,
        )
    if version != live_version:
        return Verdict(OLDER, f"older version {version}, not the live {live_version}", facts)
    missing = _chain_problem(certs, live_chain_pem)
    if missing:
        return Verdict(CHAIN_INCOMPLETE, missing, facts)
    return Verdict(SERVED, f"live version {version}", facts)


def name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 §6.4: `pattern` (a SAN, `*.` only as the whole left label) covers `host`."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern == host:
        return True
    if pattern.startswith("*."):
        head, dot, rest = host.partition(".")
        return bool(head and dot) and rest == pattern[2:]
    return False


def _dns_names(cert: x509.Certificate) -> list[str]:
    """The DNS and IP SANs of a leaf (no CN fallback: RFC 6125 §6.4.4 for new certificates)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(san.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


def _issuer(cert: x509.Certificate) -> str:
    return clean(readable_name(cert.issuer))


def _chain_problem(served: list[x509.Certificate], live_chain_pem: bytes) -> str | None:
    """Why the served chain is incomplete or broken, or None."""
    for child, parent in itertools.pairwise(served):
        if not signed_by(child, parent):
            return (
                f"the chain does not link: {name_of(child)} is not signed by the next certificate"
                f" sent ({name_of(parent)})"
            )
    try:
        wanted = x509.load_pem_x509_certificates(live_chain_pem) if live_chain_pem.strip() else []
    except MALFORMED:
        wanted = []
    sent = {fingerprint(c) for c in served}
    missing = [c for c in wanted if fingerprint(c) not in sent and not _self_signed(c)]
    if missing:
        names = ", ".join(name_of(c) for c in missing)
        which = "intermediates" if len(missing) > 1 else "intermediate"
        return f"the live version, but without the {which} {names}"
    return None


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and signed_by(cert, cert)
