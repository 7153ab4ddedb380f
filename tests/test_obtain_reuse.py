"""order/verify/issue/obtain/set over an existing certificate, against a real Pebble.

A new order keeps the validation method, `issue`/`obtain` keep a certificate that
is not due, dropping names needs --drop-names, `set` refuses a renewal loop, and
bad input (an e-mail address, issue before verify) is refused before the CA is asked.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from conftest import Certctl, make_due, standalone, unique
from pebble import PebbleServer

pytestmark = pytest.mark.pebble


def meta(certctl: Certctl, name: str) -> Any:
    """The stored record: meta.toml's bytes on files, the record read back on PostgreSQL."""
    if certctl.backend == "filesystem":
        return (certctl.store / "certs" / name / "meta.toml").read_bytes()
    with closing(certctl.open()) as store:
        return store.read(name).to_dict()


def versions(certctl: Certctl, name: str) -> list[str]:
    if certctl.backend == "filesystem":
        return sorted(p.name for p in (certctl.store / "certs" / name / "versions").iterdir())
    with closing(certctl.open()) as store:
        return [str(v) for v in store.versions(name)]


def listed(certctl: Certctl) -> dict[str, dict[str, object]]:
    return {e["name"]: e for e in certctl.json("list")["certificates"]}


# ---- 1. a new order keeps the validation method ---------------------------------------


