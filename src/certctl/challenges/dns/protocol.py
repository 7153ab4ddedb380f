"""DNS plumbing for DNS-01: RFC 2136 updates signed with TSIG (RFC 8945), zones, propagation.

Every query here goes straight to one server (recursion not desired), so the
answers are the authoritative servers' own, not a resolver's cache.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.resolver
import dns.tsig
import dns.update

from certctl.errors import BadInput, OperationFailed

DEFAULT_ALGORITHM = "hmac-sha256"
ALGORITHMS = (
    "hmac-md5",
    "hmac-sha1",
    "hmac-sha224",
    "hmac-sha256",
    "hmac-sha256-128",
    "hmac-sha384",
    "hmac-sha384-192",
    "hmac-sha512",
    "hmac-sha512-256",
)
QUERY_TIMEOUT = 5.0
RECORD_TTL = 60
MAX_CNAMES = 8
_KEYFILE_SECRET = re.compile(r'secret\s+"([^"]+)"')


@dataclass(frozen=True)
class Server:
    """A name server's address and port."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_server(value: str, option: str) -> Server:
    """Parse IP, IP:PORT or [IPv6]:PORT; BadInput naming `option` otherwise."""
    host, port_text = value, ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise BadInput(
            f"invalid {option} {value!r}: expected IP[:PORT], e.g. 192.0.2.53:53"
        ) from None
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise BadInput(f"invalid port in {option} {value!r}: expected 1-65535")
    return Server(host, int(port_text) if port_text else 53)


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key (RFC 8945); the secret never appears in repr() or messages."""

    name: str
    algorithm: str
    secret: bytes = field(repr=False)

    def dnspython(self) -> dns.tsig.Key:
        """The key as dnspython signs with it."""
        return dns.tsig.Key(self.name, self.secret, self.algorithm)


def read_secret(secret_file: str | None, secret_env: str | None) -> bytes:
    """The TSIG secret from a file (bare base64 or a BIND key clause) or an env variable."""
    if secret_file:
        try:
            text = Path(secret_file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BadInput(
                f"cannot read the TSIG secret file {secret_file}: {e.__class__.__name__}"
            ) from None
        found = _KEYFILE_SECRET.search(text)
        text, source = (found.group(1) if found else text), f"file {secret_file}"
    elif secret_env:
        if not os.environ.get(secret_env):
            raise BadInput(
                f"environment variable {secret_env} (the TSIG secret) is not set or empty"
            )
        text, source = os.environ[secret_env], f"variable {secret_env}"
    else:
        raise BadInput("no TSIG secret: pass --tsig-secret-file FILE or --tsig-secret-env VAR")
    try:
        secret = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(
            f"the TSIG secret in {source} is not base64 (as tsig-keygen prints it)"
        ) from None
    if not secret:
        raise BadInput(f"the TSIG secret in {source} is empty")
    return secret


def show(name: dns.name.Name) -> str:
    """A name as users write it (no final dot)."""
    return name.to_text(omit_final_dot=True)


# ---- queries ------------------------------------------------------------------------------


class Unreachable(OperationFailed):
    """A name server did not answer."""


def query(
    server: Server, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.message.Message:
    """Ask `server` directly, without recursion; Unreachable when it does not answer."""
    request = dns.message.make_query(name, rdtype)
    request.flags &= ~dns.flags.RD
    try:
        response, _ = dns.query.udp_with_fallback(
            request, server.host, timeout=QUERY_TIMEOUT, port=server.port
        )
    except dns.exception.Timeout:
        raise Unreachable(f"did not answer within {QUERY_TIMEOUT:.0f}s") from None
    except (OSError, dns.exception.DNSException) as e:
        raise Unreachable(f"failed to answer ({e.__class__.__name__}: {e})") from None
    return response


def _authoritative(response: dns.message.Message) -> bool:
    return bool(response.flags & dns.flags.AA) and response.rcode() in (
        dns.rcode.NOERROR,
        dns.rcode.NXDOMAIN,
    )


def follow_cname(name: str, server: Server | None) -> dns.name.Name:
    """Where `name` really lives: the end of its CNAME chain (RFC 8555 §8.4 lets the CA follow it).

    `server` is asked first; where it is not authoritative, the system resolver is.
    """
    target = dns.name.from_text(name)
    for _ in range(MAX_CNAMES):
        known, cname = _cname_at(server, target) if server is not None else (False, None)
        if not known:
            cname = _cname_via_resolver(target)
        if cname is None:
            return target
        target = cname
    raise OperationFailed(f"CNAME chain from {name} is longer than {MAX_CNAMES}: fix the DNS")


def _cname_at(server: Server, name: dns.name.Name) -> tuple[bool, dns.name.Name | None]:
    """(whether `server` answered with authority, the CNAME target it gave)."""
    try:
        response = query(server, name, dns.rdatatype.CNAME)
    except Unreachable as e:
        raise Unreachable(f"DNS server {server} {e} (looking up {show(name)})") from None
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.CNAME and rrset.name == name:
            target: dns.name.Name = rrset[0].target
            return True, target
    return _authoritative(response), None


def _cname_via_resolver(name: dns.name.Name) -> dns.name.Name | None:
    try:
        answer = dns.resolver.resolve(name, "CNAME", lifetime=QUERY_TIMEOUT)
    except dns.exception.DNSException:
        return None  # no CNAME, or no resolver: then the name is used as it is
    target: dns.name.Name = answer[0].target
    return target


def find_zone(server: Server, name: dns.name.Name) -> dns.name.Name:
    """The zone holding `name` at `server`: walk up the labels until an SOA answers."""
    candidate, last = name, "no answer"
    while True:
        try:
            response = query(server, candidate, dns.rdatatype.SOA)
        except Unreachable as e:
            raise Unreachable(
                f"DNS server {server} {e} (finding the zone of {show(name)})"
            ) from None
        if _authoritative(response):
            # the SOA is in the answer at the apex, or in the authority section of a
            # negative answer below it (RFC 2308 §3)
            for rrset in (*response.answer, *response.authority):
                if rrset.rdtype == dns.rdatatype.SOA:
                    return rrset.name
        last = dns.rcode.to_text(response.rcode())
        if candidate == dns.name.root:
            break
        candidate = candidate.parent()
    raise OperationFailed(
        f"zone not found: DNS server {server} is authoritative for no zone holding {show(name)}"
        f" (it answered {last}); check --dns-server, or pass --dns-zone"
    )


def zone_nameservers(server: Server, zone: dns.name.Name) -> list[Server]:
    """The zone's NS set at port 53, as `server` (authoritative for it) publishes it."""
    try:
        response = query(server, zone, dns.rdatatype.NS)
    except Unreachable as e:
        raise Unreachable(
            f"DNS server {server} {e} (listing the name servers of zone {show(zone)})"
        ) from None
    targets = [
        r.target for rrset in response.answer if rrset.rdtype == dns.rdatatype.NS for r in rrset
    ]
    glue = {
        rrset.name: [r.address for r in rrset]
        for rrset in response.additional
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
    }
    return _addresses(zone, targets, glue)


