"""Check that challenge responses are visible, the way the CA will look, before telling it.

A failed validation at the CA costs rate limit (Let's Encrypt: 5 failures per
name per hour), so `verify` only answers the CA once these checks pass.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from certctl.models import Challenge

HTTP_TIMEOUT = 5.0
DNS_TIMEOUT = 3.0
MAX_BODY = 4096


@dataclass(frozen=True)
class Finding:
    """One challenge that is not visible yet: what was expected and what was seen."""

    domain: str
    where: str
    expected: str
    seen: str

    def __str__(self) -> str:
        return f"{self.domain}: {self.where}: expected {self.expected!r}, saw {self.seen}"


def _resolver(resolvers: Sequence[tuple[str, int]]) -> object:
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=not resolvers)
    if resolvers:
        resolver.nameservers = [ip for ip, _ in resolvers]
        resolver.port = resolvers[0][1]
    resolver.lifetime = DNS_TIMEOUT
    return resolver


def _addresses(domain: str, resolvers: Sequence[tuple[str, int]]) -> list[str]:
    """A/AAAA addresses of `domain`, through the configured resolvers or the system's."""
    if not resolvers:
        try:
            infos = socket.getaddrinfo(domain, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror:
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in infos))
    import dns.exception
    import dns.resolver

    resolver = _resolver(resolvers)
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = resolver.resolve(domain, rdtype)  # type: ignore[attr-defined]
        except dns.exception.DNSException:
            continue
        found.extend(str(r) for r in answer)
    return found


def check_http(
    challenges: Sequence[Challenge], port: int, resolvers: Sequence[tuple[str, int]]
) -> list[Finding]:
    """GET each http-01 URL at every address of its domain, as the CA will."""
    findings = []
    for challenge in challenges:
        if challenge.type != "http-01" or challenge.status == "valid":
            continue
        path = challenge.record_name
        where = f"http://{challenge.domain}{'' if port == 80 else f':{port}'}{path}"
        addresses = _addresses(challenge.domain, resolvers)
        if not addresses:
            findings.append(Finding(challenge.domain, where, challenge.validation, "no address"))
            continue
        for address in addresses:
            seen = _fetch(address, port, challenge.domain, path)
            if seen != challenge.validation:
                shown = seen if seen.startswith(("HTTP ", "no ", "connection")) else repr(seen)
                findings.append(
                    Finding(challenge.domain, f"{where} at {address}", challenge.validation, shown)
                )
    return findings


def _fetch(address: str, port: int, host: str, path: str) -> str:
    """The body served at http://address:port/path for Host `host`, or what went wrong."""
    connection = http.client.HTTPConnection(address, port, timeout=HTTP_TIMEOUT)
    try:
        connection.request("GET", path, headers={"Host": host, "User-Agent": "certctl-selfcheck"})
        response = connection.getresponse()
        body = response.read(MAX_BODY)
        if response.status != 200:
            location = response.getheader("Location")
            return f"HTTP {response.status}" + (f" redirect to {location}" if location else "")
        return body.decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException) as e:
        return f"connection failed ({e.__class__.__name__}: {e})"
    finally:
        connection.close()


def check_dns(
    challenges: Sequence[Challenge], resolvers: Sequence[tuple[str, int]]
) -> list[Finding]:
    """Look up each dns-01 TXT record at the zone's authoritative servers (or the resolvers)."""
    findings = []
    for challenge in challenges:
        if challenge.type != "dns-01" or challenge.status == "valid":
            continue
        name = challenge.record_name
        if resolvers:
            sources = {
                f"resolver {ip}:{port}": _txt_via(name, [(ip, port)]) for ip, port in resolvers
            }
        else:
            sources = txt_at_authoritative(name)
        for source, values in sources.items():
            if challenge.validation not in values:
                seen = ", ".join(repr(v) for v in values) if values else "no TXT record"
                findings.append(
                    Finding(challenge.domain, f"TXT {name} at {source}", challenge.validation, seen)
                )
    return findings


def _txt_via(name: str, resolvers: Sequence[tuple[str, int]]) -> list[str]:
    import dns.exception

    resolver = _resolver(resolvers)
    try:
        answer = resolver.resolve(name, "TXT")  # type: ignore[attr-defined]
    except dns.exception.DNSException:
        return []
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


def txt_at_authoritative(name: str, max_cnames: int = 8) -> dict[str, list[str]]:
    """TXT values of `name` at each authoritative server, following a CNAME (delegation)."""
    import dns.exception
    import dns.message
    import dns.name
    import dns.query
    import dns.rdatatype
    import dns.resolver

    target = dns.name.from_text(name)
    for _ in range(max_cnames):
        try:
            zone = dns.resolver.zone_for_name(target, lifetime=DNS_TIMEOUT)
            servers = _authoritative_addresses(zone)
        except dns.exception.DNSException as e:
            return {f"the authoritative servers of {target}": [f"lookup failed: {e}"]}
        results: dict[str, list[str]] = {}
        cname: dns.name.Name | None = None
        for server in servers:
            query = dns.message.make_query(target, dns.rdatatype.TXT)
            try:
                response, _ = dns.query.udp_with_fallback(query, server, timeout=DNS_TIMEOUT)
            except (dns.exception.DNSException, OSError) as e:
                results[f"{server} ({zone})"] = [f"no answer: {e.__class__.__name__}"]
                continue
            values: list[str] = []
            for rrset in response.answer:
                if rrset.rdtype == dns.rdatatype.CNAME and rrset.name == target:
                    cname = rrset[0].target
                elif rrset.rdtype == dns.rdatatype.TXT:
                    values.extend(b"".join(r.strings).decode("utf-8", "replace") for r in rrset)
            results[f"{server} ({zone})"] = values
        if cname is None or any(results.values()):
            return results
        target = cname  # RFC 8555 §8.4 allows the CA to follow CNAMEs: so do we
    return {name: ["CNAME chain too long"]}


def _authoritative_addresses(zone: object) -> list[str]:
    import dns.resolver

    addresses: list[str] = []
    for ns in dns.resolver.resolve(zone, "NS", lifetime=DNS_TIMEOUT):  # type: ignore[arg-type]
        for rdtype in ("A", "AAAA"):
            try:
                answer = dns.resolver.resolve(ns.target, rdtype, lifetime=DNS_TIMEOUT)
            except dns.resolver.NoAnswer:
                continue
            addresses.extend(str(r) for r in answer)
    return addresses
