"""A NAME argument may be the certificate's name or a domain only that certificate has.

Offline: records are written to the store directly, through the store contract on either
backend (the resolver reads only the store).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certctl.errors import BadInput
from certctl.models import CertRecord, Challenge, OrderState, Validation

from conftest import Certctl


def _order(domains: list[str], expires: datetime) -> OrderState:
    return OrderState(
        url="https://ca.invalid/order/1",
        status="pending",
        finalize_url="https://ca.invalid/finalize/1",
        expires=expires,
        challenges=[
            Challenge(
                domain=d.removeprefix("*."),
                authz_url=f"https://ca.invalid/authz/{n}",
                url=f"https://ca.invalid/chall/{n}",
                type="dns-01",
                token=f"tok{n}",
                validation=f"txt-value-{n}",
            )
            for n, d in enumerate(domains)
        ],
    )


def _write(runner: Certctl, name: str, domains: list[str], expires: datetime | None = None) -> None:
    s = runner.open()
    try:
        s.ensure()
        later = expires or datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
        s.write(
            CertRecord(
                name=name,
                domains=domains,
                server="https://127.0.0.1:9/dir",  # never contacted
                validation=Validation(challenge="dns"),
                order=_order(domains, later),
            )
        )
    finally:
        s.close()


def _names(runner: Certctl) -> list[str]:
    s = runner.open()
    try:
        return list(s.names())
    finally:
        s.close()


@pytest.fixture
def stored(offline: Certctl) -> Certctl:
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    _write(offline, "wildcard.d.test", ["*.d.test", "d.test"], past)  # fails before a CA
    _write(offline, "xn--bcher-kva.test", ["xn--bcher-kva.test"])
    _write(offline, "one", ["shared.test", "one.test"])
    _write(offline, "two", ["shared.test", "two.test"])
    return offline


@pytest.mark.parametrize(
    ("given", "name"),
    [
        pytest.param("wildcard.d.test", "wildcard.d.test", id="exact-name"),
        pytest.param("*.d.test", "wildcard.d.test", id="wildcard-domain"),
        pytest.param("*.D.Test.", "wildcard.d.test", id="wildcard-any-case"),
        pytest.param("d.test", "wildcard.d.test", id="apex-of-wildcard"),
        pytest.param("bücher.test", "xn--bcher-kva.test", id="u-label"),
        pytest.param("BÜCHER.test", "xn--bcher-kva.test", id="u-label-upper"),
        pytest.param("xn--bcher-kva.test", "xn--bcher-kva.test", id="a-label"),
        pytest.param("one.test", "one", id="domain-of-one"),
    ],
)
def test_show_accepts_a_domain_for_the_name(stored: Certctl, given: str, name: str) -> None:
    result = stored.invoke("show", given, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == name


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["verify"], id="verify"),
        pytest.param(["issue"], id="issue"),
        pytest.param(["revoke"], id="revoke"),
        pytest.param(["set", "--renew-before", "20"], id="set"),
        pytest.param(["export", "--dir", "."], id="export"),
        pytest.param(["show", "--pem"], id="show-pem"),
    ],
)
def test_every_command_taking_name_resolves_a_wildcard(stored: Certctl, command: list[str]) -> None:
    """Each answers about wildcard.d.test (these fail later, for their own reasons, offline)."""
    sub, *options = command
    result = stored.invoke(sub, "*.d.test", *options)
    assert "invalid certificate name" not in result.output
    assert "wildcard.d.test" in result.output or result.exit_code == 0, result.output


def test_set_by_domain_changes_that_certificate(stored: Certctl) -> None:
    result = stored.invoke("set", "*.d.test", "--renew-before", "20", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "wildcard.d.test"
    s = stored.open()
    try:
        assert s.read("wildcard.d.test").renew_before_days == 20
    finally:
        s.close()


def test_remove_by_domain(stored: Certctl) -> None:
    result = stored.invoke("remove", "bücher.test", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "xn--bcher-kva.test"
    assert "xn--bcher-kva.test" not in _names(stored)


def test_renew_due_force_resolves_each_name(stored: Certctl) -> None:
    result = stored.invoke("renew-due", "--force", "*.d.test", "--dry-run", "--json")
    assert "invalid certificate name" not in result.output
    # resolved to its certificate, which renew-due then refuses: manual DNS needs a human
    assert result.exit_code == 2, result.output
    assert "cannot renew 'wildcard.d.test' unattended" in result.output


def test_a_domain_of_several_certificates_names_them(stored: Certctl) -> None:
    before = _names(stored)
    result = stored.invoke("remove", "shared.test", "--yes")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: 'shared.test' is a domain of 2 certificates (one, two): give one of these names"
    )
    assert _names(stored) == before


def test_unknown_domain_is_not_found(stored: Certctl) -> None:
    result = stored.invoke("show", "*.other.test")
    assert result.exit_code == 2
    assert "no certificate named '*.other.test', nor one for that domain" in result.stderr
    assert "see 'certctl list'" in result.stderr


def test_neither_a_name_nor_a_domain(stored: Certctl) -> None:
    result = stored.invoke("show", "a/b")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid certificate name 'a/b'")


def test_exact_name_wins_over_a_domain(offline: Certctl) -> None:
    _write(offline, "d.test", ["www.d.test"])
    _write(offline, "wildcard.d.test", ["*.d.test", "d.test"])
    result = offline.invoke("show", "d.test", "--json")
    assert json.loads(result.stdout)["name"] == "d.test"


@pytest.mark.parametrize(
    ("given", "stored_as"),
    [
        pytest.param("shop", "shop", id="plain-name"),
        pytest.param("bücher.test", "xn--bcher-kva.test", id="u-label"),
        pytest.param("*.d.test", "wildcard.d.test", id="wildcard"),
    ],
)
def test_upload_names_a_domain_as_order_would(
    offline: Certctl, tmp_path: Path, given: str, stored_as: str
) -> None:
    from certfactory import make_leaf

    (tmp_path / "b.pem").write_bytes(make_leaf("www.example.com").bundle_pem())
    result = offline.invoke("upload", given, "--bundle", str(tmp_path / "b.pem"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == stored_as
    assert _names(offline) == [stored_as]
    assert offline.invoke("show", given, "--json").exit_code == 0


def test_policy_name_helpers() -> None:
    from certctl.policy.names import cert_name_for, shown_domain, unicode_domain

    assert unicode_domain("*.xn--bcher-kva.test") == "*.bücher.test"
    assert unicode_domain("example.com") == "example.com"
    assert unicode_domain("xn--zz.test") == "xn--zz.test"  # undecodable: as stored
    assert shown_domain("xn--bcher-kva.test") == "xn--bcher-kva.test (bücher.test)"
    assert shown_domain("example.com") == "example.com"
    assert cert_name_for("Bücher.Test") == "xn--bcher-kva.test"
    with pytest.raises(BadInput, match="invalid certificate name"):
        cert_name_for("a/b")
