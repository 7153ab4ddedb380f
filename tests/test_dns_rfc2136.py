"""DNS-01 by RFC 2136 update against a real BIND9, end to end through the CLI and Pebble."""

from __future__ import annotations

import json
import os
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from test_e2e_pebble import assert_issued

from bind import DnsLab, dns_lab
from conftest import Certctl, make_due, store_key
from pebble import PebbleServer

pytestmark = pytest.mark.pebble


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsLab]:
    """BIND primary, stale copy, transferring secondary, and Pebble resolving via the primary."""
    with dns_lab(tmp_path_factory.mktemp("dnslab")) as started:
        yield started


@pytest.fixture
def certctl(store: Path, lab: DnsLab, backend: str, request: pytest.FixtureRequest) -> Certctl:
    """certctl against the lab's Pebble, with a fresh store (each backend in turn)."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        return Certctl(store, lab.pebble, location=url, key_file=store_key(store.parent))
    return Certctl(store, lab.pebble)


def stored_text(certctl: Certctl, name: str) -> str:
    """The certificate's record as stored: meta.toml, or the row's JSON on PostgreSQL."""
    if certctl.backend == "filesystem":
        return (certctl.store / "certs" / name / "meta.toml").read_text()
    import psycopg

    with psycopg.connect(certctl.location, autocommit=True) as conn:
        row = conn.execute(
            "SELECT record::text FROM certctl_certificates WHERE name = %s", (name,)
        ).fetchone()
    assert row is not None, name
    return str(row[0])


@pytest.fixture(autouse=True)
def no_leftovers(lab: DnsLab) -> Iterator[None]:
    """After every test, no `_acme-challenge` TXT is left in any zone of the primary."""
    yield
    assert lab.primary.leftover_challenges() == []


def label(prefix: str = "r") -> str:
    """A host label no other test uses (Pebble keeps authorizations per account)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rfc2136(lab: DnsLab, *extra: str, nameservers: tuple[str, ...] | None = None) -> list[str]:
    """The order options for rfc2136 against the lab's primary (secret from the key file)."""
    servers = (lab.primary.address,) if nameservers is None else nameservers
    return [
        "--challenge", "dns",
        "--dns-provider", "rfc2136",
        "--dns-server", lab.primary.address,
        "--tsig-key", lab.key.name,
        "--tsig-secret-file", str(lab.secret_file),
        *(a for s in servers for a in ("--dns-nameserver", s)),
        "--agree-tos",
        *extra,
    ]  # fmt: skip


def run(
    certctl: Certctl, lab: DnsLab, *args: str, env: dict[str, str] | None = None
) -> CompletedProcess[str]:
    """certctl as a subprocess whose DNS self-check resolves as the CA does (lab.resolver)."""
    return certctl.run(*args, extra_env={"CERTCTL_RESOLVER": lab.resolver.address, **(env or {})})


def domains_args(*domains: str) -> list[str]:
    return [a for d in domains for a in ("-d", d)]


def meta(certctl: Certctl, name: str) -> dict[str, object]:
    text = stored_text(certctl, name)
    found: dict[str, object] = (
        tomllib.loads(text) if certctl.backend == "filesystem" else json.loads(text)
    )
    return found


def test_wildcard_and_apex_three_steps_keeps_foreign_txt(certctl: Certctl, lab: DnsLab) -> None:
    base = f"{label('w')}.dns1.test"
    record = f"_acme-challenge.{base}"
    # someone else's TXT value at the same name must survive certctl's cleanup
    lab.primary.update("dns1.test", lab.admin, ("add", record, "TXT", '"keep-me"'))
    ordered = run(certctl, lab, "order", *domains_args(f"*.{base}", base), *rfc2136(lab), "--json")
    assert ordered.returncode == 0, ordered.stderr
    name = f"wildcard.{base}"
    assert lab.primary.txt(record) == ["keep-me"]  # order only prints; verify publishes
    verified = run(certctl, lab, "verify", name)
    assert verified.returncode == 0, verified.stderr
    assert f"added TXT {record} in zone dns1.test at {lab.primary.address}" in verified.stderr
    assert lab.primary.txt(record) == ["keep-me"]  # exactly the two added values are gone
    issued = run(certctl, lab, "issue", name)
    assert issued.returncode == 0, issued.stderr
    assert_issued(certctl, lab.pebble, name, [f"*.{base}", base])
    settings = meta(certctl, name)["validation"]
    assert settings == {
        "challenge": "dns",
        "method": "rfc2136",
        "settings": {
            "server": lab.primary.address,
            "tsig_key": lab.key.name,
            "tsig_algorithm": "hmac-sha256",
            "tsig_secret_file": str(lab.secret_file),
            "nameservers": [lab.primary.address],
            "propagation_timeout": 120.0,
        },
    }
    lab.primary.update("dns1.test", lab.admin, ("delete", record, "TXT", '"keep-me"'))


