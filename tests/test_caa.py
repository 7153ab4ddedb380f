"""CAA account and method binding (RFC 8657): `account caa`, and verify's self-check refusing."""

from __future__ import annotations

from contextlib import closing

import pytest

from certctl.policy.caa import CaaRecord, parse, refusal

from conftest import Certctl, standalone, unique
from pebble import PebbleServer, _fqdn


def _add_caa(pebble: PebbleServer, host: str, tag: str, value: str) -> None:
    pebble._chall_post(
        "/add-caa", {"host": _fqdn(host), "policies": [{"tag": tag, "value": value}]}
    )


def test_refusal_follows_rfc_8659_and_8657() -> None:
    ours, account = ["ca.example"], "https://ca.example/acct/1"

    def refused(*texts: str, method: str = "http-01", wildcard: bool = False) -> list[str]:
        records = [r for r in (parse(t) for t in texts) if r is not None]
        return [str(r) for r in refusal(records, ours, account, method, wildcard)]

    assert refused() == []
    assert refused('0 iodef "mailto:x@example.com"') == []
    assert refused('0 issue "ca.example"') == []
    assert refused('0 issue "other.example"') == ['0 issue "other.example"']
    assert refused('0 issue ";"') == ['0 issue ";"']
    assert refused(f'0 issue "ca.example; accounturi={account}"') == []
    assert refused('0 issue "ca.example; accounturi=https://ca.example/acct/2"') != []
    assert refused('0 issue "ca.example; validationmethods=dns-01,tls-alpn-01"') != []
    assert refused('0 issue "ca.example; validationmethods=dns-01, http-01"') == []
    # a wildcard: issuewild decides when present, else issue
    assert refused('0 issue "ca.example"', '0 issuewild "other.example"', wildcard=True) != []
    assert refused('0 issue "other.example"', '0 issuewild "ca.example"', wildcard=True) == []
    assert parse('128 issue "ca.example"') == CaaRecord(128, "issue", "ca.example")


@pytest.mark.pebble
@pytest.mark.parametrize(
    ("tag", "value", "why"),
    [
        ("issue", "otherca.example", "another CA"),
        (
            "issue",
            "pebble.letsencrypt.org; accounturi=https://127.0.0.1/my-account/1",
            "another account",
        ),
        ("issue", "pebble.letsencrypt.org; validationmethods=dns-01", "another method"),
    ],
)
def test_caa_refusing_us_stops_verify_before_the_ca(
    certctl: Certctl, pebble: PebbleServer, tag: str, value: str, why: str
) -> None:
    domain = unique()
    _add_caa(pebble, domain, tag, value)
    assert certctl.run("order", "-d", domain, *standalone(pebble)).returncode == 0
    proc = certctl.run("verify", domain)
    assert proc.returncode == 3, (why, proc.stderr)
    assert "the CA was not asked" in proc.stderr
    assert (
        f"CAA {domain}.: expected" in proc.stderr
        and f'{domain}. CAA 0 {tag} "{value}"' in proc.stderr
    )
    with closing(certctl.open()) as store:
        order = store.read(domain).order
    assert order is not None and order.status == "pending"


@pytest.mark.pebble
def test_the_records_account_caa_prints_let_this_account_through(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique()
    assert certctl.run("order", "-d", domain, *standalone(pebble)).returncode == 0
    printed = certctl.json("account", "caa", "-d", domain)
    account = printed["account"]
    value = f"pebble.letsencrypt.org; accounturi={account}; validationmethods=http-01"
    assert printed == {
        "domain": domain,
        "records": [f'{domain}. IN CAA 0 issue "{value}"'],
        "validationmethods": ["http-01"],
        "account": account,
    }
    _add_caa(pebble, domain, "issue", value)
    verified = certctl.run("verify", domain)
    assert verified.returncode == 0, verified.stderr
    assert certctl.json("issue", domain)["version"] == 1
