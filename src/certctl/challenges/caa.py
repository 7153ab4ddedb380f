"""The CAA self-check: read the relevant CAA set (RFC 8659 §3) the way the CA will.

Climbs from each name towards the root until a name has CAA records, asking the
configured resolvers, else the zone's authoritative servers. A lookup that fails
is not reported here: the CA's own check decides then.
"""

from __future__ import annotations

from collections.abc import Sequence

from certctl.challenges.selfcheck import DNS_TIMEOUT, Finding, Lookup, ask
from certctl.models import Challenge
from certctl.policy import hints
from certctl.policy.caa import CaaRecord, parse, refusal
from certctl.policy.names import ip_address_of


def caa_set(domain: str, resolvers: Sequence[tuple[str, int]]) -> tuple[str, list[CaaRecord]]:
    """(the name holding it, the records) of the relevant CAA set; ("", []) when none."""
    labels = domain.removeprefix("*.").split(".")
    for at in range(len(labels) - 1):
        name = ".".join(labels[at:])
        lookup = _lookup(name, resolvers)
        if lookup.failed:
            return "", []  # left to the CA's own check (RFC 8659 §3: it may refuse then)
        records = [r for r in (parse(v) for v in lookup.values) if r is not None]
        if records:
            return name, records
    return "", []


def _lookup(name: str, resolvers: Sequence[tuple[str, int]]) -> Lookup:
    if resolvers:
        return ask(name, "CAA", resolvers[0], recurse=True)
    import dns.exception
    import dns.name
    import dns.resolver

    from certctl.challenges.selfcheck import _authoritative_addresses

    try:
        zone = dns.resolver.zone_for_name(dns.name.from_text(name), lifetime=DNS_TIMEOUT)
        servers = _authoritative_addresses(zone)
    except dns.exception.DNSException as e:
        return Lookup(problem=str(e), failed=True)
    for server in servers:
        result = ask(name, "CAA", (server, 53), recurse=False)
        if not result.failed:
            return result
    return Lookup(problem="no authoritative server answered", failed=True)


def check_caa(
    challenges: Sequence[Challenge],
    issuers: Sequence[str],
    account_uri: str,
    resolvers: Sequence[tuple[str, int]],
) -> list[Finding]:
    """A finding per name whose CAA set would make the CA refuse this account or method."""
    findings = []
    for challenge in challenges:
        if challenge.status == "valid" or ip_address_of(challenge.domain):
            continue  # RFC 8738 §7: CAA does not apply to IP addresses
        name, records = caa_set(challenge.domain, resolvers)
        wildcard = challenge.domain.startswith("*.")
        refused = refusal(records, issuers, account_uri, challenge.type, wildcard)
        if refused:
            listed = "; ".join(f"{name}. CAA {r}" for r in refused)
            findings.append(
                Finding(
                    challenge.domain,
                    f"CAA {name}.",
                    f"a record allowing {', '.join(issuers)} for {account_uri} by {challenge.type}",
                    f"{listed} (the CA would refuse: see"
                    f" {hints.caa_records(challenge.domain.removeprefix('*.'))})",
                )
            )
    return findings