def test_several_zones_in_one_order_then_unattended_reissue_and_renewal(
    certctl: Certctl, lab: DnsLab
) -> None:
    """Secret from a variable; the store keeps only its name; cron re-issues and renews."""
    one, two = f"{label('z')}.dns1.test", f"{label('z')}.dns2.test"
    domains = [one, f"*.{two}", two]
    secret = lab.key.secret
    env = {"TEST_TSIG_SECRET": secret}
    args = rfc2136(lab)
    args[args.index("--tsig-secret-file") : args.index("--tsig-secret-file") + 2] = [
        "--tsig-secret-env",
        "TEST_TSIG_SECRET",
    ]
    first = run(certctl, lab, "obtain", *domains_args(*domains), *args, "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert "zone dns1.test" in first.stderr and "zone dns2.test" in first.stderr
    assert_issued(certctl, lab.pebble, one, domains)
    stored = stored_text(certctl, one)
    if certctl.backend == "filesystem":
        assert 'tsig_secret_env = "TEST_TSIG_SECRET"' in stored
    else:
        assert '"tsig_secret_env": "TEST_TSIG_SECRET"' in stored
    assert secret not in stored and secret not in first.stdout + first.stderr
    # a later unattended run (stdin closed, as cron): re-order, publish, verify, issue
    again = run(certctl, lab, "issue", one, "--force", "--json", env=env)  # not due: forced
    assert again.returncode == 0, again.stderr
    with closing(certctl.open()) as store:
        assert store.versions(one) == [1, 2]
    if certctl.backend == "filesystem":
        versions = certctl.store / "certs" / one / "versions"
        assert sorted(p.name for p in versions.iterdir()) == ["1", "2"]
    assert_issued(certctl, lab.pebble, one, domains)
    # and renew-due, once the certificate is due (renew when 1,000 days are left: now)
    make_due(certctl, one)
    renewed = run(certctl, lab, "renew-due", "--json", env=env)
    assert renewed.returncode == 0, renewed.stderr
    outcome = json.loads(renewed.stdout)["certificates"]
    assert [(c["name"], c["action"]) for c in outcome] == [(one, "renewed")]
    with closing(certctl.open()) as store:
        assert store.live_version(one) == 3
    if certctl.backend == "filesystem":
        assert os.readlink(certctl.store / "certs" / one / "live") == "versions/3"
    assert secret not in renewed.stdout + renewed.stderr


def test_delegated_challenge_name_updates_the_cname_target(certctl: Certctl, lab: DnsLab) -> None:
    host = label("cn")
    domain = f"{host}.dns1.test"
    alias, target = f"_acme-challenge.{domain}", f"{host}.challenges.test"
    lab.primary.update("dns1.test", lab.admin, ("add", alias, "CNAME", target + "."))
    try:
        # no --dns-zone: the target's zone is found by its SOA
        proc = run(certctl, lab, "obtain", "-d", domain, *rfc2136(lab))
        assert proc.returncode == 0, proc.stderr
        assert f"added TXT {target} in zone challenges.test" in proc.stderr
        assert_issued(certctl, lab.pebble, domain, [domain])
        assert lab.primary.txt(target) == []
        answer = lab.primary.query(alias, "CNAME").answer
        assert [str(r.target) for r in answer[0]] == [target + "."]  # the CNAME stays
    finally:
        lab.primary.update("dns1.test", lab.admin, ("delete", alias, "CNAME", target + "."))


def test_waits_for_a_secondary_fed_by_zone_transfer(
    certctl: Certctl, lab: DnsLab, tmp_path: Path
) -> None:
    """Pebble asks only the secondary (NOTIFY delayed 2 s): it passes only if certctl waited."""
    domain = f"{label('x')}.xfer.test"
    servers = (lab.primary.address, lab.secondary.address)
    with PebbleServer(tmp_path / "pebble", dns_server=lab.secondary.address) as pebble:
        via_secondary = Certctl(certctl.store, pebble, certctl.location, certctl.key_file)
        proc = run(via_secondary, lab, "obtain", "-d", domain, *rfc2136(lab, nameservers=servers))
        assert proc.returncode == 0, proc.stderr
        assert_issued(via_secondary, pebble, domain, [domain])


def test_stale_secondary_fails_after_the_timeout_without_asking_the_ca(
    certctl: Certctl, lab: DnsLab
) -> None:
    from certctl.acme.session import AcmeSession

    domain = f"{label('s')}.dns1.test"
    servers = (lab.primary.address, lab.stale.address)
    args = rfc2136(lab, "--propagation-timeout", "3", nameservers=servers)
    assert run(certctl, lab, "order", "-d", domain, *args).returncode == 0
    proc = run(certctl, lab, "verify", domain)
    assert proc.returncode == 1, proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: not propagated after 3s (the CA was not asked): ")
    assert f"{lab.stale.address} (zone dns1.test) does not serve TXT _acme-challenge.{domain}" in (
        error
    )
    assert lab.primary.address + " (zone" not in error  # the primary had it: only the lagging one
    assert error.endswith(
        "yet: no TXT record — check that every name server gets the zone's updates (NOTIFY,"
        " zone transfer) (asked: given with --dns-nameserver), or raise --propagation-timeout"
    )
    # the CA's authorization is still pending: nothing was answered
    with closing(certctl.open()) as store:
        record, account = store.read(domain), store.read_account(lab.pebble.directory_url)
    assert record.order is not None and account is not None
    session = AcmeSession(lab.pebble.directory_url, ca_bundle=str(lab.pebble.ca_bundle), timeout=10)
    session.login(account[1], account[0].uri)
    assert session.refresh_challenge(record.order.challenges[0]) == ("pending", None)


def test_default_nameservers_are_the_zone_ns_set_at_port_53(certctl: Certctl, lab: DnsLab) -> None:
    """Without --dns-nameserver, the NS set (ns1.dns1.test → 127.0.0.2, port 53) is checked."""
    domain = f"{label('ns')}.dns1.test"
    args = rfc2136(lab, "--propagation-timeout", "1", nameservers=())
    proc = run(certctl, lab, "obtain", "-d", domain, *args)
    assert proc.returncode == 1, proc.stderr
    assert "127.0.0.2:53 (zone dns1.test) does not serve TXT" in proc.stderr
    why = f"the NS records of zone dns1.test at the update server {lab.primary.address}, at port 53"
    # said before waiting, not only after the timeout: which servers, and why those
    lines = proc.stderr.strip().splitlines()
    waiting = (
        f"waiting up to 1s until TXT _acme-challenge.{domain} is served by 127.0.0.2:53 ({why})"
    )
    assert waiting in lines[:-1], proc.stderr
    error = lines[-1]
    assert error.startswith("error: not propagated after 1s (the CA was not asked): ")
    assert "yet: no answer: it " in error
    assert f"these servers did not answer (asked: {why})" in error
    assert "--dns-nameserver IP[:PORT]" in error and "NOTIFY" not in error


# ---- failures: one line naming the server and the zone, exit 1, nothing left behind ----------


def test_wrong_tsig_secret(certctl: Certctl, lab: DnsLab, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text("c2VjcmV0LWJ1dC1ub3QtdGhlLXJpZ2h0LW9uZS4uLi4=\n")
    domain = f"{label('bad')}.dns1.test"
    args = rfc2136(lab)
    args[args.index("--tsig-secret-file") + 1] = str(wrong)
    proc = run(certctl, lab, "obtain", "-d", domain, *args)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: DNS server {lab.primary.address} (zone dns1.test) rejected the TSIG signature"
        f" of key '{lab.key.name}' (BADSIG): the secret does not match the server's"
    )
    assert "c2VjcmV0" not in proc.stderr + proc.stdout


def test_unknown_tsig_key_name(certctl: Certctl, lab: DnsLab) -> None:
    args = rfc2136(lab)
    args[args.index("--tsig-key") + 1] = "no-such-key"
    proc = run(certctl, lab, "obtain", "-d", f"{label('bad')}.dns1.test", *args)
    assert proc.returncode == 1
    assert f"DNS server {lab.primary.address} (zone dns1.test)" in proc.stderr
    assert "(BADKEY)" in proc.stderr


def test_zone_the_server_is_not_authoritative_for(certctl: Certctl, lab: DnsLab) -> None:
    domain = f"{label('na')}.nowhere.test"
    proc = run(certctl, lab, "obtain", "-d", domain, *rfc2136(lab))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: zone not found: DNS server {lab.primary.address} is authoritative for no zone"
        f" holding _acme-challenge.{domain} (it answered REFUSED); check --dns-server, or pass"
        " --dns-zone"
    )
    given = run(certctl, lab, "obtain", "-d", domain, *rfc2136(lab, "--dns-zone", "nowhere.test"))
    assert given.returncode == 1
    assert f"DNS server {lab.primary.address} (zone nowhere.test) is not authoritative" in (
        given.stderr
    )
    assert "(NOTAUTH)" in given.stderr


