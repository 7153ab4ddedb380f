"""Endpoints, `probe`, `check` and `metrics` against real TLS servers on loopback.

Each verdict of README "Watching what is served" is produced by a real handshake
with a Python TLS server serving a chosen chain (expired, other names, the leaf
alone, an older version, a stranger), or a port that accepts and never answers.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families

from tlsserver import SilentServer, TlsServer

from certfactory import PEM, Issued, make_leaf, private_key
from conftest import Certctl

SITE = "site.example.com"


def upload(cx: Certctl, tmp_path: Path, name: str, leaf: Issued, *extra: str) -> None:
    """Store `leaf` (with its chain) under `name`."""
    paths = leaf.write(tmp_path / f"in-{name}-{leaf.cert.serial_number}")
    result = cx.invoke(
        "upload", name, "--cert", str(paths["fullchain"]), "--key", str(paths["key"]), *extra
    )
    assert result.exit_code == 0, result.output


def endpoint(cx: Certctl, name: str, *servers: Any, sni: str = SITE) -> None:
    """Record the servers' loopback ports as `name`'s endpoints."""
    args = [a for s in servers for a in ("--endpoint", f"127.0.0.1:{s.port}")]
    result = cx.invoke("set", name, *args, "--sni", sni)
    assert result.exit_code == 0, result.output


def probe_json(cx: Certctl, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = cx.invoke("probe", "--json", *args)
    document = json.loads(result.stdout)
    assert document["exit_code"] == result.exit_code
    return result.exit_code, document["endpoints"]


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- set --endpoint ------------------------------------------------------------------


def test_endpoints_persist_in_the_record(offline: Certctl, tmp_path: Path) -> None:
    upload(offline, tmp_path, "site", make_leaf(SITE))
    result = offline.invoke(
        "set", "site", "--endpoint", SITE, "--endpoint", "[::1]:8443", "--sni", SITE, "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["endpoints"] == [f"{SITE}:443", f"[::1]:8443 (sni {SITE})"]
    with closing(offline.open()) as store:
        stored = store.read("site").endpoints
    assert [(e.host, e.port, e.sni, e.starttls) for e in stored] == [
        (SITE, 443, None, None),
        ("::1", 8443, SITE, None),
    ]
    show = json.loads(offline.invoke("show", "site", "--json").stdout)
    assert show["endpoints"] == [f"{SITE}:443", f"[::1]:8443 (sni {SITE})"]
    mail = offline.invoke("set", "site", "--endpoint", "mail.example.com", "--starttls", "smtp")
    assert mail.exit_code == 0, mail.output
    assert "endpoints = mail.example.com:25 (starttls smtp)" in mail.stdout
    cleared = offline.invoke("set", "site", "--endpoint", "")
    assert cleared.exit_code == 0, cleared.output
    with closing(offline.open()) as store:
        assert store.read("site").endpoints == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--endpoint", "192.0.2.7"], "is an address: give --sni NAME"),
        (["--endpoint", "www.example.com:0"], "the port must be a number 1-65535"),
        (["--endpoint", "www.example.com:https"], "the port must be a number 1-65535"),
        (["--endpoint", "*.example.com"], "a wildcard is not a host"),
        (["--endpoint", "no_such host"], "invalid --endpoint"),
        (["--endpoint", "192.0.2.7", "--sni", "192.0.2.8"], "SNI carries a DNS name"),
        (["--sni", SITE], "--sni and --starttls go with --endpoint"),
        (["--endpoint", "", "--sni", SITE], "removes every endpoint"),
    ],
)
def test_bad_endpoints_exit_2_and_change_nothing(
    offline: Certctl, tmp_path: Path, args: list[str], message: str
) -> None:
    upload(offline, tmp_path, "site", make_leaf(SITE))
    assert offline.invoke("set", "site", "--endpoint", SITE).exit_code == 0
    result = offline.invoke("set", "site", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    with closing(offline.open()) as store:
        assert [e.host for e in store.read("site").endpoints] == [SITE]


# ---- probe verdicts ------------------------------------------------------------------


def test_probe_says_served_for_the_live_version(offline: Certctl, tmp_path: Path) -> None:
    leaf = make_leaf(SITE)
    upload(offline, tmp_path, "site", leaf)
    with TlsServer(leaf.fullchain_pem(), leaf.key_pem()) as server:
        endpoint(offline, "site", server)
        code, results = probe_json(offline)
        text = offline.invoke("probe", "site")
    assert code == 0
    assert [(r["status"], r["version"], r["serial"]) for r in results] == [
        ("served", 1, format(leaf.cert.serial_number, "X"))
    ]
    assert results[0]["sni"] == SITE and results[0]["protocol"].startswith("TLS")
    assert server.server_names[0] == SITE  # SNI was sent
    assert text.exit_code == 0
    assert text.stdout.splitlines()[1].split() == [
        "site",
        f"127.0.0.1:{server.port}",
        "(sni",
        f"{SITE})",
        "served",
        "live",
        "version",
        "1",
    ]


def test_probe_names_an_older_version(offline: Certctl, tmp_path: Path) -> None:
    old = make_leaf(SITE, key=private_key("ec256", 41))
    new = make_leaf(SITE, key=private_key("ec256", 42))
    upload(offline, tmp_path, "site", old)
    upload(offline, tmp_path, "site", new, "--replace")
    with TlsServer(old.fullchain_pem(), old.key_pem()) as server:
        endpoint(offline, "site", server)
        code, results = probe_json(offline)
    assert code == 1
    assert results[0]["status"] == "older" and results[0]["version"] == 1
    assert results[0]["detail"] == "older version 1, not the live 2"


def test_probe_verdicts_each_within_its_time_bound(offline: Certctl, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    live = make_leaf(SITE)
    expired = make_leaf(SITE, not_after=now - timedelta(days=1), key=private_key("ec256", 43))
    stranger = make_leaf(SITE, key=private_key("ec256", 44))
    elsewhere = make_leaf(SITE, key=private_key("ec256", 46))
    upload(offline, tmp_path, "site", live)
    upload(offline, tmp_path, "gone", expired, "--allow-expired")
    upload(offline, tmp_path, "other", elsewhere)
    with (
        TlsServer(live.fullchain_pem(), live.key_pem()) as good,
        TlsServer(elsewhere.fullchain_pem(), elsewhere.key_pem()) as other_name,
        TlsServer(live.cert_pem(), live.key_pem()) as leaf_only,
        TlsServer(live.cert_pem() + live.chain[1].public_bytes(PEM), live.key_pem()) as gap,
        TlsServer(stranger.fullchain_pem(), stranger.key_pem()) as unknown,
        TlsServer(expired.fullchain_pem(), expired.key_pem()) as old,
        SilentServer() as silent,
    ):
        endpoint(offline, "site", good, leaf_only, gap, unknown, silent)
        endpoint(offline, "gone", old)
        endpoint(offline, "other", other_name, sni="www.example.org")
        started = time.monotonic()
        code, results = probe_json(offline, "--timeout", "1")
        took = time.monotonic() - started
        refused = closed_port()
        offline.invoke("set", "gone", "--endpoint", f"127.0.0.1:{refused}", "--sni", SITE)
        only_refused, refused_results = probe_json(offline, "gone", "--timeout", "1")
    verdicts = {r["port"]: (r["status"], r["detail"]) for r in results}
    assert verdicts[good.port] == ("served", "live version 1")
    assert verdicts[leaf_only.port] == (
        "chain-incomplete",
        "the live version, but without the intermediates Test Int2, Test Int1",
    )
    assert verdicts[gap.port] == (
        "chain-incomplete",
        f"the chain does not link: {SITE} is not signed by the next certificate sent (Test Int1)",
    )
    assert verdicts[unknown.port][0] == "unknown"
    assert "a certificate this store never held" in verdicts[unknown.port][1]
    assert verdicts[old.port][0] == "expired"
    assert verdicts[old.port][1].startswith("version 1 expired ")
    assert verdicts[other_name.port] == (
        "name-mismatch",
        f"version 1 is for {SITE}, not www.example.org",
    )
    assert verdicts[silent.port] == ("unreachable", "no answer within 1s (TLS handshake)")
    silent_result = next(r for r in results if r["port"] == silent.port)
    assert 0.9 <= silent_result["seconds"] < 2.5
    assert took < 4, took  # in parallel: the hung server does not hold up the others
    assert code == 1  # a mismatch outranks the unreachable one
    assert only_refused == 3
    assert refused_results[0]["status"] == "unreachable"
    assert refused_results[0]["detail"] == "connect failed: Connection refused"


def test_probe_without_endpoints(offline: Certctl, tmp_path: Path) -> None:
    upload(offline, tmp_path, "site", make_leaf(SITE))
    everything = offline.invoke("probe")
    assert (everything.exit_code, everything.stdout) == (0, "")
    assert "no endpoints recorded" in everything.stderr
    named = offline.invoke("probe", "site")
    assert named.exit_code == 2
    assert named.stderr.strip() == (
        "error: 'site' has no endpoints to probe: add them with certctl set site --endpoint"
        " 'HOST[:PORT]'"
    )


class _Accept:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def test_probe_starttls_smtp(offline: Certctl, tmp_path: Path) -> None:
    import ssl

    leaf = make_leaf(SITE)
    upload(offline, tmp_path, "site", leaf)
    paths = leaf.write(tmp_path / "smtp")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths["fullchain"], paths["key"])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(_Accept(), hostname="127.0.0.1", port=port, tls_context=context)
    controller.start()
    try:
        result = offline.invoke(
            "set", "site", "--endpoint", f"127.0.0.1:{port}", "--sni", SITE, "--starttls", "smtp"
        )
        assert result.exit_code == 0, result.output
        code, results = probe_json(offline)
    finally:
        controller.stop()
    assert code == 0
    assert results[0]["status"] == "served" and results[0]["starttls"] == "smtp"


# ---- check -----------------------------------------------------------------------------


def leaf_with(days_left: float, slot: int) -> Issued:
    return make_leaf(
        SITE,
        not_after=datetime.now(UTC) + timedelta(days=days_left),
        key=private_key("ec256", 50 + slot),
    )


def test_check_ok_warning_critical_unknown(offline: Certctl, tmp_path: Path) -> None:
    empty = offline.invoke("check")
    assert (empty.exit_code, empty.stdout) == (
        3,
        "CERTCTL UNKNOWN - no certificates in the store\n",
    )
    upload(offline, tmp_path, "fine", leaf_with(60, 1))
    ok = offline.invoke("check")
    assert ok.exit_code == 0
    assert ok.stdout == (
        "CERTCTL OK - 1 certificate(s) fine, next expiry fine in 60.0 days | 'fine'=60.00;14;7;;\n"
    )
    upload(offline, tmp_path, "soon", leaf_with(10.5, 2))
    warning = offline.invoke("check")
    assert warning.exit_code == 1
    first, *details = warning.stdout.splitlines()
    assert first == (
        "CERTCTL WARNING - soon: expires in 10.5 days (warning below 14)"
        " | 'fine'=60.00;14;7;; 'soon'=10.50;14;7;;"
    )
    assert details == ["WARNING: soon: expires in 10.5 days (warning below 14)"]
    assert offline.invoke("check", "soon", "-w", "10").exit_code == 0
    upload(offline, tmp_path, "late", leaf_with(3.2, 3))
    critical = offline.invoke("check", "-w", "20", "-c", "5")
    assert critical.exit_code == 2
    assert critical.stdout.splitlines()[0].startswith(
        "CERTCTL CRITICAL - late: expires in 3.2 days (critical below 5) |"
    )
    assert "WARNING: soon: expires in 10.5 days (warning below 20)" in critical.stdout
    missing = offline.invoke("check", "nosuch")
    assert missing.exit_code == 3
    assert missing.stdout.startswith("CERTCTL UNKNOWN - no certificate named 'nosuch'")
    bad = offline.invoke("check", "--warning", "soon")
    assert bad.exit_code == 3
    assert bad.stdout.startswith("CERTCTL UNKNOWN - Invalid value for '-w' / '--warning'")
    assert bad.stderr.startswith("error: Invalid value for '-w' / '--warning'")
    bad_json = offline.invoke("check", "--json", "--bogus")
    assert bad_json.exit_code == 3
    assert json.loads(bad_json.stdout)["status"] == "UNKNOWN"
    inverted = offline.invoke("check", "-w", "3", "-c", "9")
    assert inverted.exit_code == 3
    assert "--critical 9 is above --warning 3" in inverted.stdout
    document = json.loads(offline.invoke("check", "--json").stdout)
    assert document["status"] == "CRITICAL" and document["exit_code"] == 2
    assert {c["name"]: c["status"] for c in document["certificates"]} == {
        "fine": "OK",
        "soon": "WARNING",
        "late": "CRITICAL",
    }


def test_check_thresholds_follow_short_lifetimes(offline: Certctl, tmp_path: Path) -> None:
    """A 6-day certificate with 4 days left is fine: 14/7 days are capped at 2/1."""
    leaf = make_leaf(SITE, days=6, not_after=datetime.now(UTC) + timedelta(days=4))
    upload(offline, tmp_path, "short", leaf)
    result = offline.invoke("check")
    assert result.exit_code == 0, result.stdout
    assert result.stdout.endswith("| 'short'=4.00;2;1;;\n")


def test_check_probe_and_renewal_failures(offline: Certctl, tmp_path: Path) -> None:
    leaf = make_leaf(SITE)
    stranger = make_leaf(SITE, key=private_key("ec256", 45))
    upload(offline, tmp_path, "site", leaf)
    with closing(offline.open()) as store, store.lock("site"):
        record = store.read("site")
        record.renewal.update(failures=2, last_attempt=datetime.now(UTC), last_error="CA said no")
        store.write(record)
    assert offline.invoke("check").stdout.startswith(
        "CERTCTL WARNING - site: 2 renewal attempt(s) failed: CA said no |"
    )
    with (
        TlsServer(stranger.fullchain_pem(), stranger.key_pem()) as wrong,
        SilentServer() as silent,
    ):
        endpoint(offline, "site", wrong, silent)
        result = offline.invoke("check", "--probe", "--timeout", "0.5")
    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert lines[0].startswith("CERTCTL CRITICAL - site: 2 renewal attempt(s) failed: CA said no |")
    assert (
        f"endpoint 127.0.0.1:{wrong.port} (sni {SITE}) serves a certificate certctl does not know"
        in lines[1]
    )
    assert f"endpoint 127.0.0.1:{silent.port} (sni {SITE}) is unreachable" in lines[1]


# ---- metrics ---------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parsed by prometheus_client's own parser: name and labels → value."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_parse_with_prometheus_client(offline: Certctl, tmp_path: Path) -> None:
    leaf = leaf_with(40, 4)
    upload(offline, tmp_path, "site", leaf)
    renewed, failed = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)
    with closing(offline.open()) as store, store.lock("site"):
        record = store.read("site")
        record.renewal.update(
            last_renewed=renewed, last_failed=failed, last_attempt=datetime.now(UTC), failures=3
        )
        store.write(record)
    with TlsServer(leaf.fullchain_pem(), leaf.key_pem()) as server:
        endpoint(offline, "site", server)
        result = offline.invoke("metrics", "--probe")
    assert result.exit_code == 0, result.output
    found = samples(result.stdout)
    site = (("name", "site"),)
    cert = leaf.cert
    assert found[("certctl_certificate_expiry_timestamp_seconds", site)] == (
        cert.not_valid_after_utc.timestamp()
    )
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    due = cert.not_valid_after_utc - lifetime / 3
    assert found[("certctl_certificate_renewal_due_timestamp_seconds", site)] == due.timestamp()
    assert found[("certctl_certificate_last_renewal_success_timestamp_seconds", site)] == (
        renewed.timestamp()
    )
    assert found[("certctl_certificate_last_renewal_failure_timestamp_seconds", site)] == (
        failed.timestamp()
    )
    assert found[("certctl_certificate_renewal_consecutive_failures", site)] == 3
    labels = (("endpoint", f"127.0.0.1:{server.port} (sni {SITE})"), ("name", "site"))
    assert found[("certctl_endpoint_serves_live", labels)] == 1
    assert found[("certctl_endpoint_up", labels)] == 1
    without = samples(offline.invoke("metrics").stdout)
    assert not [key for key in without if key[0].startswith("certctl_endpoint_")]


def test_metrics_output_file_is_replaced_atomically(offline: Certctl, tmp_path: Path) -> None:
    upload(offline, tmp_path, "site", leaf_with(40, 5))
    target = tmp_path / "textfile" / "certctl.prom"
    target.parent.mkdir()
    target.write_text("old\n")
    result = offline.invoke("metrics", "--output", str(target))
    assert (result.exit_code, result.stdout) == (0, "")
    assert ("certctl_certificate_expiry_timestamp_seconds", (("name", "site"),)) in samples(
        target.read_text()
    )
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(target.parent) == ["certctl.prom"]  # no temp file left (and none *.prom)
    nowhere = offline.invoke("metrics", "--output", str(tmp_path / "missing" / "x.prom"))
    assert nowhere.exit_code == 1
    assert nowhere.stderr.startswith(f"error: cannot write metrics to {tmp_path}/missing/x.prom:")
