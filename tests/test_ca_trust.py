"""What certctl accepts from the CA, and how orders and their keys are kept (a hostile CA).

The fault proxy (faultproxy.py) sits in front of a real Pebble and rewrites what it
sends: the downloaded certificate chain (expired, not yet valid, for other names or
another key, a private key in the chain, a link that does not verify), an
authorization's identifier, a newOrder refused. Every certctl run is a real
subprocess with stdin closed, as under cron.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from certctl.store import Store
from faultproxy import FaultProxy, Request, stuck_processing
from test_ca_faults import Proxied, measured, placed

from certfactory import make_leaf, pem, pki, private_key
from conftest import CERTCTL, Certctl, standalone, store_key, unique, wait_stopped
from pebble import PebbleServer

pytestmark = [pytest.mark.faults, pytest.mark.pebble]


@pytest.fixture
def proxy(pebble: PebbleServer) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's Pebble; no faults until a test adds them."""
    with FaultProxy(pebble) as running:
        yield running


@pytest.fixture
def ca(
    store: Path,
    pebble: PebbleServer,
    proxy: FaultProxy,
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
) -> Proxied:
    """certctl through the proxy, with `timeout = 10` in its config file (each backend)."""
    proxied = Proxied(store, pebble, proxy, tmp_path / "config.toml", timeout=10)
    if backend == "postgresql":
        proxied.location = request.getfixturevalue("pg_url")
        proxied.key_file = store_key(store.parent)
    return proxied


def order_key(certctl: Certctl, name: str) -> PrivateKeyTypes:
    """The private key of `name`'s recorded order, through the store contract."""
    with closing(certctl.open()) as stored:
        record = stored.read(name)
        assert record.order is not None
        key_id = getattr(record.order, "key_id", None)
        key_pem = stored.read_pending_key(name, key_id) if key_id else stored.read_pending_key(name)
    assert key_pem is not None
    return serialization.load_pem_private_key(key_pem, None)


def live_files(certctl: Certctl, name: str) -> dict[str, bytes]:
    """The live PEM files of `name`."""
    return certctl.live(name)


def pending_keys(certctl: Certctl, name: str) -> list[str | None]:
    """The ids of `name`'s pending keys (the files pending*.key on the filesystem too)."""
    with closing(certctl.open()) as stored:
        ids = stored.pending_key_ids(name)
    if certctl.backend == "filesystem":
        assert len(list((certctl.store / "certs" / name).glob("pending*"))) == len(ids)
    return ids


# ---- item 4: the certificate is checked before it goes live --------------------------------

Forge = Callable[[str, PrivateKeyTypes, bytes], bytes]
NOW = datetime.now(UTC)


def _expired(domain: str, key: PrivateKeyTypes, real: bytes) -> bytes:
    return make_leaf(domain, key=key, not_after=NOW - timedelta(days=1)).fullchain_pem()


def _not_yet_valid(domain: str, key: PrivateKeyTypes, real: bytes) -> bytes:
    return make_leaf(domain, key=key, not_before=NOW + timedelta(days=2)).fullchain_pem()


def _other_names(domain: str, key: PrivateKeyTypes, real: bytes) -> bytes:
    return make_leaf("other.example.org", key=key).fullchain_pem()


def _other_key(domain: str, key: PrivateKeyTypes, real: bytes) -> bytes:
    return make_leaf(domain, key=private_key("ec256", 7)).fullchain_pem()


def _private_key_in_chain(domain: str, key: PrivateKeyTypes, real: bytes) -> bytes:
    return real + pem(private_key("ec256", 8))


def _broken_link(domain: str, key: PrivateKeyTypes, real: bytes) -> bytes:
    leaf = make_leaf(domain, key=key)  # signed by int2; the chain claims int2 of another PKI
    return leaf.cert_pem() + pem(pki(1).int2.cert, pki(1).int1.cert)


