"""dns-persist-01 (draft-ietf-acme-dns-persist) end to end against Pebble 2.10 and challtestsrv."""

from __future__ import annotations

from contextlib import closing

import pytest

from certctl.policy.persist import parse_persist, persist_value

from conftest import Certctl, make_due, unique
from pebble import PebbleServer

pytestmark = pytest.mark.pebble


def test_record_value_round_trips() -> None:
    value = persist_value("ca.example", "https://ca.example/acct/1", True)
    assert value == "ca.example; accounturi=https://ca.example/acct/1; policy=wildcard"
    assert parse_persist("CA.example. ;AccountURI=u ; policy=wildcard") == (
        "ca.example",
        {"accounturi": "u", "policy": "wildcard"},
    )


def test_wildcard_and_apex_issued_then_renewed_with_no_dns_change(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique()
    account = certctl.json("account", "register", "--agree-tos")["uri"]
    record = certctl.json("account", "persist-record", "-d", domain, "--wildcard")
    assert record == {
        "domain": domain,
        "record": f"_validation-persist.{domain}.",
        "record_type": "TXT",
        "value": f"pebble.letsencrypt.org; accounturi={account}; policy=wildcard",
        "issuer": "pebble.letsencrypt.org",
        "account": account,
    }
    plain = certctl.run("account", "persist-record", "-d", domain)
    assert plain.stdout == (
        f'_validation-persist.{domain}. IN TXT "pebble.letsencrypt.org; accounturi={account}"\n'
    )
    # before the record exists: order prints it, verify refuses without asking the CA
    ordered = certctl.run("order", "-d", f"*.{domain}", "-d", domain, "--challenge", "dns-persist")
    assert ordered.returncode == 0, ordered.stderr
    assert f"name:  _validation-persist.{domain}." in ordered.stdout
    assert f"value: {record['value']}" in ordered.stdout
    early = certctl.run("verify", domain)
    assert early.returncode == 3 and "the CA was not asked" in early.stderr
    pebble.add_txt(f"_validation-persist.{domain}", record["value"])  # once, and never again
    assert certctl.run("verify", domain).returncode == 0
    assert certctl.json("issue", domain)["version"] == 1
    listed = certctl.json("list")["certificates"]
    assert [(e["name"], e["renewal"]) for e in listed] == [
        (f"wildcard.{domain}", "dns-persist-01 persist")
    ] or [(e["name"], e["renewal"]) for e in listed] == [(domain, "dns-persist-01 persist")]
    name = listed[0]["name"]
    make_due(certctl, name)
    renewed = certctl.run("renew-due")
    assert renewed.returncode == 0, renewed.stderr
    with closing(certctl.open()) as store:
        current = store.read(name).current
    assert current is not None and current.version == 2
    assert sorted(current.names) == sorted([f"*.{domain}", domain])


def test_record_naming_another_account_is_refused_before_the_ca(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique()
    certctl.json("account", "register", "--agree-tos")
    other = "https://127.0.0.1/my-account/someone-else"
    pebble.add_txt(f"_validation-persist.{domain}", f"pebble.letsencrypt.org; accounturi={other}")
    assert certctl.run("order", "-d", domain, "--challenge", "dns-persist").returncode == 0
    proc = certctl.run("verify", domain)
    assert proc.returncode == 3, proc.stderr
    assert f"names another account: {other}" in proc.stderr
    assert "the CA was not asked" in proc.stderr
    with closing(certctl.open()) as store:
        order = store.read(domain).order
    assert order is not None and order.status == "pending"


def test_ip_and_wrong_options_refused(certctl: Certctl) -> None:
    ip = certctl.run("order", "-d", "192.0.2.1", "--challenge", "dns-persist")
    assert ip.returncode == 2 and "DNS-01 cannot prove control of an IP address" in ip.stderr
    webroot = certctl.run(
        "order", "-d", "a.example.com", "--challenge", "dns-persist", "--webroot", "/"
    )
    assert webroot.returncode == 2 and "is not for dns-persist-01" in webroot.stderr
