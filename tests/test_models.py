"""Records read back from the store are checked, not trusted (models.from_dict)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certctl.models import AccountRecord, CertRecord, Current, RecordError

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def good() -> dict[str, Any]:
    """What tomllib gives for a typical meta.toml."""
    return {
        "name": "shop",
        "domains": ["shop.example.net"],
        "source": "acme",
        "key_type": "ec256",
        "server": "https://acme.example/dir",
        "validation": {"challenge": "http", "method": "webroot", "webroot": "/srv", "settings": {}},
        "renew_before_days": 20,
        "created": NOW,
        "current": {
            "version": 2,
            "serial": "abcd",
            "not_before": NOW - timedelta(days=1),
            "not_after": NOW + timedelta(days=89),
            "issuer": "Test CA",
            "fingerprint": "AA:BB",
            "names": ["shop.example.net"],
        },
        "order": {
            "url": "https://acme.example/order/1",
            "status": "pending",
            "finalize_url": "https://acme.example/finalize/1",
            "challenges": [
                {
                    "domain": "shop.example.net",
                    "authz_url": "https://acme.example/authz/1",
                    "url": "https://acme.example/chall/1",
                    "type": "http-01",
                    "token": "tok",
                    "validation": "tok.thumb",
                }
            ],
        },
        "revoked": False,
        "renewal": {"failures": 1, "last_attempt": NOW, "ari_next_check": NOW, "future": [1]},
        "notices": {"last_sent": NOW, "channels": ["e-mail to a@b"], "delivered": {"x": NOW}},
        "a_newer_key": "kept out",
    }


def test_a_good_record_loads_with_its_types() -> None:
    record = CertRecord.from_dict(good())
    assert record.renew_before_days == 20.0 and isinstance(record.renew_before_days, float)
    assert record.current is not None and record.current.version == 2
    assert record.order is not None and record.order.challenges[0].token == "tok"
    assert record.renewal["future"] == [1]  # unknown state keys are kept as they are
    assert CertRecord.from_dict(record.to_dict()) == record


def changed(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(good())
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is KeyError:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("current.not_after", "soon", "current.not_after: expected a date-time, got a string"),
        (
            "current.not_after",
            NOW.replace(tzinfo=None),
            "current.not_after: expected a date-time with a time zone",
        ),
        ("current.version", "2", "current.version: expected an integer, got a string"),
        ("current.version", True, "current.version: expected an integer, got true/false"),
        ("current.version", 0, "current.version: expected a version number"),
        ("current.names", "shop.example.net", "current.names: expected an array, got a string"),
        ("current.names.0", 5, "current.names[0]: expected a string, got an integer"),
        ("current.serial", KeyError, "current.serial: missing"),
        ("current", 5, "current: expected a table, got an integer"),
        ("domains", [], "domains: expected one or more names"),
        ("domains", "shop.example.net", "domains: expected an array, got a string"),
        ("name", KeyError, "name: missing"),
        ("source", "bought", "source: expected one of acme, upload"),
        ("revoked", "no", "revoked: expected true or false, got a string"),
        ("renew_before_days", "20", "renew_before_days: expected a number, got a string"),
        ("renew_before_days", -3, "renew_before_days: expected a positive number"),
        ("validation.challenge", "tls", "validation.challenge: expected one of http, dns"),
        ("validation.http_port", 70000, "validation.http_port: expected a port number"),
        ("validation.settings", [], "validation.settings: expected a table, got an array"),
        ("order.challenges.0.token", 7, "order.challenges[0].token: expected a string"),
        ("order.expires", "tomorrow", "order.expires: expected a date-time, got a string"),
        ("renewal.failures", "many", "renewal.failures: expected an integer, got a string"),
        ("renewal.failures", -1, "renewal.failures: expected 0 or more"),
        ("renewal.ari_next_check", "soon", "renewal.ari_next_check: expected a date-time"),
        ("notices.last_sent", 1, "notices.last_sent: expected a date-time, got an integer"),
        ("notices.delivered", {"x": "today"}, "notices.delivered.x: expected a date-time"),
        ("notices.channels", [1], "notices.channels[0]: expected a string, got an integer"),
    ],
)
def test_wrong_types_and_values_name_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        CertRecord.from_dict(changed(path, value))
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)


def test_the_error_never_quotes_the_value() -> None:
    with pytest.raises(RecordError) as caught:
        CertRecord.from_dict(changed("validation.webroot", ["s3cr3t-value"]))
    assert "s3cr3t" not in str(caught.value)


def test_current_and_account_check_their_fields_too() -> None:
    facts = dict(good()["current"], not_before="yesterday")
    with pytest.raises(RecordError, match=r"^not_before: expected a date-time"):
        Current.from_dict(facts)
    with pytest.raises(RecordError, match=r"^uri: expected a string, got an integer"):
        AccountRecord.from_dict({"server": "https://acme.example/dir", "uri": 5})
    with pytest.raises(RecordError, match=r"^expected a table, got an array"):
        CertRecord.from_dict([])  # type: ignore[arg-type]
