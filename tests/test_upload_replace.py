"""`upload --replace`: what it may take away, and what a kill -9 in the middle leaves.

A replacement that drops names or ends certctl's ACME renewal needs --drop-names /
--stop-renewal (or a yes on a terminal); without them, when stdin is not a terminal,
it is refused with exit 2 and the store is unchanged. The record and the live switch
commit together: SIGKILL at each write step (CERTCTL_TEST_FAULT) leaves the record's
source and renewal method those of the live version, so renew-due never renews over
an uploaded certificate, and an ACME record is back whole when live did not move.
"""

from __future__ import annotations

import copy
import json
import os
import pty
import select
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certctl.models import SOURCE_UPLOAD, CertRecord, Current, OrderState, Validation
from certctl.pki.certinfo import serial_hex
from certctl.store import Store
from test_crash_safety import assert_live_pair, doctor
from test_upload_cli import listed, one_error_line, snapshot, spki, upload, write

import storeview
from certfactory import Issued, make_leaf, private_key
from conftest import CERTCTL, Certctl, make_due, standalone, unique
from pebble import PebbleServer


@pytest.fixture(autouse=True)
def _fresh_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """render.console() caches a Console per stream id; CliRunner swaps streams per run."""
    from certctl.cli import render

    monkeypatch.setattr(render, "_consoles", {}, raising=False)


def bundle(directory: Path, leaf: Issued, filename: str = "b.pem") -> Path:
    return write(directory, filename, leaf.bundle_pem())


def live_serial(cx: Certctl, cert_name: str) -> str:
    cert = x509.load_pem_x509_certificate(cx.live(cert_name)["cert.pem"])
    return serial_hex(cert.serial_number)  # as certctl prints it (openssl's form)


def live_pair(cx: Certctl, name: str) -> x509.Certificate:
    """The live files are one complete version whose key matches its certificate."""
    if cx.backend == "filesystem":  # the files themselves (and the key's mode)
        cert = assert_live_pair(cx, name)
        assert cert is not None
        return cert
    live = cx.live(name)
    cert = x509.load_pem_x509_certificate(live["cert.pem"])
    key = serialization.load_pem_private_key(live["privkey.pem"], None)
    assert spki(key.public_key()) == spki(cert.public_key())
    assert live["fullchain.pem"] == live["cert.pem"] + live["chain.pem"]
    return cert


# ---- dropping names -------------------------------------------------------------


@pytest.fixture
def shop(offline: Certctl, tmp_path: Path) -> Certctl:
    """An uploaded certificate `shop` for shop.example.com and www.shop.example.com."""
    first = make_leaf("shop.example.com", "www.shop.example.com", key=private_key("ec256", 70))
    result = upload(offline, "shop", "--bundle", bundle(tmp_path / "seed", first))
    assert result.exit_code == 0, result.stderr
    return offline


