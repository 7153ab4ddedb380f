"""What `show`, `list` and the summaries print: challenges, order states, serials, dates, IDN."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certctl.models import CertRecord, Challenge, OrderState, Validation

import storeview
from certfactory import make_leaf
from conftest import Certctl, unique
from pebble import PebbleServer

WHEN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")


def _record(name: str, expires: datetime, challenges: list[Challenge]) -> CertRecord:
    return CertRecord(
        name=name,
        domains=sorted({f"{'*.' if c.type == 'dns-01' else ''}{c.domain}" for c in challenges}),
        server="https://127.0.0.1:9/dir",
        validation=Validation(challenge="dns" if challenges[0].type == "dns-01" else "http"),
        order=OrderState(
            url="https://127.0.0.1:9/order/1",
            status="pending",
            finalize_url="https://127.0.0.1:9/finalize/1",
            expires=expires,
            challenges=challenges,
        ),
    )


def _write(cx: Certctl, record: CertRecord) -> None:
    storeview.write_record(cx, record)


DNS = Challenge(
    domain="d.test",
    authz_url="https://127.0.0.1:9/authz/1",
    url="https://127.0.0.1:9/chall/1",
    type="dns-01",
    token="tokD",
    validation="txt-value-Xy_1",
)
HTTP = Challenge(
    domain="h.test",
    authz_url="https://127.0.0.1:9/authz/2",
    url="https://127.0.0.1:9/chall/2",
    type="http-01",
    token="tokH",
    validation="tokH.thumbprint-42",
)


def test_show_text_prints_what_to_publish(offline: Certctl) -> None:
    later = datetime.now(UTC) + timedelta(days=7)
    _write(offline, _record("wildcard.d.test", later, [DNS]))
    _write(offline, _record("h.test", later, [HTTP]))
    dns = offline.run("show", "wildcard.d.test")
    assert dns.returncode == 0, dns.stderr
    assert "      name:  _acme-challenge.d.test.\n" in dns.stdout
    assert "      type:  TXT\n" in dns.stdout
    assert "      value: txt-value-Xy_1\n" in dns.stdout
    assert (
        "  next step: publish what is shown above, then run: certctl verify wildcard.d.test\n"
        in dns.stdout
    )
    http = offline.run("show", "h.test")
    assert "      URL:     http://h.test/.well-known/acme-challenge/tokH\n" in http.stdout
    assert "      content: tokH.thumbprint-42\n" in http.stdout


def test_an_expired_order_is_order_expired(offline: Certctl) -> None:
    past = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    _write(offline, _record("wildcard.d.test", past, [DNS]))
    listed = json.loads(offline.invoke("list", "--json").stdout)["certificates"]
    assert [(e["name"], e["state"]) for e in listed] == [("wildcard.d.test", "order expired")]
    assert listed[0]["reason"] == "order expired 2026-01-02 03:04 UTC: order again"
    table = offline.run("list").stdout
    assert re.search(r"wildcard\.d\.test .* order expired$", table, re.M), table
    shown = json.loads(offline.invoke("show", "*.d.test", "--json").stdout)
    assert shown["state"] == "order expired"
    assert shown["next_step"].endswith(
        "certctl --server https://127.0.0.1:9/dir order -d '*.d.test' --name wildcard.d.test"
        " --challenge dns"
    )
    text = offline.run("show", "wildcard.d.test").stdout
    assert "  state:        order expired (order expired 2026-01-02 03:04 UTC" in text
    assert "  order expired: pending, expired 2026-01-02 03:04 UTC\n" in text


def _openssl_serial(pem: bytes) -> str:
    proc = subprocess.run(
        ["openssl", "x509", "-noout", "-serial"], input=pem, capture_output=True, check=True
    )
    return proc.stdout.decode().strip().removeprefix("serial=")


@pytest.mark.parametrize("serial", [0x0A1B2C, 0x05, 0x80, 0x0123456789ABCDEF0123])
def test_serial_is_printed_as_openssl_does(offline: Certctl, tmp_path: Path, serial: int) -> None:
    leaf = make_leaf("serial.example.net", serial=serial)
    expected = _openssl_serial(leaf.cert_pem())
    assert expected[0] == "0" or serial >= 0x80  # the cases with a leading zero byte digit
    (tmp_path / "b.pem").write_bytes(leaf.bundle_pem())
    uploaded = offline.run("upload", "s", "--bundle", str(tmp_path / "b.pem"))
    assert f"  serial:    {expected}\n" in uploaded.stdout, uploaded.stdout
    assert json.loads(offline.invoke("show", "s", "--json").stdout)["certificate"]["serial"] == (
        expected
    )
    assert f"  serial:       {expected}\n" in offline.run("show", "s").stdout


def test_upload_and_show_dates_share_one_form(offline: Certctl, tmp_path: Path) -> None:
    leaf = make_leaf("dates.example.net")
    (tmp_path / "b.pem").write_bytes(leaf.bundle_pem())
    uploaded = offline.run("upload", "dates", "--bundle", str(tmp_path / "b.pem")).stdout
    not_after = leaf.cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
    assert f"  not after: {not_after} (" in uploaded, uploaded
    assert f"  not after:    {not_after} (" in offline.run("show", "dates").stdout


@pytest.mark.pebble
def test_idn_domain_orders_and_shows_both_forms(certctl: Certctl, pebble: PebbleServer) -> None:
    label = unique("b\u00fccher").split(".")[0]  # bücher-<hex>
    domain = f"{label}.example.com"
    ascii_label = label.encode("idna").decode()
    a_label = f"{ascii_label}.example.com"
    ordered = certctl.run("order", "-d", domain, "--agree-tos")
    assert ordered.returncode == 0, ordered.stderr
    assert f"Order placed for {a_label} ({a_label} ({domain}))" in ordered.stdout
    shown = certctl.run("show", domain)
    assert shown.returncode == 0, shown.stderr
    assert f"  domains:      {a_label} ({domain})\n" in shown.stdout
    document = json.loads(certctl.run("show", domain, "--json").stdout)
    assert document["domains"] == [a_label] and document["unicode_domains"] == [domain]
    entries = certctl.json("list")["certificates"]
    assert entries[0]["unicode_domains"] == [domain]
    assert f"{a_label} ({domain})" in certctl.run("list").stdout