def resolver_nameservers(name: dns.name.Name) -> tuple[dns.name.Name, list[Server]]:
    """The zone of `name` and its NS set at port 53, found through the system resolver."""
    try:
        zone = dns.resolver.zone_for_name(name, lifetime=QUERY_TIMEOUT)
        answer = dns.resolver.resolve(zone, "NS", lifetime=QUERY_TIMEOUT)
    except dns.exception.DNSException as e:
        raise OperationFailed(
            f"cannot find the authoritative servers of {show(name)} ({e.__class__.__name__});"
            " pass --dns-nameserver IP[:PORT]"
        ) from None
    return zone, _addresses(zone, [r.target for r in answer], {})


def _addresses(
    zone: dns.name.Name, targets: Iterable[dns.name.Name], glue: dict[dns.name.Name, list[str]]
) -> list[Server]:
    servers: list[Server] = []
    for target in targets:
        found = list(glue.get(target, []))
        for rdtype in ("A", "AAAA") if not found else ():
            try:
                found += [
                    r.address for r in dns.resolver.resolve(target, rdtype, lifetime=QUERY_TIMEOUT)
                ]
            except dns.exception.DNSException:
                continue
        if not found:
            raise OperationFailed(f"name server {show(target)} of zone {show(zone)} has no address")
        servers += [Server(address) for address in found]
    if not servers:
        raise OperationFailed(f"zone {show(zone)} lists no name servers")
    return list(dict.fromkeys(servers))


# ---- RFC 2136 update ----------------------------------------------------------------------


def _txt(value: str) -> dns.rdtypes.ANY.TXT.TXT:
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [value.encode()])


