"""End to end against a real Pebble: order → verify → issue with every challenge method."""

from __future__ import annotations

import itertools
import json
import os
import stat
from contextlib import closing
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest import Certctl, serve_directory, serve_text, unique
from pebble import PebbleServer

pytestmark = pytest.mark.pebble


def assert_issued(certctl: Certctl, pebble: PebbleServer, name: str, domains: list[str]) -> None:
    """The live files hold a certificate for `domains`, chained to Pebble's root, and its key."""
    live = certctl.live(name)
    fullchain = live["fullchain.pem"]
    certs = x509.load_pem_x509_certificates(fullchain)
    leaf = certs[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(domains)
    # the chain verifies up to the root published by Pebble's management API
    root = x509.load_pem_x509_certificate(pebble.root_pem())
    chain = [*certs, root]
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)
    key = serialization.load_pem_private_key(live["privkey.pem"], None)
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if certctl.backend == "filesystem":  # a database store has no key file on the host
        privkey = certctl.store / "certs" / name / "live" / "privkey.pem"
        assert stat.S_IMODE(privkey.stat().st_mode) == 0o600
    assert live["cert.pem"] + live["chain.pem"] == fullchain
    status = pebble.cert_status(format(leaf.serial_number, "x"))
    assert status is not None and status["Status"] == "Valid"