def test_order_without_method_keeps_automatic_validation(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique("keep")
    certctl.json("obtain", "-d", domain, *standalone(pebble))
    ordered = certctl.run("order", "-d", domain, "--json")
    assert ordered.returncode == 0, ordered.stderr
    assert json.loads(ordered.stdout)["validation"] == "http-01 standalone"
    assert "warning" not in ordered.stderr
    shown = certctl.json("show", domain)
    assert shown["validation"] == "http-01 standalone"
    assert shown["validation_settings"]["http_port"] == pebble.http_port
    assert listed(certctl)[domain]["renewal"] == "http-01 standalone"
    # the order is never finished: renew-due still renews it when due (not only a notice)
    make_due(certctl, domain)
    renewed = certctl.run("renew-due", "--json")
    assert renewed.returncode == 0, renewed.stderr
    assert [c["action"] for c in json.loads(renewed.stdout)["certificates"]] == ["renewed"]


def test_order_without_method_keeps_dns_provider_settings(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path
) -> None:
    hook = tmp_path / "dns-hook"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    domain = unique("hk")
    first = ("order", "-d", domain, "--challenge", "dns", "--dns-provider", "hook")
    certctl.json(*first, "--dns-hook", str(hook), "--propagation-timeout", "30", "--agree-tos")
    again = certctl.json("order", "-d", domain)
    assert again["validation"] == "dns-01 hook"
    settings = certctl.json("show", domain)["validation_settings"]
    assert (settings["hook"], settings["propagation_timeout"]) == (str(hook), 30.0)
    # one setting given: the others stay
    certctl.json("order", "-d", domain, "--dns-nameserver", "127.0.0.1:53")
    settings = certctl.json("show", domain)["validation_settings"]
    assert (settings["hook"], settings["nameservers"]) == (str(hook), ["127.0.0.1:53"])


def test_explicit_switch_to_manual_is_warned_about(certctl: Certctl, pebble: PebbleServer) -> None:
    domain = unique("man")
    certctl.json("obtain", "-d", domain, *standalone(pebble))
    switched = certctl.run("order", "-d", domain, "--manual")
    assert switched.returncode == 0, switched.stderr
    warnings = [line for line in switched.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, switched.stderr
    assert "http-01 standalone" in warnings[0] and "http-01 manual" in warnings[0]
    assert listed(certctl)[domain]["renewal"] == "http-01 manual"


def test_three_steps_on_an_existing_certificate_issue_the_order(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    """A pending order the user placed is finished by `issue`, though the live one is fine."""
    domain = unique("three")
    certctl.json("obtain", "-d", domain, *standalone(pebble))
    certctl.json("order", "-d", domain)
    certctl.json("verify", domain)
    issued = certctl.json("issue", domain)
    assert (issued["action"], issued["version"], issued["new_order"]) == ("issued", 2, False)
    assert versions(certctl, domain) == ["1", "2"]


# ---- 2. no duplicates -----------------------------------------------------------------


def test_issue_and_obtain_keep_a_certificate_that_is_not_due(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique("dup")
    first = certctl.json("obtain", "-d", domain, *standalone(pebble))
    assert (first["action"], first["version"]) == ("issued", 1)
    before = meta(certctl, domain)

    kept = certctl.run("issue", domain, "--json")
    assert kept.returncode == 0, kept.stderr
    report = json.loads(kept.stdout)
    assert (report["action"], report["version"], report["serial"]) == ("kept", 1, first["serial"])
    assert "not due for renewal" in report["reason"]
    again = certctl.json("obtain", "-d", domain, *standalone(pebble))
    assert (again["action"], again["serial"]) == ("kept", first["serial"])
    text = certctl.run("issue", domain)
    assert text.returncode == 0
    assert f"Kept the current certificate {domain} (version 1)" in text.stdout
    assert "--force" in text.stdout
    assert versions(certctl, domain) == ["1"] and meta(certctl, domain) == before

    forced = certctl.json("issue", domain, "--force")
    assert (forced["action"], forced["version"]) == ("issued", 2)
    forced = certctl.json("obtain", "-d", domain, *standalone(pebble), "--force")
    assert (forced["action"], forced["version"]) == ("issued", 3)


def test_issue_reissues_a_due_certificate(certctl: Certctl, pebble: PebbleServer) -> None:
    domain = unique("due")
    certctl.json("obtain", "-d", domain, *standalone(pebble))
    make_due(certctl, domain)
    issued = certctl.json("issue", domain)
    assert (issued["action"], issued["version"], issued["new_order"]) == ("issued", 2, True)


# ---- 3. dropping names needs --drop-names ----------------------------------------------


def test_dropping_a_name_is_refused_off_a_terminal(certctl: Certctl, pebble: PebbleServer) -> None:
    domain = unique("o")
    www = f"www.{domain}"
    certctl.json("obtain", "-d", domain, "-d", www, *standalone(pebble))
    before = meta(certctl, domain)
    for command in ("obtain", "order"):
        refused = certctl.run(command, "-d", domain, *standalone(pebble))
        assert refused.returncode == 2, refused.stderr
        assert refused.stdout == ""
        assert www in refused.stderr and "--drop-names" in refused.stderr
        assert refused.stderr.count("\n") == 1
        assert meta(certctl, domain) == before  # nothing changed, no order placed
        with closing(certctl.open()) as store:
            assert store.pending_key_ids(domain) == []
    with closing(certctl.open()) as store:
        record = store.read(domain)
    assert record.order is None and record.domains == [domain, www]

    dropped = certctl.json("obtain", "-d", domain, *standalone(pebble), "--drop-names")
    assert (dropped["action"], dropped["version"], dropped["domains"]) == ("issued", 2, [domain])


def test_adding_a_name_issues_a_new_certificate(certctl: Certctl, pebble: PebbleServer) -> None:
    domain = unique("add")
    certctl.json("obtain", "-d", domain, *standalone(pebble))
    added = certctl.json("obtain", "-d", domain, "-d", f"www.{domain}", *standalone(pebble))
    assert (added["action"], added["version"]) == ("issued", 2)
    assert added["domains"] == [domain, f"www.{domain}"]


# ---- 4. set --renew-before ------------------------------------------------------------


def test_renew_before_beyond_the_lifetime_is_refused(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique("rb")
    # a named profile: without one Pebble picks one at random (90 or 6 days here)
    certctl.json("obtain", "-d", domain, *standalone(pebble), "--profile", "default")
    before = meta(certctl, domain)
    refused = certctl.run("set", domain, "--renew-before", "100")
    assert refused.returncode == 2
    assert "live 90 days" in refused.stderr and "at most 89" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "warning" not in refused.stderr
    assert meta(certctl, domain) == before
    assert certctl.run("set", domain, "--renew-before", "89.5").returncode == 2
    accepted = certctl.run("set", domain, "--renew-before", "89", "--json")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["renew_before_days"] == 89


# ---- 5. issue before verify -----------------------------------------------------------


def test_issue_before_verify_exits_2_naming_verify(certctl: Certctl, pebble: PebbleServer) -> None:
    domain = unique("early")
    certctl.json("order", "-d", domain, "--agree-tos")
    before = meta(certctl, domain)
    early = certctl.run("issue", domain)
    assert early.returncode == 2, early.stderr
    assert f"validate it first: certctl verify {domain}" in early.stderr
    assert meta(certctl, domain) == before


# ---- 6. verify --json in every outcome ------------------------------------------------


def test_verify_json_when_not_visible(certctl: Certctl, pebble: PebbleServer) -> None:
    domain = unique("vj")
    ordered = certctl.json("order", "-d", domain, "--agree-tos")
    proc = certctl.run("verify", domain, "--json")
    assert proc.returncode == 3
    report = json.loads(proc.stdout)
    assert report["name"] == domain and report["status"] == "pending"
    assert report["domains"] == []  # the CA was not asked
    [entry] = report["selfcheck"]
    challenge = ordered["challenges"][0]
    assert (entry["domain"], entry["type"], entry["where"], entry["expected"]) == (
        domain,
        "http-01",
        challenge["url"],
        challenge["content"],
    )
    assert entry["visible"] is False and entry["problems"]
    assert "not visible yet" in report["error"]
    assert proc.stderr.startswith("error: not visible yet")


def test_verify_json_when_the_ca_refuses(certctl: Certctl, pebble: PebbleServer) -> None:
    from conftest import serve_text
    from pebble import free_port

    domain = unique("vf")
    ordered = certctl.json("order", "-d", domain, "--agree-tos")
    content = ordered["challenges"][0]["content"].encode()
    decoy = free_port()
    env_port = {"CERTCTL_CHECK_HTTP_PORT": str(decoy)}
    with serve_text(decoy, content), serve_text(pebble.http_port, b"wrong content"):
        proc = certctl.run("verify", domain, "--json", extra_env=env_port)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["status"] == "invalid"
    assert [entry["visible"] for entry in report["selfcheck"]] == [True]
    [result] = report["domains"]
    assert result["domain"] == domain and result["valid"] is False and result["error"]
    assert "the CA could not validate" in report["error"]


# ---- 7. e-mail addresses --------------------------------------------------------------


@pytest.mark.parametrize("address", ["not-an-address", "a@b", "ops @example.com"])
def test_invalid_email_refused_before_the_ca(
    certctl: Certctl, pebble: PebbleServer, address: str
) -> None:
    domain = unique("em")
    for args in (
        ("order", "-d", domain, "--agree-tos", "--email", address),
        ("obtain", "-d", domain, *standalone(pebble), "--email", address),
        ("account", "register", "--agree-tos", "--email", address),
    ):
        proc = certctl.run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "invalid e-mail address" in proc.stderr and "--email" in proc.stderr
    with closing(certctl.open()) as store:
        assert store.account_servers() == []
        assert store.read_account_key(pebble.directory_url) is None
        assert not store.has(domain) and store.pending_key_ids(domain) == []
    if certctl.backend == "filesystem":
        assert not (certctl.store / "accounts").exists() or not any(
            (certctl.store / "accounts").iterdir()
        )
        assert not (certctl.store / "certs" / domain).exists()


def test_invalid_email_in_config_refused_before_registering(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('email = "ops@localhost"\n')
    proc = certctl.run(
        "account", "register", "--agree-tos", extra_env={"CERTCTL_CONFIG": str(config)}
    )
    assert proc.returncode == 2
    # the config file is checked when it is loaded, before any account work
    assert "config file" in proc.stderr and "email must be an e-mail address" in proc.stderr