def update_txt(
    server: Server,
    zone: dns.name.Name,
    key: TsigKey,
    records: Sequence[tuple[dns.name.Name, str]],
    *,
    delete: bool = False,
) -> None:
    """Add (RFC 2136 §2.5.1) or delete exactly (§2.5.4) these TXT values in one signed update."""
    message = dns.update.UpdateMessage(zone)
    for name, value in records:
        if delete:
            message.delete(name, _txt(value))
        else:
            message.add(name, RECORD_TTL, _txt(value))
    message.use_tsig(key.dnspython())
    where = f"DNS server {server} (zone {show(zone)})"
    try:
        response = dns.query.tcp(message, server.host, timeout=QUERY_TIMEOUT, port=server.port)
    except dns.tsig.PeerBadKey:  # RFC 8945 §5.2.1
        raise OperationFailed(
            f"{where} does not know TSIG key {key.name!r} with {key.algorithm} (BADKEY):"
            " check --tsig-key and --tsig-algorithm against the server's key clause"
        ) from None
    except dns.tsig.PeerBadSignature:  # RFC 8945 §5.2.2
        raise OperationFailed(
            f"{where} rejected the TSIG signature of key {key.name!r} (BADSIG):"
            " the secret does not match the server's"
        ) from None
    except dns.tsig.PeerBadTime:  # RFC 8945 §5.2.3: the fudge is 300 s
        raise OperationFailed(
            f"{where} rejected the TSIG time (BADTIME): this machine's clock must be within"
            " 5 minutes of the server's; fix NTP"
        ) from None
    except (dns.tsig.PeerError, dns.tsig.BadSignature, dns.tsig.BadKey, dns.tsig.BadTime) as e:
        raise OperationFailed(f"{where}: TSIG failed ({e.__class__.__name__})") from None
    except dns.exception.Timeout:
        raise Unreachable(
            f"{where} did not answer within {QUERY_TIMEOUT:.0f}s: is it running and reachable?"
        ) from None
    except (OSError, dns.exception.DNSException) as e:
        raise Unreachable(f"{where} is unreachable ({e.__class__.__name__}: {e})") from None
    rcode = response.rcode()
    if rcode == dns.rcode.NOERROR:
        return
    if rcode == dns.rcode.REFUSED:  # RFC 2136 §3.3: the update is not permitted
        raise OperationFailed(
            f"{where} refused the update (REFUSED): its update-policy must grant key"
            f" {key.name!r} TXT records there"
        )
    if rcode == dns.rcode.NOTAUTH:  # RFC 2136 §3.1.1: not authoritative for the zone
        raise OperationFailed(
            f"{where} is not authoritative for the zone (NOTAUTH):"
            " check --dns-zone and --dns-server"
        )
    raise OperationFailed(f"{where} rejected the update ({dns.rcode.to_text(rcode)})")


# ---- propagation --------------------------------------------------------------------------


@dataclass
class Expectation:
    """One TXT name that one authoritative server must serve with these values."""

    server: Server
    zone: str
    name: dns.name.Name
    values: set[str]
    seen: str = "not asked yet"
    source: str = ""  # why this server is asked, e.g. "given with --dns-nameserver"
    answered: bool = True  # False while the server gives no usable answer at all

    def satisfied(self) -> bool:
        """Ask the server once; remember what it said (no answer, NXDOMAIN, old values...)."""
        try:
            response = query(self.server, self.name, dns.rdatatype.TXT)
        except Unreachable as e:
            self.seen, self.answered = f"no answer: it {e}", False
            return False
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            self.seen, self.answered = "it answered NXDOMAIN (no such name there yet)", True
            return False
        if rcode != dns.rcode.NOERROR:
            self.seen, self.answered = f"it answered {dns.rcode.to_text(rcode)}", False
            return False
        self.answered = True
        found = {
            b"".join(r.strings).decode("utf-8", "replace")
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.TXT and rrset.name == self.name
            for r in rrset
        }
        missing, others = self.values - found, found - self.values
        if not found:
            self.seen = "no TXT record"
        elif missing:
            self.seen = f"{len(missing)} of {len(self.values)} values missing" + (
                f"; it serves only other (old?) values {', '.join(sorted(map(repr, others)))}"
                if others and len(missing) == len(self.values)
                else ""
            )
        return not missing

    def __str__(self) -> str:
        zone = f" (zone {self.zone})" if self.zone else ""
        return f"{self.server}{zone} does not serve TXT {show(self.name)} yet: {self.seen}"


def describe_servers(expectations: Sequence[Expectation]) -> str:
    """Which servers are polled and why they were chosen, for the line before waiting."""
    by_source: dict[str, list[str]] = {}
    for expectation in expectations:
        servers = by_source.setdefault(expectation.source, [])
        if str(expectation.server) not in servers:
            servers.append(str(expectation.server))
    return "; ".join(
        ", ".join(servers) + (f" ({source})" if source else "")
        for source, servers in by_source.items()
    )


def wait_until_served(
    expectations: list[Expectation],
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll every server with backoff until all serve their values, or fail at the deadline."""
    deadline = clock() + timeout
    pending = list(expectations)
    delay = 0.2
    while True:
        pending = [e for e in pending if not e.satisfied()]
        if not pending:
            return
        remaining = deadline - clock()
        if remaining <= 0:
            raise OperationFailed(
                f"not propagated after {timeout:g}s (the CA was not asked): "
                + "; ".join(str(e) for e in pending)
                + _advice(pending)
            )
        sleep(min(delay, remaining))
        delay = min(delay * 1.6, 5.0)


def _advice(pending: Sequence[Expectation]) -> str:
    """What to do, depending on whether the lagging servers answered at all."""
    sources = list(dict.fromkeys(e.source for e in pending if e.source))
    chosen = f" (asked: {'; '.join(sources)})" if sources else ""
    if all(not e.answered for e in pending):
        return (
            f" — these servers did not answer{chosen}: check that they are reachable from"
            " here, or name the servers to check with --dns-nameserver IP[:PORT]"
        )
    return (
        f" — check that every name server gets the zone's updates (NOTIFY, zone transfer)"
        f"{chosen}, or raise --propagation-timeout"
    )