@pytest.mark.parametrize(
    ("forge", "said"),
    [
        (_expired, "expired"),
        (_not_yet_valid, "not valid before"),
        (_other_names, "other.example.org"),
        (_other_key, "another key"),
        (_private_key_in_chain, "PRIVATE KEY"),
        (_broken_link, "not signed by"),
    ],
    ids=["expired", "not-yet-valid", "other-names", "other-key", "key-in-chain", "broken-link"],
)
def test_bad_certificate_from_the_ca_never_goes_live(
    ca: Proxied, proxy: FaultProxy, pebble: PebbleServer, forge: Forge, said: str
) -> None:
    domain = unique("bad")
    first = measured(ca, "obtain", "-d", domain, *standalone(pebble), "--json")
    assert first.returncode == 0, first.stderr
    before = live_files(ca, domain)
    not_after = json.loads(first.stdout)["not_after"]

    def change(request: Request, body: bytes) -> bytes:
        return forge(domain, order_key(ca, domain), body)

    proxy.rewrite_body("cert", change, label="forged certificate")
    run = measured(ca, "issue", domain, "--force")  # not due: re-issue on purpose
    assert run.returncode == 1, run.stderr
    assert "the CA" in run.error and said in run.error, run.error
    assert "PRIVATE KEY-----" not in run.stderr  # named, never shown
    assert proxy.faults()  # the forged answer was really served
    with closing(ca.open()) as stored:
        assert stored.versions(domain) == [1]  # nothing new stored, nothing switched
    assert live_files(ca, domain) == before
    listed = json.loads(measured(ca, "list", "--json").stdout)["certificates"]
    (entry,) = [e for e in listed if e["name"] == domain]
    assert entry["not_after"] == not_after  # the old certificate, still live
    assert entry["state"] == "failed" and "the CA returned" in entry["reason"]

    proxy.clear()  # the CA gets over it: the next issue orders afresh and succeeds
    again = measured(ca, "issue", domain, "--force", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["version"] == 2


@pytest.mark.parametrize("forge", [_not_yet_valid, _expired], ids=["not-yet-valid", "expired"])
def test_bad_first_certificate_is_not_stored(
    ca: Proxied, proxy: FaultProxy, pebble: PebbleServer, forge: Forge
) -> None:
    domain = unique("bad1")

    def change(request: Request, body: bytes) -> bytes:
        return forge(domain, order_key(ca, domain), body)

    proxy.rewrite_body("cert", change, label="forged certificate")
    run = measured(ca, "obtain", "-d", domain, *standalone(pebble))
    assert run.returncode == 1, run.stderr
    assert "the CA" in run.error
    with closing(ca.open()) as stored:
        assert stored.versions(domain) == []
        assert stored.read_live(domain) is None
    listed = json.loads(measured(ca, "list", "--json").stdout)["certificates"]
    (entry,) = [e for e in listed if e["name"] == domain]
    assert entry["state"] == "failed" and "the CA returned" in entry["reason"]


def test_check_issued_accepts_a_good_chain_and_names_stray_text() -> None:
    from certctl.errors import AcmeError
    from certctl.pki.issued import CLOCK_SKEW, check_issued

    leaf = make_leaf("a.example.com", "b.example.com", key=private_key("ec256", 9))
    key_pem = leaf.key_pem()
    domains = ["b.example.com", "a.example.com"]
    crlf = leaf.fullchain_pem().replace(b"\n", b"\r\n").decode()
    issued = check_issued(crlf, key_pem, domains, NOW)
    assert issued.cert_pem == leaf.cert_pem() and issued.chain_pem == leaf.chain_pem()
    # a CA clock a little ahead is fine; more is not
    ahead = make_leaf("a.example.com", "b.example.com", key=leaf.key, not_before=NOW + CLOCK_SKEW)
    assert check_issued(ahead.fullchain_pem().decode(), key_pem, domains, NOW)
    for bad, said in [
        (leaf.fullchain_pem().decode() + "hello\n", "not a certificate"),
        (leaf.cert_pem().decode()[:-30], "broken CERTIFICATE block"),
        (pem(leaf.chain[0], leaf.cert).decode(), "another key"),  # leaf not first
        (make_leaf("a.example.com", key=leaf.key).fullchain_pem().decode(), "a.example.com, not"),
    ]:
        with pytest.raises(AcmeError, match=said):
            check_issued(bad, key_pem, domains, NOW)


# ---- item 5: the pending key belongs to its order ---------------------------------------------


def finalized_order(ca: Proxied, proxy: FaultProxy, pebble: PebbleServer, domain: str) -> Any:
    """An order the CA has finalized (with its key's CSR) but not finished: still processing."""
    proxy.rewrite_json("order", stuck_processing, label="stuck in processing")
    proxy.rewrite_json("finalize", stuck_processing, label="stuck in processing")
    run = measured(ca, "obtain", "-d", domain, *standalone(pebble), "--timeout", "1")
    assert run.returncode == 3, run.stderr
    proxy.clear()
    with closing(ca.open()) as stored:
        record = stored.read(domain)
    assert record.order is not None
    return record.order


@pytest.mark.parametrize(
    ("status", "retry_after", "code"),
    [(429, 3600.0, 3), (500, None, 1)],
    ids=["429-rate-limited", "500-failed"],
)
def test_refused_new_order_keeps_the_earlier_order_issuable(
    ca: Proxied,
    proxy: FaultProxy,
    pebble: PebbleServer,
    status: int,
    retry_after: float | None,
    code: int,
) -> None:
    domain = unique("keep")
    earlier = finalized_order(ca, proxy, pebble, domain)
    proxy.fail("newOrder", status, retry_after=retry_after, times=None)
    again = measured(ca, "order", "-d", domain, *standalone(pebble))
    assert again.returncode == code, again.stderr
    with closing(ca.open()) as stored:
        record = stored.read(domain)
    assert record.order == earlier  # the earlier order is still the recorded one
    order_key(ca, domain)  # and its key is there
    assert len(pending_keys(ca, domain)) == 1  # no orphan left
    proxy.clear()
    proxy.reset_log()
    issued = measured(ca, "issue", domain, "--json")
    assert issued.returncode == 0, issued.stderr
    assert json.loads(issued.stdout)["new_order"] is False
    assert placed(proxy) == []
    assert pending_keys(ca, domain) == []


@pytest.mark.parametrize("point", ["pending-key-after", "meta-before", "meta-after"])
def test_kill_while_replacing_an_order_leaves_one_issuable_order(
    ca: Proxied, proxy: FaultProxy, pebble: PebbleServer, point: str
) -> None:
    domain = unique("kro")
    earlier = finalized_order(ca, proxy, pebble, domain)
    proc = ca.run(
        "order", "-d", domain, *standalone(pebble), extra_env={"CERTCTL_TEST_FAULT": point}
    )
    assert proc.returncode == -9, (point, proc.returncode, proc.stderr)
    doctor = json.loads(ca.run("doctor", "--json").stdout)
    assert [f for f in doctor["findings"] if f["severity"] == "error"] == []
    with closing(ca.open()) as stored:
        record = stored.read(domain)
    assert record.order is not None
    replaced = record.order.url != earlier.url
    assert replaced == (point == "meta-after")  # the record names the earlier order until then
    order_key(ca, domain)
    issued = measured(ca, "issue", domain, "--json")
    assert issued.returncode == 0, issued.stderr
    assert json.loads(issued.stdout)["new_order"] is False
    assert json.loads(issued.stdout)["version"] == 1


def test_pending_keys_are_kept_per_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.ensure()
    store.write_pending_key("web", b"OLDER ORDER")  # an order placed by an older certctl
    store.write_pending_key("web", b"FIRST", "aa" * 16)
    store.write_pending_key("web", b"SECOND", "bb" * 16)
    assert store.read_pending_key("web") == b"OLDER ORDER"
    assert store.read_pending_key("web", "aa" * 16) == b"FIRST"
    assert store.pending_key_ids("web") == [None, "aa" * 16, "bb" * 16]
    store.drop_pending_key("web", keep="bb" * 16)
    assert store.pending_key_ids("web") == ["bb" * 16]
    assert store.read_pending_key("web", "bb" * 16) == b"SECOND"
    from certctl.errors import StoreError

    with pytest.raises(StoreError, match="malformed key id"):
        store.read_pending_key("web", "../../x")
    store.drop_pending_key("web")
    assert store.pending_key_ids("web") == []


# ---- item 12: an authorization must be for a name in the order --------------------------------


def _identifier_to(value: str) -> Callable[[Request, dict[str, Any]], dict[str, Any]]:
    def change(request: Request, data: dict[str, Any]) -> dict[str, Any]:
        data["identifier"]["value"] = value
        return data

    return change


def _wildcard(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    data["wildcard"] = True
    return data


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (_identifier_to("victim.example.org"), "victim.example.org"),
        (_identifier_to("evil.example.org; touch pwned"), "evil.example.org; touch pwned"),
        (_wildcard, "*."),
    ],
    ids=["other-name", "hostile-name", "wildcard-flag"],
)
def test_authorization_for_a_name_not_ordered_is_refused(
    ca: Proxied,
    proxy: FaultProxy,
    tmp_path: Path,
    change: Callable[[Request, dict[str, Any]], dict[str, Any]],
    said: str,
) -> None:
    hook_ran = tmp_path / "hook-ran"
    hook = tmp_path / "dns-hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$@" >> {hook_ran}\n')
    hook.chmod(0o755)
    proxy.rewrite_json("authz", change, label="another identifier")
    domain = unique("authz")
    how = ("--challenge", "dns", "--dns-provider", "hook", "--dns-hook", str(hook))
    run = measured(ca, "obtain", "-d", domain, *how, "--agree-tos", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    assert "the CA" in run.error and "not in the order" in run.error and said in run.error
    assert domain in run.error
    assert not hook_ran.exists()
    assert not (tmp_path / "pwned").exists()
    with closing(ca.open()) as stored:
        assert not stored.has(domain)  # no order recorded
    assert not (ca.store / "certs" / domain / "meta.toml").exists()
    assert pending_keys(ca, domain) == []
    assert proxy.requests("challenge") == []  # nothing was answered at the CA


# ---- item 7: key authorizations follow the current account key -----------------------------


def test_rollover_then_verify_a_pending_standalone_order(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique("roll")
    certctl.json("order", "-d", domain, *standalone(pebble))
    rolled = certctl.json("account", "rollover")
    verified = certctl.run("verify", domain, "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["status"] == "valid"
    (changed,) = rolled["pending_orders"]
    assert (changed["name"], changed["domain"], changed["type"]) == (domain, domain, "http-01")
    assert certctl.json("issue", domain)["version"] == 1


def test_rollover_shows_the_changed_manual_dns_value_and_verify_expects_it(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique("rolldns")
    ordered = certctl.json("order", "-d", domain, "--challenge", "dns", "--agree-tos")
    (challenge,) = ordered["challenges"]
    record, old_value = challenge["record"], challenge["value"]
    pebble.add_txt(record, old_value)  # published by hand, as the order said
    try:
        human = certctl.run("account", "rollover")
        assert human.returncode == 0, human.stderr
        out = human.stdout + human.stderr
        assert domain in out and record in out and old_value not in out
        with closing(certctl.open()) as store:
            stored = store.read(domain).order
        assert stored is not None
        new_value = stored.challenges[0].validation
        assert new_value != old_value and new_value in out
        shown = certctl.json("show", domain)
        assert json.dumps(shown).count(new_value) >= 1 and old_value not in json.dumps(shown)

        stale = certctl.run("verify", domain)
        assert stale.returncode == 3, stale.stderr  # not yet: the CA was not asked
        assert f"expected {new_value!r}" in stale.stderr and old_value in stale.stderr

        pebble.clear_txt(record)
        pebble.add_txt(record, new_value)
        done = certctl.run("verify", domain, "--json")
        assert done.returncode == 0, done.stderr
        assert certctl.json("issue", domain)["version"] == 1
    finally:
        pebble.clear_txt(record)


def test_verify_says_when_the_stored_value_is_stale(certctl: Certctl, pebble: PebbleServer) -> None:
    """A rollover by an older certctl (or another host) left old values in the record."""
    domain = unique("stale")
    certctl.json("order", "-d", domain, *standalone(pebble))
    with closing(certctl.open()) as store, store.lock(domain):
        record = store.read(domain)
        assert record.order is not None
        real = record.order.challenges[0].validation
        record.order.challenges[0].validation = real[:-3] + "old"
        store.write(record)
    verified = certctl.run("verify", domain)
    assert verified.returncode == 0, verified.stderr
    assert "changed" in verified.stderr and domain in verified.stderr


# ---- item 13: one lock across the whole obtain --------------------------------------------------


@pytest.mark.parametrize("point", ["obtain-ordered", "obtain-verified"])
def test_obtain_holds_its_lock_between_steps(
    certctl: Certctl, pebble: PebbleServer, point: str
) -> None:
    domain = unique("lock")
    env = {**os.environ, **certctl.env(), "CERTCTL_TEST_FAULT": f"pause:{point}"}
    proc = subprocess.Popen(
        [*CERTCTL, "obtain", "-d", domain, *standalone(pebble), "--json"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_stopped(proc)
        for args in (("order", "-d", domain, *standalone(pebble)), ("remove", domain, "--yes")):
            other = certctl.run(*args)
            assert other.returncode == 3, (args, other.stderr)
            assert "locked" in other.stderr, other.stderr
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["version"] == 1
    with closing(certctl.open()) as store:
        assert store.read(domain).current is not None
