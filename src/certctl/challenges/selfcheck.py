"""Check that challenge responses are visible, the way the CA will look, before telling it.

A failed validation at the CA costs rate limit (Let's Encrypt: 5 failures per
name per hour), so `verify` only answers the CA once these checks pass. When a
lookup fails, the finding names the cause (timeout, SERVFAIL, REFUSED, NXDOMAIN,
no record), so "the resolver is down" is never reported as "not published".
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from certctl.models import Challenge
from certctl.policy import hints

HTTP_TIMEOUT = 5.0
DNS_TIMEOUT = 3.0
MAX_BODY = 4096
MAX_CNAMES = 8


@dataclass(frozen=True)
class Finding:
    """One challenge that is not visible yet: what was expected and what was seen."""

    domain: str
    where: str
    expected: str
    seen: str
    lookup_failed: bool = False  # the DNS itself failed (timeout, SERVFAIL, REFUSED)

    def __str__(self) -> str:
        return f"{self.domain}: {self.where}: expected {self.expected!r}, saw {self.seen}"


def next_step(findings: Sequence[Finding], name: str) -> str:
    """What the user should do about these findings (the end of verify's message)."""
    again = f"then run again: {hints.verify(name)}"
    if findings and all(f.lookup_failed for f in findings):
        return f" — the DNS lookup itself failed: fix the resolver or name server, {again}"
    return f" — publish it, {again}"


@dataclass(frozen=True)
class Lookup:
    """One DNS question's outcome at one server: the values, or why there are none."""

    values: list[str] = field(default_factory=list)
    problem: str | None = None  # set when values is empty: the cause, for the user
    failed: bool = False  # the server did not give a usable answer (not "no record")
    nxdomain: bool = False
    cname: object = None  # dns.name.Name: the CNAME target, when the name is an alias


def _where(server: tuple[str, int]) -> str:
    ip, port = server
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def ask(name: str | object, rdtype: str, server: tuple[str, int], *, recurse: bool) -> Lookup:
    """Ask one server one question; classify what came back (RFC 1035 §4.1.1 RCODEs)."""
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdatatype

    qname = name if isinstance(name, dns.name.Name) else dns.name.from_text(str(name))
    wanted = dns.rdatatype.from_text(rdtype)
    request = dns.message.make_query(qname, wanted)
    if not recurse:
        request.flags &= ~dns.flags.RD
    who = f"{'resolver' if recurse else 'name server'} {_where(server)}"
    try:
        response, _ = dns.query.udp_with_fallback(
            request, server[0], timeout=DNS_TIMEOUT, port=server[1]
        )
    except dns.exception.Timeout:
        return Lookup(problem=f"timeout: {who} did not answer within {DNS_TIMEOUT:g}s", failed=True)
    except (OSError, dns.exception.DNSException) as e:
        return Lookup(problem=f"no answer from {who} ({e.__class__.__name__}: {e})", failed=True)
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        shown = qname.to_text(omit_final_dot=True)
        return Lookup(problem=f"NXDOMAIN from {who}: {shown} does not exist", nxdomain=True)
    if rcode == dns.rcode.SERVFAIL:
        return Lookup(
            problem=f"SERVFAIL from {who}: it could not resolve the name (the zone's name"
            " servers are unreachable or broken, or DNSSEC failed)",
            failed=True,
        )
    if rcode == dns.rcode.REFUSED:
        return Lookup(
            problem=f"REFUSED from {who}: it does not answer this query for this machine"
            " (not a resolver for us, or not authoritative)",
            failed=True,
        )
    if rcode != dns.rcode.NOERROR:
        return Lookup(problem=f"{dns.rcode.to_text(rcode)} from {who}", failed=True)
    values: list[str] = []
    cname = None
    for rrset in response.answer:
        if rrset.rdtype == wanted:
            if wanted == dns.rdatatype.TXT:
                values.extend(b"".join(r.strings).decode("utf-8", "replace") for r in rrset)
            else:
                values.extend(str(r) for r in rrset)
        elif rrset.rdtype == dns.rdatatype.CNAME and rrset.name == qname:
            cname = rrset[0].target
    if values:
        return Lookup(values=values)
    return Lookup(problem=f"no {rdtype} record at {who}", cname=cname)


def _addresses(
    domain: str, resolvers: Sequence[tuple[str, int]]
) -> tuple[list[str], str | None, bool]:
    """A/AAAA addresses of `domain` through the configured resolvers (or the system's),
    why there are none, and whether the lookup itself failed."""
    if not resolvers:
        try:
            infos = socket.getaddrinfo(domain, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror as e:
            failed = e.errno in (socket.EAI_AGAIN, socket.EAI_FAIL)
            cause = "timeout or SERVFAIL" if failed else "NXDOMAIN or no A/AAAA record"
            return [], f"the system resolver found none: {cause} ({e.strerror})", failed
        return list(dict.fromkeys(str(info[4][0]) for info in infos)), None, False
    problems: list[str] = []
    for server in resolvers:  # in order, as a stub resolver fails over
        first = ask(domain, "A", server, recurse=True)
        if first.failed:  # the other type would fail (and wait) the same way
            problems.append(str(first.problem))
            continue
        if first.nxdomain:
            return [], first.problem, False
        second = ask(domain, "AAAA", server, recurse=True)
        if second.values or first.values:
            return first.values + second.values, None, False
        if second.failed:
            problems.append(str(second.problem))
            continue
        return [], f"no A or AAAA record at resolver {_where(server)}", False
    return [], "; ".join(problems), True


def check_http(
    challenges: Sequence[Challenge], port: int, resolvers: Sequence[tuple[str, int]]
) -> list[Finding]:
    """GET each http-01 URL at every address of its domain, as the CA will."""
    findings = []
    for challenge in challenges:
        if challenge.type != "http-01" or challenge.status == "valid":
            continue
        path = challenge.record_name
        where = f"http://{challenge.host}{'' if port == 80 else f':{port}'}{path}"
        addresses, problem, failed = _host_addresses(challenge.domain, resolvers)
        if not addresses:
            findings.append(
                Finding(
                    challenge.domain, where, challenge.validation, f"no address: {problem}", failed
                )
            )
            continue
        for address in addresses:
            seen = _fetch(address, port, challenge.host, path)
            if seen != challenge.validation:
                shown = seen if seen.startswith(("HTTP ", "no ", "connection")) else repr(seen)
                findings.append(
                    Finding(challenge.domain, f"{where} at {address}", challenge.validation, shown)
                )
    return findings


def check_tls_alpn(
    challenges: Sequence[Challenge], port: int, resolvers: Sequence[tuple[str, int]]
) -> list[Finding]:
    """Handshake with ALPN acme-tls/1 at every address of each name, as the CA will (RFC 8737)."""
    from certctl.challenges.tlsalpn import read_challenge

    findings = []
    for challenge in challenges:
        if challenge.type != "tls-alpn-01" or challenge.status == "valid":
            continue
        where = f"acme-tls/1 at {challenge.host}:{port}"
        addresses, problem, failed = _host_addresses(challenge.domain, resolvers)
        if not addresses:
            findings.append(
                Finding(
                    challenge.domain,
                    where,
                    "the challenge certificate",
                    f"no address: {problem}",
                    failed,
                )
            )
        for address in addresses:
            seen = read_challenge(address, port, challenge.domain, challenge.validation)
            if seen is not None:
                findings.append(
                    Finding(
                        challenge.domain, f"{where} at {address}", "the challenge certificate", seen
                    )
                )
    return findings


def _host_addresses(
    domain: str, resolvers: Sequence[tuple[str, int]]
) -> tuple[list[str], str | None, bool]:
    """An IP identifier is its own address (RFC 8738); a name is looked up."""
    from certctl.policy.names import ip_address_of

    address = ip_address_of(domain)
    return ([address], None, False) if address else _addresses(domain, resolvers)


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


def txt_sources(name: str, resolvers: Sequence[tuple[str, int]]) -> dict[str, Lookup]:
    """The TXT answers for `name` by source: each resolver given, else each authoritative one."""
    if resolvers:
        return {
            f"resolver {_where(server)}": ask(name, "TXT", server, recurse=True)
            for server in resolvers
        }
    return txt_at_authoritative(name)


def check_dns(
    challenges: Sequence[Challenge], resolvers: Sequence[tuple[str, int]]
) -> list[Finding]:
    """Look up each dns-01 TXT record at the zone's authoritative servers (or the resolvers)."""
    findings = []
    for challenge in challenges:
        if challenge.type != "dns-01" or challenge.status == "valid":
            continue
        for source, result in txt_sources(challenge.record_name, resolvers).items():
            if challenge.validation not in result.values:
                seen = ", ".join(repr(v) for v in result.values) or str(result.problem)
                findings.append(
                    Finding(
                        challenge.domain,
                        f"TXT {challenge.record_name} at {source}",
                        challenge.validation,
                        seen,
                        result.failed,
                    )
                )
    return findings


def txt_at_authoritative(name: str, max_cnames: int = MAX_CNAMES) -> dict[str, Lookup]:
    """TXT values of `name` at each authoritative server, following a CNAME (delegation)."""
    import dns.exception
    import dns.name
    import dns.resolver

    target = dns.name.from_text(name)
    for _ in range(max_cnames):
        try:
            zone = dns.resolver.zone_for_name(target, lifetime=DNS_TIMEOUT)
            servers = _authoritative_addresses(zone)
        except dns.exception.DNSException as e:
            where = f"the authoritative servers of {target}"
            return {where: Lookup(problem=f"lookup failed: {e}", failed=True)}
        results = {
            f"{server} ({zone})": ask(target, "TXT", (server, 53), recurse=False)
            for server in servers
        }
        cname = next((r.cname for r in results.values() if r.cname is not None), None)
        if cname is None or any(r.values for r in results.values()):
            return results
        target = cname  # type: ignore[assignment]  # RFC 8555 §8.4: the CA follows CNAMEs
    return {name: Lookup(problem="CNAME chain too long", failed=True)}


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