def test_replace_that_drops_names_needs_drop_names(shop: Certctl, tmp_path: Path) -> None:
    narrower = make_leaf("shop.example.com", key=private_key("ec256", 71))
    path = bundle(tmp_path, narrower)
    before = snapshot(shop)
    line = one_error_line(upload(shop, "shop", "--bundle", path, "--replace"))
    assert "would drop www.shop.example.com" in line and "--drop-names" in line
    assert "--stop-renewal" not in line  # an upload over an upload ends no renewal
    assert snapshot(shop) == before

    result = upload(shop, "shop", "--bundle", path, "--replace", "--drop-names", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["names"] == ["shop.example.com"]
    assert listed(shop, "shop")["domains"] == ["shop.example.com"]


@pytest.mark.parametrize(
    "names",
    [
        pytest.param(
            ("shop.example.com", "www.shop.example.com", "api.shop.example.com"), id="more"
        ),
        pytest.param(("www.shop.example.com", "shop.example.com"), id="same-reordered"),
        pytest.param(("shop.example.com", "*.shop.example.com"), id="wildcard-covers"),
    ],
)
def test_replace_that_keeps_every_name_needs_no_flag(
    shop: Certctl, tmp_path: Path, names: tuple[str, ...]
) -> None:
    wider = make_leaf(*names, key=private_key("ec256", 72))
    result = upload(shop, "shop", "--bundle", bundle(tmp_path, wider), "--replace")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # silently: nothing is lost
    assert listed(shop, "shop")["domains"] == list(names)


def _on_a_terminal(cx: Certctl, args: list[str], answer: bytes) -> tuple[int, str]:
    """Run certctl with a pseudo-terminal as stdin, answer the prompt; (exit code, stderr)."""
    controller, terminal = pty.openpty()
    env = {**os.environ, **cx.env()}
    env.pop("CERTCTL_DEBUG", None)
    proc = subprocess.Popen(
        [*CERTCTL, *args], stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    os.close(terminal)
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in seen and time.monotonic() < deadline:  # the prompt is on stderr
        ready, _, _ = select.select([proc.stderr], [], [], 1)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    os.write(controller, answer)
    _, rest = proc.communicate(timeout=60)
    os.close(controller)
    return proc.returncode, (seen + rest).decode()


def test_on_a_terminal_certctl_asks_before_dropping_names(shop: Certctl, tmp_path: Path) -> None:
    narrower = make_leaf("shop.example.com", key=private_key("ec256", 73))
    args = ["upload", "shop", "--bundle", str(bundle(tmp_path, narrower)), "--replace"]
    before = snapshot(shop)
    code, stderr = _on_a_terminal(shop, args, b"n\n")
    assert "Replace shop? That would drop www.shop.example.com" in stderr
    assert (code, "error: 'shop' was not replaced" in stderr) == (2, True), stderr
    assert snapshot(shop) == before

    code, stderr = _on_a_terminal(shop, args, b"y\n")
    assert code == 0, stderr
    assert listed(shop, "shop")["domains"] == ["shop.example.com"]


# ---- over an ACME certificate -------------------------------------------------------


def _obtained(certctl: Certctl, pebble: PebbleServer, label: str) -> tuple[str, dict[str, Any]]:
    domain = unique(label)
    issued = certctl.json("obtain", "-d", domain, *standalone(pebble))
    return domain, issued


def test_replace_over_acme_needs_stop_renewal(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path
) -> None:
    domain, issued = _obtained(certctl, pebble, "us")
    other = f"other-{domain}"
    same_names = bundle(tmp_path, make_leaf(domain, key=private_key("ec256", 74)), "same.pem")
    fewer = bundle(tmp_path, make_leaf(other, key=private_key("ec256", 75)), "other.pem")
    before = snapshot(certctl)

    proc = certctl.run("upload", domain, "--bundle", str(same_names), "--replace")
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"error: replacing '{domain}' would end its renewal")
    assert "renews it automatically, http-01 standalone" in line
    assert line.endswith("add --stop-renewal to replace it anyway")
    assert snapshot(certctl) == before

    proc = certctl.run("upload", domain, "--bundle", str(fewer), "--replace", "--stop-renewal")
    assert proc.returncode == 2, proc.stderr
    assert f"would drop {domain}" in proc.stderr and "add --drop-names" in proc.stderr
    both = certctl.run("upload", domain, "--bundle", str(fewer), "--replace")
    assert "add --stop-renewal --drop-names to replace it anyway" in both.stderr
    assert snapshot(certctl) == before
    assert live_serial(certctl, domain) == issued["serial"]

    stored = certctl.json(
        "upload", domain, "--bundle", str(same_names), "--replace", "--stop-renewal"
    )
    assert stored["version"] == 2
    shown = certctl.json("show", domain)
    assert (shown["source"], shown["validation"], shown["renewal"]["automatic"]) == (
        "upload",
        None,
        False,
    )
    if certctl.backend == "filesystem":  # a by-hand rollback is a file operation
        _rolled_back_by_hand(certctl, domain, issued)
    doctor(certctl)


def _rolled_back_by_hand(certctl: Certctl, domain: str, issued: dict[str, Any]) -> None:
    """README "Store layout": live pointed back by hand brings the ACME record back."""
    cert_dir = certctl.store / "certs" / domain
    os.symlink("versions/1", cert_dir / "live.tmp")
    os.replace(cert_dir / "live.tmp", cert_dir / "live")
    shown = certctl.json("show", domain)
    assert (shown["source"], shown["validation"], shown["renewal"]["automatic"]) == (
        "acme",
        "http-01 standalone",
        True,
    )
    assert shown["certificate"]["serial"] == issued["serial"]


# ---- kill -9 at each write step of `upload --replace` over an ACME certificate ---------

# every write step, in order: the new version (with the record it replaces), record, live
REPLACE_POINTS = [
    "version-privkey.pem",
    "version-after",
    "meta-before",
    "meta-after",
    "live-before",
    "live-after",
]
# the filesystem store's steps between the files of one version
FILE_POINTS = [
    "version-cert.pem",
    "version-chain.pem",
    "version-fullchain.pem",
    "version-info.toml",
    "version-previous.toml",
]
# the same over a version stored before info.toml kept its origin (source, validation)
LEGACY_POINTS = ["meta-before", "meta-after", "live-before", "live-after"]


def _strip_origin(store: Path, domain: str) -> None:
    """Make version 1 look stored by an older certctl: info.toml without its origin."""
    import tomllib

    path = store / "certs" / domain / "versions" / "1" / "info.toml"
    info = tomllib.loads(path.read_text())
    assert info["source"] == "acme" and info["validation"]["method"] == "standalone"
    for key in ("source", "key_type", "validation"):
        info.pop(key)
    path.write_text(tomli_w.dumps(info))


@pytest.mark.faults
@pytest.mark.parametrize("point", REPLACE_POINTS)
def test_replace_over_acme_killed_keeps_source_and_live_together(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path, point: str
) -> None:
    _killed_replace_over_acme(certctl, pebble, tmp_path, point, legacy=False)


@pytest.mark.faults
@pytest.mark.filesystem_only  # steps between the files of one version; info.toml of old versions
@pytest.mark.parametrize(
    ("point", "legacy"),
    [
        *[pytest.param(p, False, id=p) for p in FILE_POINTS],
        *[pytest.param(p, True, id=f"legacy-{p}") for p in LEGACY_POINTS],
    ],
)
def test_replace_over_acme_killed_between_files_keeps_source_and_live_together(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path, point: str, legacy: bool
) -> None:
    _killed_replace_over_acme(certctl, pebble, tmp_path, point, legacy=legacy)


def _killed_replace_over_acme(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path, point: str, legacy: bool
) -> None:
    domain, issued = _obtained(certctl, pebble, "uk")
    make_due(certctl, domain)  # due, were it ACME
    if legacy:
        _strip_origin(certctl.store, domain)
    record_before = _record(certctl, domain)
    new = make_leaf(domain, key=private_key("ec256", 76))
    args = ["upload", domain, "--bundle", str(bundle(tmp_path, new)), "--replace"]
    proc = certctl.run(*args, "--stop-renewal", extra_env={"CERTCTL_TEST_FAULT": point})
    assert proc.returncode == -9, (point, proc.returncode, proc.stderr)

    doctor(certctl)
    cert = live_pair(certctl, domain)
    assert cert in (new.cert, x509.load_pem_x509_certificate(issued_pem(certctl, domain)))
    uploaded = cert == new.cert
    # files: the live switch is the commit; PostgreSQL: one transaction, nothing until it ends
    switched = point == "live-after" and certctl.backend == "filesystem"
    assert uploaded == switched, point
    expected = "upload" if uploaded else "acme"

    shown = certctl.json("show", domain)
    assert shown["source"] == expected, shown
    assert shown["certificate"]["serial"] == serial_hex(cert.serial_number)
    assert shown["renewal"]["automatic"] is (not uploaded)
    assert shown["validation"] == (None if uploaded else "http-01 standalone")
    assert (shown["live_version"], shown["key_type"]) == (2 if uploaded else 1, "ec256")
    entry = listed(certctl, domain)
    assert entry["source"] == expected
    assert entry["renewal"] == ("manual (upload)" if uploaded else "http-01 standalone")

    if uploaded:  # renew-due watches the upload and never renews over it
        run = certctl.run("renew-due", "--json")
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout)
        assert report["checked"] == 1
        assert [c for c in report["certificates"] if c["action"] == "renewed"] == [], report
        assert storeview.versions(certctl, domain) == [1, 2]
        assert live_serial(certctl, domain) == serial_hex(new.cert.serial_number)
    else:  # still the ACME certificate, fully: a rerun replaces it as if nothing happened
        assert live_serial(certctl, domain) == issued["serial"]
        assert _record(certctl, domain) == record_before  # all of it
        again = certctl.json(*args, "--stop-renewal")
        assert again["replaced"] is True
        assert certctl.json("show", domain)["source"] == "upload"
    doctor(certctl)