def test_update_refused_by_policy_removes_what_was_added(certctl: Certctl, lab: DnsLab) -> None:
    """The first zone's update succeeds, the second is refused: the first is removed again."""
    ok, locked = f"{label('ok')}.dns1.test", f"{label('lk')}.locked.test"
    proc = run(certctl, lab, "obtain", *domains_args(ok, locked), *rfc2136(lab))
    assert proc.returncode == 1
    assert f"DNS server {lab.primary.address} (zone locked.test) refused the update (REFUSED)" in (
        proc.stderr
    )
    assert lab.primary.txt(f"_acme-challenge.{ok}") == []


def test_server_not_answering(certctl: Certctl, lab: DnsLab) -> None:
    domain = f"{label('fz')}.dns1.test"
    ordered = run(certctl, lab, "order", "-d", domain, *rfc2136(lab, "--dns-zone", "dns1.test"))
    assert ordered.returncode == 0, ordered.stderr
    lab.primary.freeze()
    try:
        proc = run(certctl, lab, "verify", domain)
    finally:
        lab.primary.thaw()
    assert proc.returncode == 1, proc.stderr
    assert f"error: DNS server {lab.primary.address} did not answer within 5s" in proc.stderr
    assert f"_acme-challenge.{domain}" in proc.stderr


