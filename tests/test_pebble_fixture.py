"""Self-tests for the Pebble + challtestsrv harness in tests/pebble.py."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.resolver
import pytest
from acme import challenges, client, crypto_util, messages
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from josepy import jwk

import pebble as harness
from pebble import PebbleError, PebbleServer, require_pebble

pytestmark = pytest.mark.pebble


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleServer]:
    """One Pebble + challtestsrv for the whole module."""
    require_pebble()
    with PebbleServer(tmp_path_factory.mktemp("pebble"), nonce_reject=0) as server:
        yield server


def _resolver(server: PebbleServer) -> dns.resolver.Resolver:
    """Return a resolver that asks only challtestsrv."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = server.dns_port
    resolver.lifetime = 5
    return resolver


def test_directory_has_ari_and_profiles(pebble: PebbleServer) -> None:
    """The directory answers over HTTPS with ca.pem and lists ARI and both profiles."""
    with urllib.request.urlopen(pebble.directory_url, context=pebble.ssl_context) as resp:
        directory = json.load(resp)
    assert directory["newOrder"].startswith("https://127.0.0.1:")
    assert "renewalInfo" in directory
    assert set(directory["meta"]["profiles"]) == {"default", "shortlived"}


def test_root_pem_is_a_ca(pebble: PebbleServer) -> None:
    """The management API serves a CA root and an intermediate it signed."""
    root = x509.load_pem_x509_certificate(pebble.root_pem())
    intermediate = x509.load_pem_x509_certificate(pebble.intermediate_pem())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    intermediate.verify_directly_issued_by(root)


def test_txt_record_via_challtestsrv(pebble: PebbleServer) -> None:
    """add_txt is visible over DNS; clear_txt removes it."""
    name = "_acme-challenge.txt.example.test"
    pebble.add_txt(name, "token-value-1")
    answer = _resolver(pebble).resolve(name, "TXT")
    assert [b"".join(r.strings) for r in answer] == [b"token-value-1"]
    pebble.clear_txt(name + ".")
    with pytest.raises(dns.resolver.NoAnswer):
        _resolver(pebble).resolve(name, "TXT")


def test_default_and_explicit_a_records(pebble: PebbleServer) -> None:
    """Any name resolves to 127.0.0.1 by default; add_a overrides one name."""
    resolver = _resolver(pebble)
    assert [r.to_text() for r in resolver.resolve("anything.example.test", "A")] == ["127.0.0.1"]
    pebble.add_a("other.example.test", "192.0.2.7")
    assert [r.to_text() for r in resolver.resolve("other.example.test", "A")] == ["192.0.2.7"]
    pebble.clear_a("other.example.test")
    assert [r.to_text() for r in resolver.resolve("other.example.test", "A")] == ["127.0.0.1"]


def test_dns01_issuance_and_cert_status(
    pebble: PebbleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ACME client gets a shortlived cert through DNS-01 served by challtestsrv."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pebble.ca_bundle))
    account_key = jwk.JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    net = client.ClientNetwork(account_key, user_agent="certctl-tests")
    acme = client.ClientV2(client.ClientV2.get_directory(pebble.directory_url, net), net)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))

    domain = "dns01.example.test"
    key_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    order = acme.new_order(crypto_util.make_csr(key_pem, [domain]), profile="shortlived")
    for authz in order.authorizations:
        chall = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.DNS01))
        pebble.add_txt(chall.chall.validation_domain_name(domain), chall.chall.validation(net.key))
        acme.answer_challenge(chall, chall.chall.response(net.key))
    order = acme.poll_and_finalize(order)

    leaf = x509.load_pem_x509_certificates(order.fullchain_pem.encode())[0]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime.total_seconds() <= 518400 + 1
    status = pebble.cert_status(leaf.serial_number)
    assert status is not None and status["Status"] == "Valid"
    assert pebble.cert_status(f"{leaf.serial_number:x}") == status
    assert pebble.cert_status("0123456789abcdef") is None
    assert "dns01.example.test" in pebble.pebble_log()


