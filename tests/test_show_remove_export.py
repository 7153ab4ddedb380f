"""`certctl show`, `remove` and `export`: against Pebble, and offline with uploaded certificates.

Everything goes through the real command line (a subprocess, or CliRunner), and the
assertions look at what a user and a web server see: exit codes, stdout, stderr, and
the bytes, modes and symlinks on disk.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certctl.models import CertRecord, Challenge, OrderState, Validation
from certctl.ops.inspect import REDACTED
from certctl.pki.certinfo import serial_hex

import storeview
from certfactory import Issued, make_leaf
from conftest import CERTCTL, Certctl, unique
from pebble import PebbleServer

LIVE_FILES = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")
SHOW_KEYS = {
    "name",
    "domains",
    "unicode_domains",
    "next_step",
    "source",
    "server",
    "profile",
    "key_type",
    "created",
    "state",
    "reason",
    "revoked",
    "certificate",
    "chain",
    "validation",
    "validation_settings",
    "renewal",
    "notices",
    "deploy_hook",
    "endpoints",  # issue #18
    "live_version",
    "versions",
    "paths",
    "order",
}


@pytest.fixture(autouse=True)
def _fresh_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """render.console() caches a Console per stream id; CliRunner swaps streams per run."""
    from certctl.cli import render

    monkeypatch.setattr(render, "_consoles", {}, raising=False)


def live_dir(certctl: Certctl, name: str) -> Path:
    return certctl.store / "certs" / name / "live"


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def served_mode(path: Path) -> int:
    """The mode of the file an exported name leads to (the names are symlinks into a set)."""
    return stat.S_IMODE(path.stat().st_mode)


def names_in_list(certctl: Certctl) -> list[str]:
    return [c["name"] for c in certctl.json("list")["certificates"]]


def obtain(certctl: Certctl, pebble: PebbleServer, domain: str, *extra: str) -> dict[str, Any]:
    return certctl.json(  # type: ignore[no-any-return]
        "obtain",
        "-d",
        domain,
        "--standalone",
        "--http-port",
        str(pebble.http_port),
        "--agree-tos",
        *extra,
    )


lock_held_elsewhere = storeview.lock_held_elsewhere


def run_on_terminal(certctl: Certctl, args: list[str], answer: str) -> tuple[int, str]:
    """Run certctl with a pseudo-terminal as stdin/stdout/stderr and type `answer`."""
    master, slave = pty.openpty()
    env = {**os.environ, **certctl.env()}
    env.pop("CERTCTL_DEBUG", None)
    proc = subprocess.Popen(
        [*CERTCTL, *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    output = b""
    answered = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        if not answered and b"[y/N]" in output:
            os.write(master, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(master)
    return proc.wait(timeout=10), output.decode("utf-8", "replace")


# ---- against Pebble -----------------------------------------------------------


@pytest.fixture(scope="module")
def reissued(pebble: PebbleServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Certctl, str]:
    """One certificate obtained, then re-issued once: two versions, the second live."""
    certctl = Certctl(tmp_path_factory.mktemp("show") / "store", pebble)
    name = unique("show")
    obtain(certctl, pebble, name)
    proc = certctl.run("issue", name, "--force")  # not due: forced
    assert proc.returncode == 0, proc.stderr
    return certctl, name


@pytest.mark.pebble
def test_show_json_after_reissue(reissued: tuple[Certctl, str]) -> None:
    certctl, name = reissued
    shown = certctl.json("show", name)
    assert set(shown) == SHOW_KEYS
    live = live_dir(certctl, name)
    leaf = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    chain = x509.load_pem_x509_certificates((live / "chain.pem").read_bytes())
    assert shown["name"] == name and shown["domains"] == [name]
    assert shown["source"] == "acme" and shown["server"] == certctl.pebble.directory_url  # type: ignore[union-attr]
    assert shown["state"] == "valid" and shown["revoked"] is False
    cert = shown["certificate"]
    assert cert["serial"] == serial_hex(leaf.serial_number)
    assert cert["fingerprint_sha256"] == fingerprint(leaf)
    assert cert["names"] == [name]
    assert cert["key_type"] == "ec256"
    assert datetime.fromisoformat(cert["not_after"]) == leaf.not_valid_after_utc
    assert datetime.fromisoformat(cert["not_before"]) == leaf.not_valid_before_utc
    assert [c["fingerprint_sha256"] for c in shown["chain"]] == [fingerprint(c) for c in chain]
    assert (
        shown["chain"][0]["subject"]
        == leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    )
    # both versions, the second one live and matching the live files
    versions = shown["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert [v["live"] for v in versions] == [False, True]
    assert shown["live_version"] == 2
    assert versions[1]["serial"] == cert["serial"]
    assert versions[1]["fingerprint_sha256"] == fingerprint(leaf)
    assert versions[0]["serial"] != versions[1]["serial"] and versions[0]["error"] is None
    assert shown["validation"] == "http-01 standalone"
    assert shown["validation_settings"] == {"http_port": certctl.pebble.http_port}  # type: ignore[union-attr]
    # next due time: the lifetime rule (no ARI fetched yet)
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    left = lifetime / 2 if lifetime < timedelta(days=10) else lifetime / 3
    renewal = shown["renewal"]
    assert renewal["automatic"] is True
    assert datetime.fromisoformat(renewal["due_at"]) == leaf.not_valid_after_utc - left
    assert "lifetime left" in renewal["rule"]
    assert renewal["failures"] == 0 and renewal["ari"] is None
    assert shown["paths"]["fullchain"] == str(live / "fullchain.pem")
    assert shown["order"] is None
    assert shown["notices"]["last_sent"] is None


@pytest.mark.pebble
def test_show_text_after_reissue(reissued: tuple[Certctl, str]) -> None:
    certctl, name = reissued
    proc = certctl.run("show", name)
    assert proc.returncode == 0, proc.stderr
    leaf = x509.load_pem_x509_certificate((live_dir(certctl, name) / "cert.pem").read_bytes())
    out = proc.stdout
    assert out.splitlines()[0] == name
    assert f"serial:       {serial_hex(leaf.serial_number)}" in out
    assert fingerprint(leaf) in out
    assert "http-01 standalone" in out
    assert "automatic, due " in out
    version_lines = [line.strip() for line in out.splitlines() if " serial " in line]
    assert len(version_lines) == 2
    assert version_lines[0].startswith("1 ") and not version_lines[0].endswith("(live)")
    assert version_lines[1].startswith("2 ") and version_lines[1].endswith("(live)")
    assert "\x1b[" not in out  # plain text when not a terminal
    assert "PRIVATE KEY" not in out


@pytest.mark.pebble
def test_show_pem_is_the_live_fullchain_without_key(reissued: tuple[Certctl, str]) -> None:
    certctl, name = reissued
    proc = certctl.run("show", name, "--pem")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (live_dir(certctl, name) / "fullchain.pem").read_text()
    assert "PRIVATE KEY" not in proc.stdout
    assert proc.stderr == ""


@pytest.mark.pebble
def test_export_live_files_under_umask_000(reissued: tuple[Certctl, str], tmp_path: Path) -> None:
    certctl, name = reissued
    target = tmp_path / "tls"
    target.mkdir()
    proc = certctl.run(
        "export", name, "--dir", str(target), "--json", preexec_fn=lambda: os.umask(0)
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["version"] == 2 and report["key_mode"] == "0600"
    assert report["files"] == {f[:-4]: str(target / f) for f in LIVE_FILES}
    live = live_dir(certctl, name)
    for filename in LIVE_FILES:
        assert (target / filename).read_bytes() == (live / filename).read_bytes()
        assert served_mode(target / filename) == (0o600 if filename == "privkey.pem" else 0o644)
        assert os.readlink(target / filename) == f".live/{filename}"
    assert os.readlink(target / ".live") == ".versions/1"
    assert sorted(os.listdir(target)) == sorted([*LIVE_FILES, ".live", ".versions"])
    assert sorted(os.listdir(target / ".versions")) == [".lock", "1"]  # no temp files left
    assert mode_of(target / ".versions" / "1") == 0o755


@pytest.mark.pebble
def test_export_replaces_a_planted_symlink(reissued: tuple[Certctl, str], tmp_path: Path) -> None:
    certctl, name = reissued
    target = tmp_path / "tls"
    target.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch\n")
    victim.chmod(0o644)
    (target / "privkey.pem").symlink_to(victim)
    (target / "cert.pem").symlink_to(tmp_path / "dangling")
    proc = certctl.run("export", name, "--dir", str(target))
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "do not touch\n" and mode_of(victim) == 0o644
    assert not (tmp_path / "dangling").exists()
    for filename in ("privkey.pem", "cert.pem"):
        assert os.readlink(target / filename) == f".live/{filename}"  # ours, not the planted one
        assert (target / filename).read_bytes() == (live_dir(certctl, name) / filename).read_bytes()
    assert served_mode(target / "privkey.pem") == 0o600


@pytest.mark.pebble
def test_remove_needs_yes_then_removes_whole_and_the_name_is_reusable(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    name = unique("rm")
    first = obtain(certctl, pebble, name)
    refused = certctl.run("remove", name)  # stdin is not a terminal
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--yes" in refused.stderr
    assert name in names_in_list(certctl)
    assert certctl.live(name)["fullchain.pem"]

    removed = certctl.run("remove", name, "--yes")
    assert removed.returncode == 0, removed.stderr
    assert f"Removed {name}" in removed.stdout
    assert name not in names_in_list(certctl)
    assert storeview.leftovers(certctl) == []  # no leftover, not even a renamed one
    assert certctl.run("show", name).returncode == 2

    again = obtain(certctl, pebble, name)
    assert again["version"] == 1 and again["serial"] != first["serial"]
    assert certctl.json("show", name)["versions"][0]["live"] is True


@pytest.mark.pebble
def test_remove_locked_by_another_process_exits_3(certctl: Certctl, pebble: PebbleServer) -> None:
    name = unique("lk")
    obtain(certctl, pebble, name)
    with lock_held_elsewhere(certctl, name):
        proc = certctl.run("remove", name, "--yes")
    assert proc.returncode == 3
    assert "retry later" in proc.stderr and proc.stderr.count("\n") == 1
    assert name in names_in_list(certctl)
    assert certctl.live(name)["privkey.pem"]


@pytest.mark.pebble
def test_export_as_deploy_hook_during_obtain(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path
) -> None:
    """The hook runs while obtain holds the lock: export must not need it."""
    target = tmp_path / "nginx"
    target.mkdir()
    hook = f'{shlex.join(CERTCTL)} export "$CERTCTL_NAME" --dir {shlex.quote(str(target))}'
    name = unique("hook")
    obtain(certctl, pebble, name, "--deploy-hook", hook)
    live = certctl.live(name)
    for filename in LIVE_FILES:
        assert (target / filename).read_bytes() == live[filename]


# ---- offline: uploaded certificates and records written through the Store API ----


@pytest.fixture
def leaf() -> Issued:
    return make_leaf("www.example.com", "example.com")


@pytest.fixture
def uploaded(offline: Certctl, leaf: Issued, tmp_path: Path) -> str:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(leaf.bundle_pem())
    proc = offline.run("upload", "shop", "--bundle", str(bundle))
    assert proc.returncode == 0, proc.stderr
    return "shop"


def write_record(cx: Certctl, record: CertRecord) -> None:
    storeview.write_record(cx, record)


def pending_record(name: str, **kw: Any) -> CertRecord:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    order = OrderState(
        url="https://ca.invalid/order/1",
        status="pending",
        finalize_url="https://ca.invalid/finalize/1",
        expires=expires,
        challenges=[
            Challenge(
                domain="pending.example.com",
                authz_url="https://ca.invalid/authz/1",
                url="https://ca.invalid/chall/1",
                type="http-01",
                token="tok3n_ABC",
                validation="tok3n_ABC.thumbprint",
            )
        ],
    )
    return CertRecord(
        name=name,
        domains=["pending.example.com"],
        server="https://ca.invalid/dir",
        order=order,
        **kw,
    )


def test_show_uploaded_json(offline: Certctl, uploaded: str, leaf: Issued) -> None:
    result = offline.invoke("show", uploaded, "--json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert set(shown) == SHOW_KEYS
    assert shown["source"] == "upload" and shown["validation"] is None
    assert shown["validation_settings"] == {}
    cert = shown["certificate"]
    assert cert["serial"] == serial_hex(leaf.cert.serial_number)
    assert cert["fingerprint_sha256"] == fingerprint(leaf.cert)
    assert cert["names"] == ["www.example.com", "example.com"]
    assert cert["issuer"] == "Test Int2"
    assert [c["subject"] for c in shown["chain"]] == ["Test Int2", "Test Int1"]
    assert [c["issuer"] for c in shown["chain"]] == ["Test Int1", "Test Root CA"]
    assert shown["versions"] == [
        {
            "version": 1,
            "live": True,
            "serial": cert["serial"],
            "not_before": cert["not_before"],
            "not_after": cert["not_after"],
            "fingerprint_sha256": cert["fingerprint_sha256"],
            "error": None,
        }
    ]
    renewal = shown["renewal"]
    assert renewal["automatic"] is False and renewal["due_at"] is None
    assert "upload" in renewal["rule"]
    not_after = leaf.cert.not_valid_after_utc
    assert datetime.fromisoformat(renewal["notice_from"]) == not_after - timedelta(days=14)
    assert shown["order"] is None and shown["state"] == "valid"


def test_show_uploaded_text(offline: Certctl, uploaded: str, leaf: Issued) -> None:
    proc = offline.run("show", uploaded)
    assert proc.returncode == 0, proc.stderr
    assert "validation:   none (uploaded)" in proc.stdout
    assert "chain:        Test Int2 (issued by Test Int1)" in proc.stdout
    assert fingerprint(leaf.cert) in proc.stdout
    assert "last notice:  never" in proc.stdout
    assert "PRIVATE KEY" not in proc.stdout
    if offline.backend == "filesystem":  # where the web server points
        fullchain = offline.store / "certs" / uploaded / "live" / "fullchain.pem"
        assert "  live paths:\n    cert:" in proc.stdout
        assert f"    fullchain: {fullchain}\n" in proc.stdout
        assert "live files: none" not in proc.stdout
    else:  # a shared store has no files on this host: one line saying how to get them
        export = f"certctl export {uploaded} --dir DIR"
        line = f"  live files: none on this host (shared store): {export}"
        assert line in proc.stdout.splitlines(), proc.stdout
        assert "live paths:" not in proc.stdout


def test_show_pem_offline(offline: Certctl, uploaded: str, leaf: Issued) -> None:
    result = offline.invoke("show", uploaded, "--pem")
    assert result.exit_code == 0
    assert result.stdout_bytes == leaf.fullchain_pem()


def test_show_pending_order(offline: Certctl) -> None:
    write_record(offline, pending_record("pend"))
    shown = json.loads(offline.invoke("show", "pend", "--json").stdout)
    assert shown["state"] == "pending order"
    assert shown["certificate"] is None and shown["chain"] == []
    assert shown["versions"] == [] and shown["paths"] is None and shown["live_version"] is None
    order = shown["order"]
    assert order["status"] == "pending" and order["url"] == "https://ca.invalid/order/1"
    assert order["challenges"] == [
        {
            "domain": "pending.example.com",
            "type": "http-01",
            "status": "pending",
            "url": "http://pending.example.com/.well-known/acme-challenge/tok3n_ABC",
            "content": "tok3n_ABC.thumbprint",
        }
    ]
    text = offline.run("show", "pend")
    assert text.returncode == 0, text.stderr
    assert "pending order: pending, expires " in text.stdout
    assert "http://pending.example.com/.well-known/acme-challenge/tok3n_ABC" in text.stdout
    assert "http-01 manual" in text.stdout
    pem = offline.run("show", "pend", "--pem")
    assert pem.returncode == 2 and "no certificate yet" in pem.stderr and pem.stdout == ""


def test_show_redacts_secret_settings(offline: Certctl) -> None:
    settings = {
        "server": "192.0.2.53",
        "tsig_secret_file": "/x",
        "tsig_key": "k",
        "tsig_secret_env": "TSIG_SECRET_VAR",
        "tsig_secret": "c2VjcmV0LXZhbHVlLTE=",
        "password": "hunter2-value",
        "api_token": "token-value-42",
        "nested": {"client_secret": "nested-secret-value", "key_file": "/etc/k.pem"},
    }
    record = pending_record(
        "dnsx", validation=Validation(challenge="dns", method="rfc2136", settings=settings)
    )
    write_record(offline, record)
    shown = json.loads(offline.invoke("show", "dnsx", "--json").stdout)
    assert shown["validation"] == "dns-01 rfc2136"
    assert shown["validation_settings"] == {
        "server": "192.0.2.53",
        "tsig_secret_file": "/x",
        "tsig_key": "k",  # the key's name (sent in clear in every TSIG message), not a secret
        "tsig_secret_env": "TSIG_SECRET_VAR",
        "tsig_secret": REDACTED,
        "password": REDACTED,
        "api_token": REDACTED,
        "nested": {"client_secret": REDACTED, "key_file": "/etc/k.pem"},
    }
    text = offline.run("show", "dnsx")
    assert text.returncode == 0
    for output in (text.stdout + text.stderr, offline.run("show", "dnsx", "--json").stdout):
        assert "tsig_secret_file = /x" in output or '"tsig_secret_file": "/x"' in output
        assert "TSIG_SECRET_VAR" in output and "/etc/k.pem" in output
        for secret in ("c2VjcmV0LXZhbHVlLTE=", "hunter2-value", "token-value-42", "nested-secret"):
            assert secret not in output
    assert "tsig_key = k\n" in text.stdout


def test_show_unknown_name_exit_2_points_at_list(offline: Certctl) -> None:
    proc = offline.run("show", "nosuch")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "see 'certctl list'" in proc.stderr
    assert not storeview.exists(offline)  # looking creates nothing


def test_show_bad_name_and_conflicting_options(offline: Certctl, uploaded: str) -> None:
    assert offline.run("show", "../etc").returncode == 2
    proc = offline.run("show", uploaded, "--pem", "--json")
    assert proc.returncode == 2 and "exclude each other" in proc.stderr and proc.stdout == ""


def test_remove_refuses_without_yes_off_terminal(offline: Certctl, uploaded: str) -> None:
    result = offline.invoke("remove", uploaded)
    assert result.exit_code == 2
    assert "add --yes" in result.stderr and result.stdout == ""
    assert storeview.names(offline) == [uploaded]


def test_remove_asks_on_a_terminal(offline: Certctl, uploaded: str) -> None:
    code, output = run_on_terminal(offline, ["remove", uploaded], "n")
    assert code == 0, output  # declining is not an error: left as it was
    assert f"Remove {uploaded} (www.example.com, example.com) with its 1 version(s)" in output
    assert "was not removed" in output
    assert storeview.names(offline) == [uploaded]
    code, output = run_on_terminal(offline, ["remove", uploaded], "y")
    assert code == 0, output
    assert f"Removed {uploaded}" in output
    assert storeview.names(offline) == []


def test_remove_json_and_exactly_the_entry(
    offline: Certctl, uploaded: str, leaf: Issued, tmp_path: Path
) -> None:
    bundle = tmp_path / "other.pem"
    bundle.write_bytes(leaf.bundle_pem())
    assert offline.run("upload", "other", "--bundle", str(bundle)).returncode == 0
    result = offline.invoke("remove", uploaded, "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "name": uploaded,
        "removed": True,
        "domains": ["www.example.com", "example.com"],
        "versions": 1,
        "pending_order": None,
    }
    assert storeview.names(offline) == ["other"]
    if offline.backend == "filesystem":  # nothing else left under certs/
        assert sorted(os.listdir(offline.store / "certs")) == ["other"]
    else:  # no row of it left
        assert {line.split(": ")[1] for line in storeview.leftovers(offline)} == {"other"}
    with storeview.opened(offline) as store:
        assert store.read("other").current is not None


def test_remove_drops_a_pending_order_and_says_so(offline: Certctl) -> None:
    write_record(offline, pending_record("pend"))
    with storeview.opened(offline) as store, store.lock("pend"):
        store.write_pending_key("pend", b"-----BEGIN PRIVATE KEY-----\n")
    proc = offline.run("remove", "pend", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "Dropped its pending order locally" in proc.stdout
    assert "expires at the CA" in proc.stdout
    assert storeview.names(offline) == []
    write_record(offline, pending_record("pend"))
    report = json.loads(offline.run("remove", "pend", "--yes", "--json").stdout)
    assert report["pending_order"]["url"] == "https://ca.invalid/order/1"
    assert report["pending_order"]["status"] == "pending"


def test_remove_damaged_entry(offline: Certctl, uploaded: str) -> None:
    if offline.backend == "filesystem":
        (offline.store / "certs" / uploaded / "meta.toml").write_text("not = [valid toml")
    else:  # valid JSON (jsonb holds nothing else), not a record
        damaged = "UPDATE certctl_certificates SET record = '[\"not a record\"]' WHERE name = %s"
        assert storeview.execute(offline, damaged, (uploaded,)) == 1
    shown = offline.run("show", uploaded)
    assert shown.returncode == 1 and "damaged" in shown.stderr, shown.stderr
    proc = offline.run("remove", uploaded, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert storeview.names(offline) == []


def test_remove_unknown_and_locked(offline: Certctl, uploaded: str) -> None:
    proc = offline.run("remove", "nosuch", "--yes")
    assert proc.returncode == 2 and "see 'certctl list'" in proc.stderr
    with lock_held_elsewhere(offline, uploaded):
        proc = offline.run("remove", uploaded, "--yes")
    assert proc.returncode == 3 and "pid" in proc.stderr
    assert storeview.names(offline) == [uploaded]


def test_remove_on_missing_store_creates_nothing(offline: Certctl) -> None:
    assert offline.run("remove", "nosuch", "--yes").returncode == 2
    assert not storeview.exists(offline)


def test_export_offline_modes_bytes_and_key_mode(
    offline: Certctl, uploaded: str, leaf: Issued, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    proc = offline.run("export", uploaded, "--dir", str(target), "--key-mode", "0640")
    assert proc.returncode == 0, proc.stderr
    assert str(target / "privkey.pem") in proc.stdout and "(0640)" in proc.stdout
    assert (target / "fullchain.pem").read_bytes() == leaf.fullchain_pem()
    assert (target / "cert.pem").read_bytes() == leaf.cert_pem()
    assert (target / "chain.pem").read_bytes() == leaf.chain_pem()
    assert (target / "privkey.pem").read_bytes() == leaf.key_pem()
    assert served_mode(target / "privkey.pem") == 0o640
    assert served_mode(target / "cert.pem") == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_export_owner_as_root(offline: Certctl, uploaded: str, tmp_path: Path) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    target = tmp_path / "out"
    target.mkdir()
    proc = offline.run(
        "export", uploaded, "--dir", str(target), "--owner", f"nobody:{nobody.pw_gid}"
    )
    assert proc.returncode == 0, proc.stderr
    for filename in LIVE_FILES:
        info = (target / filename).stat()
        assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert served_mode(target / "privkey.pem") == 0o600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key-mode", "0644"], "every user"),
        (["--key-mode", "9"], "octal"),
        (["--owner", "no-such-user-xyz"], "unknown user"),
    ],
)
def test_export_bad_options_write_nothing(
    offline: Certctl, uploaded: str, tmp_path: Path, args: list[str], message: str
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    proc = offline.run("export", uploaded, "--dir", str(target), *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert os.listdir(target) == []


def test_export_refuses_a_file_the_store_and_a_pending_order(
    offline: Certctl, uploaded: str, tmp_path: Path
) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    proc = offline.run("export", uploaded, "--dir", str(afile))
    assert proc.returncode == 2 and "is a file" in proc.stderr
    proc = offline.run("export", uploaded, "--dir", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "not a directory: create it first" in proc.stderr
    assert not (tmp_path / "missing").exists()
    if offline.backend == "filesystem":  # a database store has no directory to write into
        proc = offline.run("export", uploaded, "--dir", str(offline.store / "certs"))
        assert proc.returncode == 2 and "inside the store" in proc.stderr
    write_record(offline, pending_record("pend"))
    target = tmp_path / "out"
    target.mkdir()
    proc = offline.run("export", "pend", "--dir", str(target))
    assert proc.returncode == 2 and "no certificate yet" in proc.stderr
    assert os.listdir(target) == []
    assert offline.run("export", "nosuch", "--dir", str(target)).returncode == 2


def test_export_as_deploy_hook_after_upload_replace(
    offline: Certctl, uploaded: str, tmp_path: Path
) -> None:
    """`upload --replace` runs the hook under the certificate's lock: export still works."""
    target = tmp_path / "nginx"
    target.mkdir()
    successor = make_leaf("www.example.com", "example.com", days=30)
    bundle = tmp_path / "next.pem"
    bundle.write_bytes(successor.bundle_pem())
    hook = f'{shlex.join(CERTCTL)} export "$CERTCTL_NAME" --dir {shlex.quote(str(target))}'
    proc = offline.run(
        "upload", uploaded, "--bundle", str(bundle), "--replace", "--deploy-hook", hook, "--json"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["deploy_hook_error"] is None
    assert (target / "fullchain.pem").read_bytes() == successor.fullchain_pem()
    assert (target / "privkey.pem").read_bytes() == successor.key_pem()
