"""verify's self-check names why a lookup failed: timeout, SERVFAIL, REFUSED, NXDOMAIN, no record.

Resolvers here are real loopback servers: BIND (tests/bind.py) for NXDOMAIN and
"no record", a socket that never answers for a timeout, and a tiny dnspython
responder for SERVFAIL and REFUSED. The system resolver is never used.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from certctl.challenges import selfcheck
from certctl.models import Challenge
from dnsresponder import rcode_responder, silent_udp

from bind import BindServer, Zone

ZONE = "selfcheck.test"
TXT_VALUE = "published-value"


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    """An authoritative BIND for selfcheck.test (every name has an A record via `*`)."""
    records = f'txtonly IN TXT "x"\n_acme-challenge.pub IN TXT "{TXT_VALUE}"\n'
    with BindServer(tmp_path_factory.mktemp("bind"), [Zone(ZONE, records=records)], []) as server:
        yield server


def http_challenge(domain: str) -> Challenge:
    return Challenge(domain, "https://ca/authz", "https://ca/chall", "http-01", "tok", "tok.key")


def dns_challenge(domain: str, value: str = "wanted-value") -> Challenge:
    return Challenge(domain, "https://ca/authz", "https://ca/chall", "dns-01", "tok", value)


def bind_address(bind: BindServer) -> tuple[str, int]:
    return "127.0.0.1", bind.port


def test_unresponsive_resolver_is_a_timeout_not_no_address() -> None:
    with silent_udp() as resolver:
        started = time.monotonic()
        (finding,) = selfcheck.check_http([http_challenge(f"a.{ZONE}")], 80, [resolver])
        elapsed = time.monotonic() - started
    assert finding.seen == (
        f"no address: timeout: resolver {resolver[0]}:{resolver[1]} did not answer within 3s"
    )
    assert finding.lookup_failed
    assert elapsed < selfcheck.DNS_TIMEOUT + 1.5  # one wait, not one per record type
    assert "publish it" not in selfcheck.next_step([finding], "a")
    assert "the DNS lookup itself failed" in selfcheck.next_step([finding], "a")


@pytest.mark.parametrize(
    ("rcode", "cause"),
    [
        (dns.rcode.SERVFAIL, "SERVFAIL from resolver {}: it could not resolve the name"),
        (dns.rcode.REFUSED, "REFUSED from resolver {}: it does not answer this query"),
    ],
)
def test_servfail_and_refused_are_named(rcode: dns.rcode.Rcode, cause: str) -> None:
    with rcode_responder(rcode) as resolver:
        where = f"{resolver[0]}:{resolver[1]}"
        (http,) = selfcheck.check_http([http_challenge(f"a.{ZONE}")], 80, [resolver])
        (txt,) = selfcheck.check_dns([dns_challenge(f"a.{ZONE}")], [resolver])
    assert http.seen.startswith("no address: " + cause.format(where)), http.seen
    assert txt.seen.startswith(cause.format(where)), txt.seen
    assert txt.where == f"TXT _acme-challenge.a.{ZONE} at resolver {where}"
    assert http.lookup_failed and txt.lookup_failed


def test_dns01_timeout_is_named() -> None:
    with silent_udp() as resolver:
        (finding,) = selfcheck.check_dns([dns_challenge(f"a.{ZONE}")], [resolver])
    assert finding.seen == f"timeout: resolver 127.0.0.1:{resolver[1]} did not answer within 3s"
    assert finding.lookup_failed


def test_nxdomain_and_no_record_from_bind(bind: BindServer) -> None:
    resolver = bind_address(bind)
    where = f"resolver 127.0.0.1:{bind.port}"
    missing = f"nothing.ns1.{ZONE}"  # below ns1, so the zone's wildcard does not apply
    (nx,) = selfcheck.check_http([http_challenge(missing)], 80, [resolver])
    assert nx.seen == f"no address: NXDOMAIN from {where}: {missing} does not exist"
    (no_address,) = selfcheck.check_http([http_challenge(f"txtonly.{ZONE}")], 80, [resolver])
    assert no_address.seen == f"no address: no A or AAAA record at {where}"
    (no_txt,) = selfcheck.check_dns([dns_challenge(f"a.{ZONE}")], [resolver])
    assert no_txt.seen == f"no TXT record at {where}"
    (nx_txt,) = selfcheck.check_dns([dns_challenge(missing)], [resolver])
    assert nx_txt.seen == f"NXDOMAIN from {where}: _acme-challenge.{missing} does not exist"
    (wrong,) = selfcheck.check_dns([dns_challenge(f"pub.{ZONE}")], [resolver])
    assert wrong.seen == repr(TXT_VALUE)
    findings = [nx, no_address, no_txt, nx_txt, wrong]
    assert not any(f.lookup_failed for f in findings)  # the DNS answered: publish it
    assert "publish it" in selfcheck.next_step(findings, "a")
    assert selfcheck.check_dns([dns_challenge(f"pub.{ZONE}", TXT_VALUE)], [resolver]) == []


def test_a_silent_first_resolver_fails_over_to_the_next(bind: BindServer, tmp_path: Path) -> None:
    with silent_udp() as dead:
        (finding,) = selfcheck.check_http(
            [http_challenge(f"txtonly.{ZONE}")], 80, [dead, bind_address(bind)]
        )
    assert finding.seen == f"no address: no A or AAAA record at resolver 127.0.0.1:{bind.port}"
    assert not finding.lookup_failed


def test_authoritative_server_answers_are_classified(bind: BindServer) -> None:
    """The per-server question txt_at_authoritative asks (no recursion)."""
    server = bind_address(bind)
    refused = selfcheck.ask("_acme-challenge.elsewhere.example", "TXT", server, recurse=False)
    assert refused.failed and str(refused.problem).startswith(
        f"REFUSED from name server 127.0.0.1:{bind.port}"
    )
    found = selfcheck.ask(f"_acme-challenge.pub.{ZONE}", "TXT", server, recurse=False)
    assert found.values == [TXT_VALUE] and found.problem is None