def issued_pem(certctl: Certctl, domain: str) -> bytes:
    return storeview.version_files(certctl, domain, 1)["cert.pem"]


def _record(certctl: Certctl, domain: str) -> dict[str, Any]:
    with storeview.opened(certctl) as store:
        return store.read(domain).to_dict()  # type: ignore[no-any-return]


# ---- the store: the live switch commits the record, in both directions ----------------

WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def _facts(serial: str) -> Current:
    return Current(
        version=0,
        serial=serial,
        not_before=WHEN,
        not_after=WHEN + timedelta(days=90),
        issuer="Test CA",
        fingerprint=serial * 16,
        names=["web.example.com"],
    )


def _stored(store: Store, described: CertRecord, serial: str, **kw: Any) -> CertRecord:
    """Add a version (add_version's kw as given); a copy of `described` naming it current."""
    facts = _facts(serial)
    facts.version = store.add_version(
        "web", cert=serial.encode(), chain=b"", key=b"K" + serial.encode(), facts=facts, **kw
    )
    described = copy.deepcopy(described)
    described.current = facts
    return described


def _info(store: Store, version: int) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(
        (store.root / "certs/web/versions" / str(version) / "info.toml").read_text()
    )


def test_store_settles_a_record_written_ahead_back_on_the_live_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", warn=lambda message: None)
    store.ensure()
    ordered = CertRecord(
        name="web",
        domains=["web.example.com"],
        validation=Validation(method="webroot", webroot="/var/www"),
        renew_before_days=20,
        renewal={"last_renewed": WHEN},
    )
    store.write(ordered)  # as `order` does, before the certificate is stored
    acme = _stored(store, ordered, "01")  # origin taken from the stored record
    store.switch_live("web", 1)
    store.write(acme)
    assert (_info(store, 1)["source"], _info(store, 1)["validation"]["method"]) == (
        "acme",
        "webroot",
    )

    uploaded = copy.deepcopy(acme)
    uploaded.source, uploaded.renewal = SOURCE_UPLOAD, {}
    uploaded = _stored(store, uploaded, "02", record=uploaded, previous=acme)
    store.write(uploaded)  # ahead of a live switch that never happens
    assert store.read("web").to_dict() == acme.to_dict()  # all of it, as it was

    # a version stored now (a renewal) takes the origin of the settled record, not meta.toml's
    _stored(store, acme, "03")
    assert _info(store, 3)["source"] == "acme"

    store.switch_live("web", 2)  # the switch happens: the record written ahead is true
    assert store.read("web").to_dict() == uploaded.to_dict()
    store.switch_live("web", 1)  # and rolled back by hand: the ACME record again
    assert store.read("web").to_dict() == acme.to_dict()


def test_store_settles_a_record_behind_on_an_uploaded_live_version(tmp_path: Path) -> None:
    """Live switched to an upload, meta.toml not yet written: it still names ACME and an order."""
    store = Store(tmp_path / "store", warn=lambda message: None)
    store.ensure()
    pending = CertRecord(
        name="web",
        domains=["web.example.com"],
        validation=Validation(method="standalone"),
        order=OrderState(url="https://acme.test/order/1", status="pending", finalize_url="f"),
    )
    store.write(pending)
    uploaded = copy.deepcopy(pending)
    uploaded.source, uploaded.order = SOURCE_UPLOAD, None
    _stored(store, pending, "01", record=uploaded)
    store.switch_live("web", 1)
    settled = store.read("web")
    assert (settled.source, settled.order, settled.current and settled.current.serial) == (
        SOURCE_UPLOAD,
        None,
        "01",
    )