def test_http01_standalone_three_steps_in_separate_processes(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique()
    proc = certctl.run(
        "order", "-d", domain, "--standalone", "--http-port", str(pebble.http_port), "--agree-tos"
    )
    assert proc.returncode == 0, proc.stderr
    assert f"http://{domain}/.well-known/acme-challenge/" in proc.stdout
    assert "certctl verify" in proc.stdout
    with closing(certctl.open()) as store:
        pending = store.read(domain).order
    assert pending is not None
    challenge = pending.challenges[0]
    verified = certctl.json("verify", domain)
    assert verified == {
        "name": domain,
        "status": "valid",
        "domains": [{"domain": domain, "valid": True, "error": None}],
        "selfcheck": [
            {
                "domain": domain,
                "type": "http-01",
                "where": f"http://{domain}/.well-known/acme-challenge/{challenge.token}",
                "expected": challenge.validation,
                "visible": True,
                "problems": [],
            }
        ],
        "error": None,
    }
    issued = certctl.json("issue", domain)
    assert issued["name"] == domain and issued["version"] == 1
    if certctl.backend == "filesystem":
        assert issued["paths"]["fullchain"].endswith(f"certs/{domain}/live/fullchain.pem")
    else:  # no files on this host: no live paths to report
        assert issued["paths"] == {}
    assert_issued(certctl, pebble, domain, [domain])
    # the standalone server is gone: the port is free again
    with serve_text(pebble.http_port, b"port is free"):
        pass
    listed = certctl.json("list")["certificates"]
    assert [(e["name"], e["state"], e["renewal"]) for e in listed] == [
        (domain, "valid", "http-01 standalone")
    ]


def test_http01_webroot_cleans_up(certctl: Certctl, pebble: PebbleServer, tmp_path: Path) -> None:
    webroot = tmp_path / "www"
    webroot.mkdir()
    (webroot / "index.html").write_text("hello")
    domains = [unique("w1"), unique("w2")]
    args = [a for d in domains for a in ("-d", d)]
    ordered = certctl.json("order", *args, "--webroot", str(webroot), "--agree-tos")
    assert [c["type"] for c in ordered["challenges"]] == ["http-01", "http-01"]
    with serve_directory(webroot, pebble.http_port):
        certctl.json("verify", domains[0])
    # only what certctl created is removed: the webroot and its own files stay
    assert sorted(p.name for p in webroot.iterdir()) == ["index.html"]
    certctl.json("issue", domains[0])
    assert_issued(certctl, pebble, domains[0], domains)


def test_dns01_manual_wildcard_and_apex(certctl: Certctl, pebble: PebbleServer) -> None:
    base = unique("d")
    ordered = certctl.json(
        "order", "-d", f"*.{base}", "-d", base, "--challenge", "dns", "--agree-tos"
    )
    name = ordered["name"]
    assert name == f"wildcard.{base}"
    records = {c["record"] for c in ordered["challenges"]}
    assert records == {f"_acme-challenge.{base}."}
    values = [c["value"] for c in ordered["challenges"]]
    assert len(set(values)) == 2
    # before publishing: self-check fails, exit 3, the CA is not asked
    early = certctl.run("verify", name)
    assert early.returncode == 3, early.stderr
    assert "not visible yet" in early.stderr and "the CA was not asked" in early.stderr
    with closing(certctl.open()) as store:
        order = store.read(name).order
    assert order is not None and order.status == "pending"
    # the user publishes both TXT values at their DNS host
    for value in values:
        pebble.add_txt(f"_acme-challenge.{base}.", value)
    try:
        certctl.json("verify", name)
    finally:
        pebble.clear_txt(f"_acme-challenge.{base}.")
    certctl.json("issue", name)
    assert_issued(certctl, pebble, name, [f"*.{base}", base])


def test_verify_before_publishing_leaves_authorization_pending(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique()
    ordered = certctl.json("order", "-d", domain, "--agree-tos")
    proc = certctl.run("verify", domain)
    assert proc.returncode == 3
    assert f"http://{domain}" in proc.stderr and "expected" in proc.stderr
    # the CA's authorization is still pending: nothing was answered
    with closing(certctl.open()) as store:
        record = store.read(domain)
        account = store.read_account(pebble.directory_url)
    assert record.order is not None
    # ask the CA (POST-as-GET needs the account) through certctl's own session
    from certctl.acme.session import AcmeSession

    session = AcmeSession(pebble.directory_url, ca_bundle=str(pebble.ca_bundle), timeout=10)
    assert account is not None
    session.login(account[1], account[0].uri)
    status, detail = session.refresh_challenge(record.order.challenges[0])
    assert (status, detail) == ("pending", None)
    assert ordered["challenges"][0]["status"] == "pending"


def test_ca_side_validation_failure_reports_ca_detail(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    """Self-check passes (a decoy port), but the CA sees wrong content: exit 1, CA's words."""
    from pebble import free_port

    domain = unique("fail")
    ordered = certctl.json("order", "-d", domain, "--agree-tos")
    content = ordered["challenges"][0]["content"].encode()
    decoy = free_port()
    env_port = {"CERTCTL_CHECK_HTTP_PORT": str(decoy)}
    with serve_text(decoy, content), serve_text(pebble.http_port, b"wrong content"):
        proc = certctl.run("verify", domain, extra_env=env_port)
    assert proc.returncode == 1, proc.stderr
    assert "the CA could not validate" in proc.stderr
    assert "wrong content" in proc.stderr or "did not match" in proc.stderr
    assert "certctl order" in proc.stderr
    listed = certctl.json("list")["certificates"]
    assert listed[0]["state"] == "failed"
    again = certctl.run("issue", domain)
    assert again.returncode == 1
    assert again.stderr.rstrip().endswith(f"certctl order -d {domain} --name {domain}")


def test_reissue_keeps_old_version(certctl: Certctl, pebble: PebbleServer) -> None:
    domain = unique("re")
    args = ("-d", domain, "--standalone", "--http-port", str(pebble.http_port), "--agree-tos")
    first = certctl.json("obtain", *args)
    # automatic: order + verify + issue in one go (forced: the first one is not due)
    second = certctl.json("issue", domain, "--force")
    assert (first["version"], second["version"]) == (1, 2)
    assert first["serial"] != second["serial"]
    with closing(certctl.open()) as store:
        assert store.versions(domain) == [1, 2]
        assert store.live_version(domain) == 2
        old_key = store.read_version(domain, 1)["privkey.pem"]
        assert old_key != store.read_version(domain, 2)["privkey.pem"]
        assert store.pending_key_ids(domain) == []
    if certctl.backend == "filesystem":  # the on-disk layout behind the same facts
        versions = certctl.store / "certs" / domain / "versions"
        assert sorted(p.name for p in versions.iterdir()) == ["1", "2"]
        assert os.readlink(certctl.store / "certs" / domain / "live") == "versions/2"
        assert list((certctl.store / "certs" / domain).glob("pending*.key")) == []
    assert_issued(certctl, pebble, domain, [domain])


def test_multi_name_ecdsa_p384_and_rsa(certctl: Certctl, pebble: PebbleServer) -> None:
    for key_type, expected in (("ec384", "secp384r1"), ("rsa2048", 2048)):
        domains = [unique("m1"), unique("m2"), unique("m3")]
        args = [a for d in domains for a in ("-d", d)]
        certctl.json(
            "obtain",
            *args,
            "--standalone",
            "--http-port",
            str(pebble.http_port),
            "--key-type",
            key_type,
            "--agree-tos",
        )
        assert_issued(certctl, pebble, domains[0], domains)
        leaf = x509.load_pem_x509_certificate(certctl.live(domains[0])["cert.pem"])
        public = leaf.public_key()
        found = getattr(public, "curve", None)
        assert (found.name if found else public.key_size) == expected  # type: ignore[union-attr]


def test_twenty_issuances_at_default_bad_nonce_rate(certctl: Certctl, pebble: PebbleServer) -> None:
    """Pebble rejects 5% of nonces (as by default); certctl's bounded retry absorbs them."""
    for _ in range(20):
        domain = unique("n")
        proc = certctl.run(
            "obtain",
            "-d",
            domain,
            "--standalone",
            "--http-port",
            str(pebble.http_port),
            "--agree-tos",
            "--json",
        )
        assert proc.returncode == 0, (
            proc.stderr + "\n--- pebble ---\n" + pebble.pebble_log()[-4000:]
        )
        assert json.loads(proc.stdout)["name"] == domain
    assert len(certctl.json("list")["certificates"]) == 20


def test_account_created_once_and_key_private(certctl: Certctl, pebble: PebbleServer) -> None:
    no_tos = certctl.run("order", "-d", unique())
    assert no_tos.returncode == 2 and "--agree-tos" in no_tos.stderr
    certctl.json("order", "-d", unique(), "--agree-tos", "--email", "ops@example.com")
    certctl.json("order", "-d", unique())  # reuses the account: no --agree-tos needed now
    with closing(certctl.open()) as store:
        assert store.account_servers() == [pebble.directory_url]
        account = store.read_account(pebble.directory_url)
    assert account is not None
    record, key_pem = account
    assert b"BEGIN PRIVATE KEY" in key_pem
    assert record.email == "ops@example.com"
    if certctl.backend == "filesystem":  # the key file on disk is private
        accounts = list((certctl.store / "accounts").iterdir())
        assert len(accounts) == 1
        key = accounts[0] / "account.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert "BEGIN PRIVATE KEY" in key.read_text()
        assert "ops@example.com" in (accounts[0] / "account.toml").read_text()