def test_server_stopped_mid_run(certctl: Certctl, lab: DnsLab) -> None:
    """Frozen after the record was added: exit 1, and the user is told what is left behind."""
    import subprocess
    import sys
    import time

    domain = f"{label('mid')}.dns1.test"
    record = f"_acme-challenge.{domain}"
    servers = (lab.primary.address, lab.stale.address)
    args = rfc2136(lab, "--propagation-timeout", "4", nameservers=servers)
    assert run(certctl, lab, "order", "-d", domain, *args).returncode == 0
    env = {**os.environ, **certctl.env(), "CERTCTL_RESOLVER": lab.resolver.address}
    proc = subprocess.Popen(
        [sys.executable, "-m", "certctl", "verify", domain],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not lab.primary.txt(record):
            assert time.monotonic() < deadline and proc.poll() is None, "record never added"
            time.sleep(0.05)
        lab.primary.freeze()
        _, stderr = proc.communicate(timeout=60)
    finally:
        lab.primary.thaw()
    assert proc.returncode == 1, stderr
    error = stderr.strip().splitlines()[-1]
    assert f"{lab.stale.address} (zone dns1.test) does not serve TXT {record}" in error
    assert (
        f"could not remove TXT {record} (DNS server {lab.primary.address} (zone dns1.test)"
        " did not answer within 5s" in error
    )
    assert error.endswith("remove it by hand")
    # the frozen server may still process the queued delete once thawed; else tidy up
    for value in lab.primary.txt(record):
        lab.primary.update("dns1.test", lab.admin, ("delete", record, "TXT", f'"{value}"'))


def test_clock_skew_is_reported_as_badtime(lab: DnsLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 8945 §5.2.3: a signature more than 300 s off is refused; say the clock is wrong."""
    import base64
    import time
    import types

    import dns.message
    import dns.name

    from certctl.challenges.dns.protocol import Server, TsigKey, update_txt
    from certctl.errors import OperationFailed

    skewed = types.SimpleNamespace(time=lambda: time.time() - 3600)
    monkeypatch.setattr(dns.message, "time", skewed)  # only the signing clock is an hour late
    key = TsigKey(lab.key.name, lab.key.algorithm, base64.b64decode(lab.key.secret))
    name = dns.name.from_text(f"_acme-challenge.{label('t')}.dns1.test")
    with pytest.raises(OperationFailed) as caught:
        update_txt(
            Server("127.0.0.1", lab.primary.port),
            dns.name.from_text("dns1.test"),
            key,
            [(name, "value")],
        )
    assert str(caught.value) == (
        f"DNS server {lab.primary.address} (zone dns1.test) rejected the TSIG time (BADTIME):"
        " this machine's clock must be within 5 minutes of the server's; fix NTP"
    )
