"""Pure decisions about replacing a certificate: method, names, duplicates, renew_before, e-mail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certctl.errors import BadInput
from certctl.models import CertRecord, Current, Validation
from certctl.policy.contact import check_email
from certctl.policy.replacing import (
    MethodChoice,
    check_dropped,
    keep_reason,
    method_change,
    settle,
)
from certctl.policy.timing import max_renew_before

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RFC2136 = {
    "server": "192.0.2.53:53",
    "tsig_key": "certctl.",
    "tsig_algorithm": "hmac-sha256",
    "tsig_secret_env": "TSIG",
    "propagation_timeout": 120.0,
}


def record(
    names: list[str], days: float = 90, method: str = "standalone", **kw: object
) -> CertRecord:
    current = Current(1, "01", T0, T0 + timedelta(days=days), "CA", "ff", list(names))
    challenge = "dns" if method in ("rfc2136", "hook") else "http"
    validation = Validation(challenge, method, http_port=5002 if method == "standalone" else None)
    if method == "rfc2136":
        validation.settings = dict(RFC2136)
    return CertRecord(name=names[0], domains=list(names), current=current, validation=validation)


# ---- the validation method of a new order ---------------------------------------------


def test_no_method_given_keeps_the_stored_method_and_its_settings() -> None:
    old = Validation("http", "standalone", http_port=5002)
    assert settle(None, None, None, None, {}, old) == MethodChoice("http", "standalone", None, 5002)
    dns = Validation("dns", "rfc2136", settings=dict(RFC2136))
    assert settle(None, None, None, None, {}, dns) == MethodChoice(
        "dns", "rfc2136", dns_settings=RFC2136
    )
    # the same challenge named again is no new method either
    assert settle("dns", None, None, None, {}, dns).method == "rfc2136"


def test_no_method_on_a_new_certificate_is_manual_http() -> None:
    assert settle(None, None, None, None, {}, None) == MethodChoice("http", "manual")
    assert settle("dns", None, None, None, {}, None) == MethodChoice("dns", "manual")


def test_a_named_method_replaces_the_stored_one() -> None:
    old = Validation("http", "standalone", http_port=5002)
    assert settle(None, "webroot", "/var/www", None, {}, old) == MethodChoice(
        "http", "webroot", "/var/www"
    )
    assert settle(None, "manual", None, None, {}, old) == MethodChoice("http", "manual")
    # another challenge without a provider: manual DNS
    assert settle("dns", None, None, None, {}, old) == MethodChoice("dns", "manual")


def test_options_given_replace_stored_settings_one_by_one() -> None:
    dns = Validation("dns", "rfc2136", settings=dict(RFC2136))
    chosen = settle("dns", "rfc2136", None, None, {"server": "192.0.2.54:53"}, dns)
    assert chosen.dns_settings == {**RFC2136, "server": "192.0.2.54:53"}
    only = settle(None, None, None, None, {"nameservers": ["192.0.2.1"]}, dns)
    assert only.dns_settings == {**RFC2136, "nameservers": ["192.0.2.1"]}
    port = settle(None, "standalone", None, None, {}, Validation("http", "standalone", None, 8080))
    assert port.http_port == 8080


def test_warning_when_moving_off_automatic_renewal() -> None:
    old = Validation("http", "standalone")
    warning = method_change("a.example", old, Validation("http", "manual"))
    assert warning is not None
    assert "http-01 standalone" in warning and "http-01 manual" in warning
    assert "renew-due will only send notices" in warning
    assert method_change("a.example", old, Validation("http", "webroot", "/w")) is None
    assert method_change("a.example", None, Validation("http", "manual")) is None
    assert method_change("a.example", Validation(), Validation("dns", "manual")) is None


# ---- names left out -------------------------------------------------------------------


def test_dropping_a_name_is_refused_naming_the_flag() -> None:
    existing = record(["o.test", "www.o.test"])
    with pytest.raises(BadInput) as raised:
        check_dropped(existing, ["o.test"], False, None)
    message = str(raised.value)
    assert "www.o.test" in message and "--drop-names" in message and "-d www.o.test" in message


def test_dropping_a_name_allowed_by_flag_or_by_a_yes() -> None:
    existing = record(["o.test", "www.o.test"])
    check_dropped(existing, ["o.test"], True, None)
    asked: list[str] = []
    check_dropped(existing, ["o.test"], False, lambda q: asked.append(q) or True)
    assert len(asked) == 1 and "www.o.test" in asked[0]
    with pytest.raises(BadInput):
        check_dropped(existing, ["o.test"], False, lambda q: False)


def test_adding_names_or_a_first_order_needs_nothing() -> None:
    check_dropped(record(["o.test"]), ["o.test", "www.o.test"], False, None)
    check_dropped(None, ["o.test"], False, None)
    pending = CertRecord(name="p.test", domains=["p.test", "www.p.test"])  # no certificate yet
    check_dropped(pending, ["p.test"], False, None)


# ---- duplicates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "domains", "kept"),
    [
        pytest.param(timedelta(days=1), None, True, id="fresh: kept"),
        pytest.param(timedelta(days=59), None, True, id="just before a third is left: kept"),
        pytest.param(timedelta(days=60), None, False, id="due (a third left): issued"),
        pytest.param(timedelta(days=91), None, False, id="expired: issued"),
        pytest.param(timedelta(days=1), ["a.test", "b.test"], False, id="names added: issued"),
        pytest.param(timedelta(days=1), ["a.test"], True, id="same names: kept"),
    ],
)
def test_keep_reason_follows_renew_due_policy(
    at: timedelta, domains: list[str] | None, kept: bool
) -> None:
    reason = keep_reason(record(["a.test"]), T0 + at, domains)
    assert (reason is not None) == kept
    if reason:
        assert "not due for renewal before 2026-03-02" in reason


def test_revoked_uploaded_or_renew_before_certificates_are_not_kept() -> None:
    revoked = record(["a.test"])
    revoked.revoked = True
    assert keep_reason(revoked, T0 + timedelta(days=1)) is None
    uploaded = record(["a.test"])
    uploaded.source = "upload"
    assert keep_reason(uploaded, T0 + timedelta(days=1)) is None
    soon = record(["a.test"])
    soon.renew_before_days = 89.5
    assert keep_reason(soon, T0 + timedelta(days=1)) is None


# ---- renew_before bound ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "largest"),
    [
        (timedelta(days=90), 89),
        (timedelta(days=90) - timedelta(seconds=1), 89),  # a CA's inclusive notAfter
        (timedelta(hours=160), 5.66),
        (timedelta(days=6), 5),
        (timedelta(hours=12), 0.25),
    ],
)
def test_max_renew_before(lifetime: timedelta, largest: float) -> None:
    assert max_renew_before(T0, T0 + lifetime) == largest


# ---- contact e-mail -------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["not-an-address", "a@b", "a b@example.com", "ops@exa mple.com", "@example.com", "ops@",
     "ops@@example.com", "ops@example..com", "ops.@example.com", "ops@*.example.com",
     "ops@example.com,", "ops@192.0.2.1"],
)  # fmt: skip
def test_invalid_email_refused(address: str) -> None:
    with pytest.raises(BadInput) as raised:
        check_email(address)
    assert "invalid e-mail address" in str(raised.value) and "--email" in str(raised.value)


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("ops@example.com", "ops@example.com"),
        ("first.last+certs@Example.COM", "first.last+certs@example.com"),
        ("ops@example.com, dev@example.org", "ops@example.com,dev@example.org"),
        ("ops@bücher.example", "ops@xn--bcher-kva.example"),
    ],
)
def test_valid_email_accepted(address: str, stored: str) -> None:
    assert check_email(address) == stored