def test_stop_frees_ports_and_reaps_pids(tmp_path: Path) -> None:
    """stop() ends both processes and releases every port they held."""
    require_pebble()
    server = PebbleServer(tmp_path).start()
    pids = server.pids
    ports = (
        server.acme_port,
        server.management_port,
        server.challtestsrv_port,
        server.dns_port,
    )
    assert len(pids) == 2
    server.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        with socket.socket() as sock:
            # Connections we made may linger in TIME_WAIT; servers set SO_REUSEADDR too.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", server.dns_port))
    server.stop()  # idempotent


def test_a_frozen_pebble_is_unresponsive_and_replaced_on_the_same_ports(tmp_path: Path) -> None:
    """The watchdog's probe times out on a Pebble that answers nothing; recover() starts a new one.

    SIGSTOP stands in for a deadlock: the port accepts, nothing answers. The new Pebble serves
    the same directory URL with the same API certificate (ca_bundle), so runners keep working.
    """
    require_pebble()
    with PebbleServer(tmp_path) as server:
        assert server.responsive(timeout=2)
        url, old = server.directory_url, server.pids
        os.kill(old[0], signal.SIGSTOP)
        assert not server.responsive(timeout=1)
        kept = server.recover()
        assert server.responsive(timeout=2)
        assert server.directory_url == url and server.pids[0] != old[0]
        assert server.pids[1] == old[1]  # challtestsrv (the DNS) kept running
        with urllib.request.urlopen(url, timeout=5, context=server.ssl_context) as resp:
            assert "newOrder" in json.loads(resp.read())
        with pytest.raises(ProcessLookupError):
            os.kill(old[0], 0)
        assert kept.exists() and server.wedged_logs == [kept]


def test_recover_keeps_the_goroutine_dump(tmp_path: Path) -> None:
    """SIGQUIT makes Pebble write every goroutine's stack into the kept log before it exits."""
    require_pebble()
    with PebbleServer(tmp_path) as server:
        kept = server.recover()
        dump = kept.read_text(errors="replace")
        assert re.search(r"^goroutine 1 .*\[", dump, re.M) and "letsencrypt/pebble" in dump
        assert server.responsive(timeout=2)
        summary = server.wedge_summary(kept)
        assert summary.startswith("  ")  # lock waiters, or the line saying there are none


def test_wedge_summary_names_the_lock_waiters(tmp_path: Path) -> None:
    """Only goroutines blocked on a sync lock are listed, by their Pebble frames."""
    dump = tmp_path / "dump.log"
    dump.write_text(
        "SIGQUIT: quit\n\n"
        "goroutine 7 gp=0xc0 m=nil [sync.RWMutex.RLock, 3 minutes]:\n"
        "sync.runtime_SemacquireRWMutexR(0xc0, 0x0)\n\t/go/src/runtime/sema.go:82 +0x25\n"
        "sync.(*RWMutex).RLock(...)\n\t/go/src/sync/rwmutex.go:70\n"
        "github.com/letsencrypt/pebble/v2/db.(*MemoryStore).GetOrderByID(0xc0, {0xc1, 0x2b})\n"
        "\t/build/db/memorystore.go:180 +0x5f\n\n"
        "goroutine 9 gp=0xc1 m=nil [IO wait]:\n"
        "github.com/letsencrypt/pebble/v2/wfe.(*WebFrontEndImpl).Nonce(0xc0)\n\t/build/wfe.go:1\n"
    )
    summary = PebbleServer(tmp_path).wedge_summary(dump)
    assert summary == (
        "  goroutine 7 [sync.RWMutex.RLock, 3 minutes]: "
        "github.com/letsencrypt/pebble/v2/db.(*MemoryStore).GetOrderByID"
    )


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    """A Pebble that cannot start raises PebbleError quoting its log, and leaves nothing behind."""
    require_pebble()
    server = PebbleServer(tmp_path, config_overrides={"certificate": str(tmp_path / "missing.pem")})
    with pytest.raises(PebbleError, match=r"(?s)pebble exited with status .*missing\.pem"):
        server.start()
    assert server.pids == ()


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_require_pebble_when_missing(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    """Missing binaries skip locally and fail under CI=true, naming the install script."""
    monkeypatch.setattr(harness, "find_binary", lambda name: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=r"install-pebble\.sh"):
        require_pebble()
