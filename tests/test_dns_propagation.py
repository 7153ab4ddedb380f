"""Waiting for propagation says which servers it polls and why, and what each one answered.

Real servers on loopback: a BIND with a static zone (an old value, a missing name, a
name without TXT) and a UDP socket that never answers.
"""

from __future__ import annotations

from collections.abc import Iterator

import dns.name
import pytest

from certctl.challenges.dns import protocol
from certctl.challenges.dns.protocol import Expectation, Server
from certctl.errors import OperationFailed
from dnsresponder import silent_udp

from bind import BindServer, Zone

ZONE = "prop.test"


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    records = '_acme-challenge.old IN TXT "old-value"\n_acme-challenge.both IN TXT "new-value"\n'
    with BindServer(tmp_path_factory.mktemp("bind"), [Zone(ZONE, records=records)], []) as server:
        yield server


def expect(server: Server, label: str, source: str = "the NS records") -> Expectation:
    name = dns.name.from_text(f"_acme-challenge.{label}.{ZONE}")
    return Expectation(server, ZONE, name, {"new-value"}, source=source)


def failure(expectations: list[Expectation]) -> str:
    with pytest.raises(OperationFailed) as caught:
        protocol.wait_until_served(expectations, 0.3)
    return str(caught.value)


def test_what_each_lagging_server_answered(bind: BindServer) -> None:
    server = Server("127.0.0.1", bind.port)
    old, nx, none, ok = (
        expect(server, "old"),
        expect(server, "x.ns1"),  # below ns1: the zone's wildcard does not reach it
        expect(server, "new"),
        expect(server, "both"),
    )
    message = failure([old, nx, none, ok])
    assert message == (
        f"not propagated after 0.3s (the CA was not asked): {server} (zone {ZONE}) does not"
        f" serve TXT _acme-challenge.old.{ZONE} yet: 1 of 1 values missing; it serves only"
        f" other (old?) values 'old-value'; {server} (zone {ZONE}) does not serve TXT"
        f" _acme-challenge.x.ns1.{ZONE} yet: it answered NXDOMAIN (no such name there yet);"
        f" {server} (zone {ZONE}) does not serve TXT _acme-challenge.new.{ZONE} yet: no TXT"
        " record — check that every name server gets the zone's updates (NOTIFY, zone"
        " transfer) (asked: the NS records), or raise --propagation-timeout"
    )


def test_servers_that_never_answer_are_a_timeout_not_a_notify_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(protocol, "QUERY_TIMEOUT", 1.0)
    why = "the NS records of zone prop.test at the update server 127.0.0.1:5300, at port 53"
    with silent_udp() as (host, port):
        silent = expect(Server(host, port), "new", source=why)
        message = failure([silent])
    assert message == (
        f"not propagated after 0.3s (the CA was not asked): 127.0.0.1:{port} (zone {ZONE}) does"
        f" not serve TXT _acme-challenge.new.{ZONE} yet: no answer: it did not answer within 1s"
        f" — these servers did not answer (asked: {why}): check that they are reachable from"
        " here, or name the servers to check with --dns-nameserver IP[:PORT]"
    )
    assert "NOTIFY" not in message


def test_the_line_before_waiting_names_the_servers_and_why() -> None:
    first, second = Server("127.0.0.1", 5300), Server("127.0.0.2", 53)
    expectations = [
        expect(first, "a", "given with --dns-nameserver"),
        expect(first, "b", "given with --dns-nameserver"),
        expect(second, "a", "the NS records of zone prop.test"),
    ]
    assert protocol.describe_servers(expectations) == (
        "127.0.0.1:5300 (given with --dns-nameserver); 127.0.0.2:53 (the NS records of zone"
        " prop.test)"
    )
