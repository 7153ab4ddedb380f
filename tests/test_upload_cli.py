"""`certctl upload` through the real command line (issue 3).

pki/material.py's own checks are unit-tested in test_material.py; here every case
goes through click (CliRunner, or a real subprocess for the CI-style run) and
looks at what a user and a web server would see: exit code, stdout, stderr and
the bytes, modes and symlinks of the store on disk.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
import subprocess
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from certctl.cli.upload import MAX_INPUT
from certctl.pki.certinfo import serial_hex

import storeview
from certfactory import (
    Issued,
    csr_pem,
    key_bytes,
    make_cert,
    make_leaf,
    name,
    pem,
    pki,
    private_key,
    public_key_pem,
)
from conftest import CERTCTL, Certctl
from pebble import PebbleServer

PASS = "correct horse battery staple"
PASS_VAR = "CERTCTL_TEST_UPLOAD_PASSPHRASE"
UNSET_VAR = "CERTCTL_TEST_NEVER_SET"
JSON_KEYS = {
    "name",
    "names",
    "issuer",
    "serial",
    "fingerprint_sha256",
    "not_before",
    "not_after",
    "days_left",
    "chain_length",
    "key_type",
    "version",
    "replaced",
    "warnings",
    "paths",
    "deploy_hook_error",
}


@pytest.fixture(autouse=True)
def _fresh_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """render.console() caches a Console per stream id; CliRunner swaps streams per run
    (same workaround as test_cli_offline.py)."""
    from certctl.cli import render

    monkeypatch.setattr(render, "_consoles", {}, raising=False)


# ---- helpers ----------------------------------------------------------------


def snapshot(cx: Certctl) -> Any:
    """The store's whole contents (files, or certctl's rows), to compare before and after."""
    return storeview.snapshot(cx)


def spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def names_of(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [
        *san.get_values_for_type(x509.DNSName),
        *map(str, san.get_values_for_type(x509.IPAddress)),
    ]


def days_left(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - datetime.now(UTC)).total_seconds() / 86400


def upload(cx: Certctl, *args: str | Path, stdin: bytes | None = None) -> Result:
    """`certctl upload ARGS` in-process (CliRunner)."""
    return cx.invoke("upload", *map(str, args), input=stdin)  # type: ignore[arg-type]


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def one_error_line(result: Result) -> str:
    """Exit 2, nothing on stdout, exactly one `error: ...` line on stderr."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def live_dir(store: Path, cert_name: str) -> Path:
    return store / "certs" / cert_name / "live"


def assert_stored(
    cx: Certctl, cert_name: str, leaf: x509.Certificate, chain: Sequence[x509.Certificate]
) -> None:
    """The live files hold the leaf, its chain in order leaf → up, and its unencrypted key."""
    live = cx.live(cert_name)
    key_pem = live["privkey.pem"]
    if cx.backend == "filesystem":  # a database store seals it (tests/test_sealing.py)
        privkey = live_dir(cx.store, cert_name) / "privkey.pem"
        assert stat.S_IMODE(privkey.stat().st_mode) == 0o600
    assert b"ENCRYPTED" not in key_pem and b"Proc-Type" not in key_pem
    key = serialization.load_pem_private_key(key_pem, None)  # unencrypted: no password
    assert spki(key.public_key()) == spki(leaf.public_key())
    fullchain = live["fullchain.pem"]
    assert x509.load_pem_x509_certificates(fullchain) == [leaf, *chain]
    assert fullchain == pem(leaf, *chain)
    assert live["cert.pem"] == pem(leaf)
    assert live["chain.pem"] == pem(*chain)
    for child, parent in itertools.pairwise([leaf, *chain]):
        child.verify_directly_issued_by(parent)


def summary_field(stdout: str, label: str) -> str:
    found = re.search(rf"^\s+{re.escape(label)}:\s+(.*)$", stdout, re.MULTILINE)
    assert found, f"no {label!r} line in:\n{stdout}"
    return found.group(1).strip()


def assert_summary(
    stdout: str, cert_name: str, leaf: x509.Certificate, chain_length: int, version: int = 1
) -> None:
    """The human summary names everything a person needs to recognise the certificate."""
    verb = "replaced with" if version > 1 else "stored as"
    assert f"Certificate {cert_name} {verb} version {version}" in stdout
    assert summary_field(stdout, "names") == ", ".join(names_of(leaf))
    issuer_cn = leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert summary_field(stdout, "issuer") == issuer_cn
    assert summary_field(stdout, "serial") == serial_hex(leaf.serial_number)  # as openssl
    assert summary_field(stdout, "sha256") == fingerprint(leaf)
    shown = re.search(r"\((-?\d+) days left\)", summary_field(stdout, "not after"))
    assert shown and abs(int(shown.group(1)) - days_left(leaf)) <= 1, stdout
    when = leaf.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")  # as issue and show
    assert summary_field(stdout, "not after").startswith(f"{when} (")
    assert re.search(rf"^\s+chain:\s+{chain_length} intermediate\(s\)$", stdout, re.MULTILINE)


def assert_json(
    document: dict[str, Any],
    cx: Certctl,
    cert_name: str,
    leaf: x509.Certificate,
    chain_length: int,
    *,
    version: int = 1,
    warnings: int = 0,
) -> None:
    """`upload --json`: the documented shape and values."""
    assert set(document) == JSON_KEYS
    assert document["name"] == cert_name
    assert document["names"] == names_of(leaf)
    issuer_cn = leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert document["issuer"] == issuer_cn
    assert document["serial"] == serial_hex(leaf.serial_number)
    assert document["fingerprint_sha256"] == fingerprint(leaf)
    assert document["not_before"] == leaf.not_valid_before_utc.isoformat()
    assert document["not_after"] == leaf.not_valid_after_utc.isoformat()
    assert abs(document["days_left"] - days_left(leaf)) < 0.01
    assert document["chain_length"] == chain_length
    assert document["version"] == version
    assert document["replaced"] is (version > 1)
    assert len(document["warnings"]) == warnings, document["warnings"]
    assert document["deploy_hook_error"] is None
    if cx.backend == "postgresql":  # no files on this host: `certctl export` writes them
        assert document["paths"] == {}
        return
    live = live_dir(cx.store, cert_name)
    assert document["paths"] == {
        stem: str(live / f"{stem}.pem") for stem in ("cert", "chain", "fullchain", "privkey")
    }


def assert_live_lines(stdout: str, cx: Certctl, cert_name: str) -> None:
    """The human summary ends with the live paths, or (no files on this host) how to get them."""
    if cx.backend == "postgresql":
        line = f"live files: none on this host (shared store): certctl export {cert_name} --dir DIR"
        assert stdout.splitlines()[-1].strip() == line, stdout
        assert "privkey:" not in stdout
        return
    live = live_dir(cx.store, cert_name)
    stems = ("cert", "chain", "fullchain", "privkey")
    expected = [f"  {stem + ':':<10} {live / f'{stem}.pem'}" for stem in stems]
    assert stdout.splitlines()[-4:] == expected, stdout
    assert "live files: none" not in stdout


def listed(cx: Certctl, cert_name: str) -> dict[str, Any]:
    result = ok(cx.invoke("list", "--json"))
    entries = {e["name"]: e for e in json.loads(result.stdout)["certificates"]}
    return entries[cert_name]


def write(directory: Path, filename: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_bytes(data)
    return path


# ---- 1. good uploads ----------------------------------------------------------


@dataclass
class Good:
    """Upload arguments and what must end up live."""

    args: list[str | Path]
    leaf: Issued
    chain: tuple[x509.Certificate, ...]
    env: dict[str, str] = field(default_factory=dict)


def _full(leaf: Issued) -> tuple[x509.Certificate, ...]:
    return leaf.chain  # (int2, int1): what a complete upload stores after the leaf


def good_files(d: Path) -> Good:
    leaf = make_leaf("www.example.com", "example.com", "192.0.2.7", key="ec256")
    paths = leaf.write(d)
    return Good(
        ["--cert", paths["cert"], "--key", paths["key"], "--chain", paths["chain"]],
        leaf,
        _full(leaf),
    )


def _bundle_in_order(order: str, key: str) -> Callable[[Path], Good]:
    def build(d: Path) -> Good:
        leaf = make_leaf(f"{order}.example.com", key=key)
        int2, int1 = leaf.chain
        assert leaf.root is not None
        parts = {
            "k": leaf.key_pem(),
            "l": leaf.cert_pem(),
            "2": pem(int2),
            "1": pem(int1),
            "r": pem(leaf.root),
        }
        bundle = b"".join(parts[c] for c in order)
        return Good(["--bundle", write(d, "bundle.pem", bundle)], leaf, _full(leaf))

    return build


def good_cert_with_chain_appended(d: Path) -> Good:
    leaf = make_leaf("appended.example.com", key="rsa2048")
    paths = leaf.write(d)
    return Good(["--cert", paths["fullchain"], "--key", paths["key"]], leaf, _full(leaf))


def good_der(d: Path) -> Good:
    leaf = make_leaf("der.example.com", key="ec384")
    cert = write(d, "cert.der", leaf.cert_der())
    key = write(d, "key.der", leaf.key_der())
    chain = write(d, "chain.pem", leaf.chain_pem())
    return Good(["--cert", cert, "--key", key, "--chain", chain], leaf, _full(leaf))


def good_pkcs12_env(d: Path) -> Good:
    leaf = make_leaf("pfx-env.example.com", key="rsa2048")
    pfx = write(d, "site.pfx", leaf.pkcs12(passphrase=PASS.encode()))
    return Good(
        ["--pkcs12", pfx, "--passphrase-env", PASS_VAR], leaf, _full(leaf), {PASS_VAR: PASS}
    )


def good_pkcs12_file(d: Path) -> Good:
    leaf = make_leaf("pfx-file.example.com", key="ec256")
    pfx = write(d, "site.p12", leaf.pkcs12(passphrase=PASS.encode(), with_root=True))
    secret = write(d, "pass.txt", PASS.encode() + b"\n")  # a trailing newline, as editors save
    return Good(["--pkcs12", pfx, "--passphrase-file", secret], leaf, _full(leaf))


def good_encrypted_pkcs8(d: Path) -> Good:
    leaf = make_leaf("pkcs8.example.com", key="ed25519")
    paths = leaf.write(d, passphrase=PASS.encode())
    assert b"ENCRYPTED PRIVATE KEY" in paths["key"].read_bytes()
    return Good(
        ["--cert", paths["fullchain"], "--key", paths["key"], "--passphrase-env", PASS_VAR],
        leaf,
        _full(leaf),
        {PASS_VAR: PASS},
    )


def good_encrypted_traditional(d: Path) -> Good:
    leaf = make_leaf("traditional.example.com", key="rsa2048")
    key = write(d, "key.pem", leaf.key_pem(passphrase=PASS.encode(), traditional=True))
    assert b"Proc-Type: 4,ENCRYPTED" in key.read_bytes()
    cert = write(d, "fullchain.pem", leaf.fullchain_pem())
    secret = write(d, "pass.txt", PASS.encode())
    return Good(["--cert", cert, "--key", key, "--passphrase-file", secret], leaf, _full(leaf))


GOOD = [
    pytest.param(good_files, id="cert-key-chain-files"),
    pytest.param(_bundle_in_order("kl21", "ec256"), id="bundle-key-leaf-chain"),
    pytest.param(_bundle_in_order("12lk", "rsa2048"), id="bundle-chain-reversed-key-last"),
    pytest.param(_bundle_in_order("2k1l", "ed25519"), id="bundle-shuffled"),
    pytest.param(_bundle_in_order("r1l2k", "ec384"), id="bundle-with-root-shuffled"),
    pytest.param(good_cert_with_chain_appended, id="cert-with-chain-appended"),
    pytest.param(good_der, id="der-cert-der-key"),
    pytest.param(good_pkcs12_env, id="pkcs12-passphrase-env"),
    pytest.param(good_pkcs12_file, id="pkcs12-passphrase-file"),
    pytest.param(good_encrypted_pkcs8, id="encrypted-pkcs8-key"),
    pytest.param(good_encrypted_traditional, id="encrypted-traditional-pem-key"),
]


@pytest.mark.parametrize("build", GOOD)
def test_good_upload_is_stored_summarised_and_listed(
    offline: Certctl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, build: Callable[[Path], Good]
) -> None:
    good = build(tmp_path / "in")
    for var, value in good.env.items():
        monkeypatch.setenv(var, value)
    leaf = good.leaf.cert

    result = ok(upload(offline, "site", *good.args))
    assert result.stderr == ""  # complete chain, valid dates: no warning
    assert_summary(result.stdout, "site", leaf, len(good.chain))
    assert_live_lines(result.stdout, offline, "site")
    assert_stored(offline, "site", leaf, good.chain)
    assert PASS not in result.stdout + result.stderr

    as_json = ok(upload(offline, "site-json", *good.args, "--json"))
    assert as_json.stderr == ""
    assert_json(json.loads(as_json.stdout), offline, "site-json", leaf, len(good.chain))
    assert_stored(offline, "site-json", leaf, good.chain)

    entry = listed(offline, "site")
    assert (entry["source"], entry["renewal"], entry["state"]) == (
        "upload",
        "manual (upload)",
        "valid",
    )
    assert entry["domains"] == names_of(leaf)


@pytest.mark.filesystem_only  # the modes of the store's own directories and files
def test_store_modes_after_upload(offline: Certctl, tmp_path: Path) -> None:
    leaf = make_leaf("modes.example.com")
    ok(upload(offline, "modes", "--bundle", write(tmp_path, "b.pem", leaf.bundle_pem())))
    for path in [offline.store, *offline.store.rglob("*")]:
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode):
            assert stat.S_IMODE(info.st_mode) == 0o700, path
        elif path.name in ("privkey.pem", "meta.toml"):
            assert stat.S_IMODE(info.st_mode) == 0o600, path


# ---- 2. warnings ----------------------------------------------------------------


def _warned(result: Result, needle: str) -> None:
    ok(result)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and needle in warnings[0], result.stderr
    assert needle not in result.stdout
    assert "warnings:  1" in result.stdout


def test_missing_intermediate_warns_on_stderr(offline: Certctl, tmp_path: Path) -> None:
    leaf = make_leaf("alone.example.com")
    paths = leaf.write(tmp_path)
    result = upload(offline, "alone", "--cert", paths["cert"], "--key", paths["key"])
    _warned(result, "missing intermediate")
    assert "Test Int2" in result.stderr and "--chain" in result.stderr
    assert_stored(offline, "alone", leaf.cert, [])
    # with --json the warning is in the document too, and stdout is only that document
    again = ok(upload(offline, "alone2", "--cert", paths["cert"], "--key", paths["key"], "--json"))
    assert "warning: missing intermediate" in again.stderr
    document = json.loads(again.stdout)
    assert_json(document, offline, "alone2", leaf.cert, 0, warnings=1)
    assert "missing intermediate" in document["warnings"][0]


def test_not_yet_valid_warns(offline: Certctl, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    leaf = make_leaf("future.example.com", not_before=start)
    result = upload(offline, "future", "--bundle", write(tmp_path, "b.pem", leaf.bundle_pem()))
    _warned(result, "not yet valid")
    assert_stored(offline, "future", leaf.cert, leaf.chain)


def test_expired_with_allow_expired_warns(offline: Certctl, tmp_path: Path) -> None:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    leaf = make_leaf("old.example.com", not_after=end)
    bundle = write(tmp_path, "b.pem", leaf.bundle_pem())
    result = upload(offline, "old", "--bundle", bundle, "--allow-expired")
    _warned(result, "expired on")
    assert_stored(offline, "old", leaf.cert, leaf.chain)
    assert listed(offline, "old")["state"] == "expired"


# ---- 3. --replace -----------------------------------------------------------------


def test_replace_keeps_the_old_version_and_switches_live(offline: Certctl, tmp_path: Path) -> None:
    first = make_leaf("shop.example.com", key="ec256")
    second = make_leaf("shop.example.com", "www.shop.example.com", key=private_key("ec256", 31))
    b1 = write(tmp_path, "first.pem", first.bundle_pem())
    b2 = write(tmp_path, "second.pem", second.bundle_pem())
    ok(upload(offline, "shop", "--bundle", b1))
    before = snapshot(offline)

    refused = upload(offline, "shop", "--bundle", b2)
    line = one_error_line(refused)
    assert "already exists" in line and "--replace" in line
    assert snapshot(offline) == before

    replaced = ok(upload(offline, "shop", "--bundle", b2, "--replace"))
    assert_summary(replaced.stdout, "shop", second.cert, 2, version=2)
    assert storeview.live_version(offline, "shop") == 2
    assert storeview.versions(offline, "shop") == [1, 2]
    assert_stored(offline, "shop", second.cert, second.chain)
    old = storeview.version_files(offline, "shop", 1)
    assert old["fullchain.pem"] == first.fullchain_pem()
    old_key = serialization.load_pem_private_key(old["privkey.pem"], None)
    assert spki(old_key.public_key()) == spki(first.cert.public_key())
    assert listed(offline, "shop")["domains"] == ["shop.example.com", "www.shop.example.com"]

    third = ok(upload(offline, "shop", "--bundle", b1, "--replace", "--drop-names", "--json"))
    assert_json(json.loads(third.stdout), offline, "shop", first.cert, 2, version=3)
    assert storeview.live_version(offline, "shop") == 3


# ---- 4. the catalogue of bad inputs ---------------------------------------------


@dataclass
class Call:
    """Upload arguments (after NAME unless `name` is None), optional stdin and env."""

    args: list[str | Path]
    name: str | None = "new"
    stdin: bytes | None = None
    env: dict[str, str] = field(default_factory=dict)


BadBuild = Callable[[Path], Call]


def _leaf(*names: str, **kw: Any) -> Issued:
    return make_leaf(*(names or ("bad.example.com",)), **kw)


def bad_too_large(d: Path) -> Call:
    data = _leaf().bundle_pem() + b"\n" * MAX_INPUT
    return Call(["--bundle", write(d, "huge.pem", data)])


def bad_empty(d: Path) -> Call:
    return Call(["--bundle", write(d, "empty.pem", b"")])


def bad_blank(d: Path) -> Call:
    return Call(["--cert", write(d, "blank.pem", b" \r\n\t\n"), "--key", write(d, "k.pem", b"\n")])


def bad_binary_garbage(d: Path) -> Call:
    garbage = bytes((i * 151 + 7) % 256 for i in range(3000))
    assert garbage[0] != 0x30
    return Call(["--bundle", write(d, "garbage.bin", garbage)])


def bad_damaged_der(d: Path) -> Call:
    der = _leaf().cert_der()
    return Call(
        [
            "--cert",
            write(d, "cert.der", der[: len(der) // 2]),
            "--key",
            write(d, "key.der", _leaf().key_der()),
        ]
    )


def bad_text_without_pem(d: Path) -> Call:
    return Call(["--bundle", write(d, "notes.txt", b"my certificate is in the other folder\n")])


def bad_truncated_pem(d: Path) -> Call:
    bundle = _leaf().bundle_pem()
    return Call(["--bundle", write(d, "cut.pem", bundle[: len(bundle) * 2 // 3])])


def bad_mismatched_markers(d: Path) -> Call:
    text = _leaf().cert_pem().replace(b"END CERTIFICATE", b"END PRIVATE KEY")
    return Call(["--cert", write(d, "c.pem", text), "--key", write(d, "k.pem", _leaf().key_pem())])


def bad_base64(d: Path) -> Call:
    lines = _leaf().cert_pem().splitlines(keepends=True)
    lines[3] = b"!!!! not base64 !!!!\n"
    return Call(
        [
            "--cert",
            write(d, "c.pem", b"".join(lines)),
            "--key",
            write(d, "k.pem", _leaf().key_pem()),
        ]
    )


def bad_csr_as_cert(d: Path) -> Call:
    key = private_key("ec256")
    return Call(
        [
            "--cert",
            write(d, "req.csr", csr_pem(key, "bad.example.com")),
            "--key",
            write(d, "k.pem", key_bytes(key)),
        ]
    )


def bad_public_key_as_cert(d: Path) -> Call:
    key = private_key("ec256")
    return Call(
        [
            "--cert",
            write(d, "pub.pem", public_key_pem(key)),
            "--key",
            write(d, "k.pem", key_bytes(key)),
        ]
    )


def bad_key_only(d: Path) -> Call:
    return Call(["--key", write(d, "k.pem", _leaf().key_pem())])


def bad_cert_only(d: Path) -> Call:
    return Call(["--cert", write(d, "fullchain.pem", _leaf().fullchain_pem())])


def bad_key_mismatch(d: Path) -> Call:
    other = key_bytes(private_key("ec256", 41))
    return Call(
        [
            "--cert",
            write(d, "fullchain.pem", _leaf().fullchain_pem()),
            "--key",
            write(d, "other.pem", other),
        ]
    )


def bad_two_keys(d: Path) -> Call:
    leaf = _leaf()
    bundle = leaf.bundle_pem() + key_bytes(private_key("ec256", 42))
    return Call(["--bundle", write(d, "b.pem", bundle)])


def bad_two_leaves(d: Path) -> Call:
    one = _leaf("one.example.com")
    two = _leaf("two.example.com", key=private_key("ec256", 43))
    return Call(["--bundle", write(d, "b.pem", one.bundle_pem() + two.cert_pem())])


def bad_ca_as_leaf(d: Path) -> Call:
    int2 = pki().int2
    return Call(
        [
            "--cert",
            write(d, "ca.pem", pem(int2.cert, *int2.chain)),
            "--key",
            write(d, "ca.key", key_bytes(int2.key)),
        ]
    )


def bad_unrelated_extra(d: Path) -> Call:
    bundle = _leaf().bundle_pem() + pem(pki(1).int2.cert)
    return Call(["--bundle", write(d, "b.pem", bundle)])


def bad_forged_issuer(d: Path) -> Call:
    """A leaf naming Test Int2 as its issuer but signed by some other key."""
    key = private_key("ec256", 44)
    now = datetime.now(UTC)
    forged = make_cert(
        name("forged.example.com"),
        key,
        names=("forged.example.com",),
        issuer_name=pki().int2.cert.subject,
        signing_key=private_key("ec256", 45),
        not_before=now - timedelta(hours=1),
        not_after=now + timedelta(days=30),
    )
    bundle = key_bytes(key) + pem(forged, pki().int2.cert, pki().int1.cert)
    return Call(["--bundle", write(d, "b.pem", bundle)])


def bad_forged_root(d: Path) -> Call:
    """The root's name and public key, but a self-signature by another key."""
    root = pki().root
    fake = make_cert(root.cert.subject, root.key, ca=True, signing_key=private_key("rsa2048", 46))
    bundle = _leaf().bundle_pem() + pem(fake)
    return Call(["--bundle", write(d, "b.pem", bundle)])


def bad_expired(d: Path) -> Call:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    return Call(["--bundle", write(d, "b.pem", _leaf(not_after=end).bundle_pem())])


def bad_encrypted_no_passphrase(d: Path) -> Call:
    paths = _leaf().write(d, passphrase=PASS.encode())
    return Call(["--cert", paths["fullchain"], "--key", paths["key"]])


def bad_wrong_passphrase(d: Path) -> Call:
    paths = _leaf().write(d, passphrase=b"the real one")
    return Call(
        ["--cert", paths["fullchain"], "--key", paths["key"], "--passphrase-env", PASS_VAR],
        env={PASS_VAR: PASS},
    )


def bad_wrong_traditional_passphrase(d: Path) -> Call:
    leaf = _leaf(key="rsa2048")
    key = write(d, "k.pem", leaf.key_pem(passphrase=b"the real one", traditional=True))
    secret = write(d, "pass.txt", PASS.encode())
    return Call(
        [
            "--cert",
            write(d, "c.pem", leaf.fullchain_pem()),
            "--key",
            key,
            "--passphrase-file",
            secret,
        ]
    )


def bad_pkcs12_wrong_password(d: Path) -> Call:
    pfx = write(d, "site.pfx", _leaf().pkcs12(passphrase=b"the real one"))
    return Call(["--pkcs12", pfx, "--passphrase-env", PASS_VAR], env={PASS_VAR: PASS})


def bad_pkcs12_no_password(d: Path) -> Call:
    return Call(["--pkcs12", write(d, "site.pfx", _leaf().pkcs12(passphrase=b"the real one"))])


def bad_pem_as_pkcs12(d: Path) -> Call:
    return Call(["--pkcs12", write(d, "site.pfx", _leaf().bundle_pem())])


def bad_strict_missing_intermediate(d: Path) -> Call:
    paths = _leaf().write(d)
    return Call(["--cert", paths["cert"], "--key", paths["key"], "--strict"])


def bad_nonexistent_file(d: Path) -> Call:
    return Call(["--cert", d / "no-such.pem", "--key", write(d, "k.pem", _leaf().key_pem())])


def bad_directory(d: Path) -> Call:
    (d / "adir").mkdir(parents=True)
    return Call(["--bundle", d / "adir"])


def _named(cert_name: str) -> BadBuild:
    def build(d: Path) -> Call:
        bundle = write(d, "b.pem", _leaf().bundle_pem())
        return Call(["--bundle", bundle, "--", cert_name], name=None)  # '--': '-x' is a name

    return build


def bad_two_stdin(d: Path) -> Call:
    leaf = _leaf()
    return Call(["--cert", "-", "--key", "-"], stdin=leaf.bundle_pem())


def bad_passphrase_env_unset(d: Path) -> Call:
    paths = _leaf().write(d, passphrase=PASS.encode())
    return Call(
        ["--cert", paths["fullchain"], "--key", paths["key"], "--passphrase-env", UNSET_VAR]
    )


def bad_both_passphrase_sources(d: Path) -> Call:
    paths = _leaf().write(d, passphrase=PASS.encode())
    secret = write(d, "pass.txt", PASS.encode())
    return Call(
        [
            "--cert",
            paths["fullchain"],
            "--key",
            paths["key"],
            "--passphrase-env",
            PASS_VAR,
            "--passphrase-file",
            secret,
        ],
        env={PASS_VAR: PASS},
    )


def bad_passphrase_file_missing(d: Path) -> Call:
    paths = _leaf().write(d, passphrase=PASS.encode())
    return Call(
        [
            "--cert",
            paths["fullchain"],
            "--key",
            paths["key"],
            "--passphrase-file",
            d / "no-such-pass.txt",
        ]
    )


def bad_no_input(d: Path) -> Call:
    return Call([])


def bad_dsa_key(d: Path) -> Call:
    leaf = _leaf(key="dsa")
    return Call(
        [
            "--cert",
            write(d, "c.pem", leaf.fullchain_pem()),
            "--key",
            write(d, "k.pem", leaf.key_pem()),
        ]
    )


def bad_stdin_and_passphrase_file_stdin(d: Path) -> Call:
    leaf = _leaf()
    bundle = leaf.key_pem(passphrase=PASS.encode()) + leaf.fullchain_pem()
    return Call(["--bundle", "-", "--passphrase-file", "-"], stdin=bundle)


def bad_existing_name(d: Path) -> Call:
    return Call(["--bundle", write(d, "b.pem", _leaf().bundle_pem())], name="existing")


def bad_too_many_certificates(d: Path) -> Call:
    leaf = _leaf()
    extras = [
        make_cert(name(f"Extra Root {n}"), private_key("ec256", 60), ca=True) for n in range(21)
    ]
    return Call(["--bundle", write(d, "b.pem", leaf.bundle_pem() + pem(*extras))])


def bad_unsupported_block(d: Path) -> Call:
    block = b"-----BEGIN X509 CRL-----\nMAMCAQA=\n-----END X509 CRL-----\n"
    return Call(["--bundle", write(d, "b.pem", _leaf().bundle_pem() + block)])


def bad_damaged_key(d: Path) -> Call:
    key = b"-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n"
    return Call(
        ["--cert", write(d, "c.pem", _leaf().fullchain_pem()), "--key", write(d, "k.pem", key)]
    )


BAD: list[Any] = [
    pytest.param(bad_too_large, "over 1 MiB", id="over-1MiB"),
    pytest.param(bad_empty, "is empty", id="empty-file"),
    pytest.param(bad_blank, "is empty", id="whitespace-only"),
    pytest.param(bad_binary_garbage, "binary data", id="binary-garbage"),
    pytest.param(bad_damaged_der, "damaged DER", id="truncated-der"),
    pytest.param(bad_text_without_pem, "text without PEM", id="text-not-pem"),
    pytest.param(bad_truncated_pem, "truncated", id="truncated-pem"),
    pytest.param(bad_mismatched_markers, "ends with END PRIVATE KEY", id="mismatched-pem-markers"),
    pytest.param(bad_base64, "invalid base64", id="invalid-base64"),
    pytest.param(bad_csr_as_cert, "certificate signing request", id="csr-as-cert"),
    pytest.param(bad_public_key_as_cert, "bare public key", id="public-key-as-cert"),
    pytest.param(bad_key_only, "no certificate in the input", id="key-only"),
    pytest.param(bad_cert_only, "no private key", id="cert-only"),
    pytest.param(bad_key_mismatch, "does not match the certificate", id="key-mismatch"),
    pytest.param(bad_two_keys, "two private keys", id="two-keys"),
    pytest.param(bad_two_leaves, "two leaf certificates", id="two-leaves"),
    pytest.param(bad_ca_as_leaf, "CA certificate given as the leaf", id="ca-as-leaf"),
    pytest.param(bad_unrelated_extra, "unrelated certificate", id="unrelated-extra-cert"),
    pytest.param(bad_forged_issuer, "does not verify", id="broken-chain-signature"),
    pytest.param(bad_forged_root, "signature does not verify", id="forged-self-signed-root"),
    pytest.param(bad_expired, "--allow-expired", id="expired"),
    pytest.param(bad_encrypted_no_passphrase, "no passphrase was given", id="encrypted-no-pass"),
    pytest.param(bad_wrong_passphrase, "wrong passphrase", id="wrong-passphrase-pkcs8"),
    pytest.param(bad_wrong_traditional_passphrase, "wrong passphrase", id="wrong-pass-traditional"),
    pytest.param(bad_pkcs12_wrong_password, "wrong PKCS#12 password", id="pkcs12-wrong-password"),
    pytest.param(bad_pkcs12_no_password, "password-protected", id="pkcs12-no-password"),
    pytest.param(bad_pem_as_pkcs12, "not a PKCS#12", id="pem-given-as-pkcs12"),
    pytest.param(bad_strict_missing_intermediate, "--strict", id="strict-missing-intermediate"),
    pytest.param(bad_nonexistent_file, "no such file", id="nonexistent-file"),
    pytest.param(bad_directory, "is a directory", id="directory-as-file"),
    pytest.param(_named("../x"), "invalid certificate name", id="name-dotdot"),
    pytest.param(_named("a/b"), "invalid certificate name", id="name-slash"),
    pytest.param(_named("-x"), "invalid certificate name", id="name-leading-dash"),
    pytest.param(_named("x" * 65), "invalid certificate name", id="name-too-long"),
    pytest.param(bad_two_stdin, "only one input can be '-'", id="two-stdin-inputs"),
    pytest.param(bad_passphrase_env_unset, "is not set", id="passphrase-env-unset"),
    pytest.param(bad_both_passphrase_sources, "not both", id="passphrase-env-and-file"),
    pytest.param(bad_passphrase_file_missing, "no such file", id="passphrase-file-missing"),
    pytest.param(bad_no_input, "nothing to upload", id="no-input"),
    pytest.param(bad_dsa_key, "unsupported key type dsa", id="dsa-key"),
    pytest.param(bad_existing_name, "already exists", id="existing-name-no-replace"),
    pytest.param(
        bad_stdin_and_passphrase_file_stdin,
        "only one input can be '-'",
        id="bundle-and-passphrase-file-both-stdin",
    ),
    pytest.param(bad_too_many_certificates, "too many certificates", id="too-many-certs"),
    pytest.param(bad_unsupported_block, "unsupported PEM block", id="unsupported-pem-block"),
    pytest.param(bad_damaged_key, "damaged or unreadable", id="damaged-key"),
]


@pytest.fixture
def seeded(offline: Certctl, tmp_path: Path) -> Certctl:
    """A store that already holds one uploaded certificate, `existing`."""
    leaf = make_leaf("existing.example.com", key=private_key("ec256", 50))
    ok(
        upload(
            offline, "existing", "--bundle", write(tmp_path / "seed", "b.pem", leaf.bundle_pem())
        )
    )
    return offline


def test_the_catalogue_is_large_enough() -> None:
    assert len(BAD) >= 25


@pytest.mark.parametrize(("build", "expected"), BAD)
def test_bad_input_is_refused_and_changes_nothing(
    seeded: Certctl,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    build: BadBuild,
    expected: str,
) -> None:
    call = build(tmp_path / "in")
    monkeypatch.delenv(UNSET_VAR, raising=False)
    for var, value in call.env.items():
        monkeypatch.setenv(var, value)
    before = snapshot(seeded)
    args = ["upload", *([call.name] if call.name else []), *map(str, call.args)]
    result = seeded.invoke(*args, input=call.stdin)  # type: ignore[arg-type]
    line = one_error_line(result)
    assert expected.lower() in line.lower(), line
    assert PASS not in line and "the real one" not in line  # secrets never in messages
    assert snapshot(seeded) == before


def test_a_dash_name_without_separator_is_a_usage_error(seeded: Certctl, tmp_path: Path) -> None:
    before = snapshot(seeded)
    bundle = write(tmp_path, "b.pem", make_leaf().bundle_pem())
    line = one_error_line(upload(seeded, "-x", "--bundle", bundle))
    assert "-x" in line
    assert snapshot(seeded) == before


def test_refused_upload_does_not_create_the_store(offline: Certctl, tmp_path: Path) -> None:
    line = one_error_line(upload(offline, "site", "--bundle", write(tmp_path, "e.pem", b"")))
    assert "is empty" in line
    assert not storeview.exists(offline)


def test_control_characters_in_certificate_names_never_reach_the_terminal(
    offline: Certctl, tmp_path: Path
) -> None:
    key = private_key("ec256", 80)
    now = datetime.now(UTC)
    evil = make_cert(
        name("evil.example.com"),
        key,
        issuer=pki().int2,
        names=("evil\x1b[2J\x1b[31m.example.com",),
        not_before=now - timedelta(hours=1),
        not_after=now + timedelta(days=30),
    )
    bundle = key_bytes(key) + pem(evil, pki().int2.cert, pki().int1.cert)
    result = upload(offline, "evil", "--bundle", write(tmp_path, "b.pem", bundle))
    listing = offline.invoke("list")
    output = result.stdout + result.stderr + listing.stdout + listing.stderr
    assert "\x1b" not in output


# ---- interrupted uploads ------------------------------------------------------------

_FAULTS = ["version-privkey.pem", "version-after", "live-before", "meta-after"]
_FAULTS_BUGGY = ["live-after", "meta-before"]  # were bugs: live switched, meta not yet


@pytest.mark.faults
@pytest.mark.parametrize(
    "point",
    [
        *_FAULTS,
        *_FAULTS_BUGGY,
    ],
)
def test_replace_killed_at_any_point_leaves_a_consistent_certificate(
    offline: Certctl, tmp_path: Path, point: str
) -> None:
    old = make_leaf("old.example.com", days=90)
    new = make_leaf("new.example.com", key=private_key("ec256", 81), days=30)
    ok(upload(offline, "site", "--bundle", write(tmp_path, "old.pem", old.bundle_pem())))
    new_bundle = write(tmp_path, "new.pem", new.bundle_pem())
    proc = offline.run(
        "upload",
        "site",
        "--bundle",
        str(new_bundle),
        "--replace",
        "--drop-names",
        extra_env={"CERTCTL_TEST_FAULT": point},
    )
    assert proc.returncode == -9, (proc.returncode, proc.stderr)  # SIGKILL at the point
    live = offline.live("site")
    cert = x509.load_pem_x509_certificate(live["cert.pem"])
    assert cert in (old.cert, new.cert)
    key = serialization.load_pem_private_key(live["privkey.pem"], None)
    assert spki(key.public_key()) == spki(cert.public_key())
    entry = listed(offline, "site")  # what list and renew-due watch is what is live
    assert entry["domains"] == names_of(cert)
    assert entry["not_after"] == cert.not_valid_after_utc.isoformat()


# ---- 5. as a CI job runs it -----------------------------------------------------


def test_ci_job_pipes_a_bundle_with_an_env_passphrase(offline: Certctl) -> None:
    leaf = make_leaf("ci.example.com", "www.ci.example.com", key="rsa2048")
    bundle = leaf.key_pem(passphrase=PASS.encode()) + leaf.fullchain_pem()
    env = {**os.environ, **offline.env(), "CI_CERT_PASSPHRASE": PASS}
    for var in ("NO_COLOR", "CERTCTL_DEBUG", "TERM"):
        env.pop(var, None)  # no colour because there is no terminal, not because we asked
    proc = subprocess.run(
        [
            *CERTCTL,
            "upload",
            "ci-site",
            "--bundle",
            "-",
            "--passphrase-env",
            "CI_CERT_PASSPHRASE",
            "--json",
        ],
        input=bundle,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
        start_new_session=True,  # no controlling terminal
    )
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, stderr
    document = json.loads(stdout)  # nothing but the JSON document on stdout
    assert stdout.lstrip().startswith("{") and stdout.rstrip().endswith("}")
    assert_json(document, offline, "ci-site", leaf.cert, 2)
    assert stderr == ""
    assert "\x1b[" not in stdout + stderr
    assert PASS not in stdout + stderr
    assert_stored(offline, "ci-site", leaf.cert, leaf.chain)

    # the same job run again without --replace fails the pipeline with exit 2
    again = subprocess.run(
        [
            *CERTCTL,
            "upload",
            "ci-site",
            "--bundle",
            "-",
            "--passphrase-env",
            "CI_CERT_PASSPHRASE",
            "--json",
        ],
        input=bundle,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert again.returncode == 2 and again.stdout == b""
    assert b"already exists" in again.stderr


# ---- 6. property: mutated input is stored whole or refused --------------------------


_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16), st.just(0)),
    st.tuples(
        st.just("insert"),
        st.integers(0, 1 << 16),
        st.one_of(st.sampled_from(b" \t\r\n-="), st.integers(0, 255)),
    ),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.just(0)),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in mutations:
        if not out:
            break
        at = where % len(out)
        if kind == "flip":
            out[at] ^= 1 << value
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out.insert(at, value)
        else:
            del out[at]
    return bytes(out)


def annotated_bundle(leaf: Issued) -> bytes:
    """Key, leaf and chain as `openssl pkcs12 -nodes` prints them: text between the blocks."""
    parts = [b"Bag Attributes\n    localKeyID: 01 02 03\nKey Attributes: <No Attributes>\n"]
    parts.append(leaf.key_pem())
    for cert in (leaf.cert, *leaf.chain):
        subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        parts.append(f"subject={subject}\nissuer={issuer}\n\n".encode())
        parts.append(pem(cert))
    return b"".join(parts)


@pytest.fixture(scope="module")
def fuzz_leaf() -> Issued:
    return make_leaf("fuzz.example.com", key=private_key("ec256", 70), days=365)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    target=st.sampled_from(["pem-bundle", "der-cert"]),
    mutations=st.lists(_MUTATION, min_size=1, max_size=4),
)
def test_mutated_input_is_stored_whole_or_refused(
    seeded: Certctl, tmp_path: Path, fuzz_leaf: Issued, target: str, mutations: list[Any]
) -> None:
    from certctl.cli import render

    render._consoles.clear()  # the autouse fixture runs once per test, not per example
    if target == "pem-bundle":
        data = mutate(annotated_bundle(fuzz_leaf), mutations)
        args = ["--bundle", "-"]
    else:
        data = mutate(fuzz_leaf.cert_der(), mutations)
        key = write(tmp_path / "fuzz", "key.pem", fuzz_leaf.key_pem())
        chain = write(tmp_path / "fuzz", "chain.pem", fuzz_leaf.chain_pem())
        args = ["--cert", "-", "--key", str(key), "--chain", str(chain)]
    before = snapshot(seeded)
    version_before = max(storeview.versions(seeded, "fuzz"), default=0)
    result = seeded.invoke("upload", "fuzz", *args, "--replace", "--json", input=data)  # type: ignore[arg-type]
    output = result.stdout + result.stderr
    event(f"{target}: exit {result.exit_code}")
    assert "Traceback" not in output and "internal error" not in output
    assert result.exit_code in (0, 2), output
    if result.exit_code == 2:
        assert result.stdout == ""
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
        assert snapshot(seeded) == before
        return
    document = json.loads(result.stdout)
    assert document["version"] == version_before + 1
    assert storeview.live_version(seeded, "fuzz") == version_before + 1
    live = seeded.live("fuzz")
    cert = x509.load_pem_x509_certificate(live["cert.pem"])
    key = serialization.load_pem_private_key(live["privkey.pem"], None)
    assert spki(key.public_key()) == spki(cert.public_key())
    fullchain = x509.load_pem_x509_certificates(live["fullchain.pem"])
    assert fullchain[0] == cert
    for child, parent in itertools.pairwise(fullchain):
        child.verify_directly_issued_by(parent)
    assert document["fingerprint_sha256"] == fingerprint(cert)


# ---- 7. Pebble-issued material --------------------------------------------------------


@pytest.mark.pebble
def test_pebble_issued_certificate_uploads_into_another_store(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path
) -> None:
    domain = f"up-{uuid.uuid4().hex[:10]}.example.com"
    obtained = certctl.run(
        "obtain", "-d", domain, "--standalone", "--http-port", str(pebble.http_port), "--agree-tos"
    )
    assert obtained.returncode == 0, obtained.stderr
    assert f"Certificate {domain} stored as version 1" in obtained.stdout
    assert_live_lines(obtained.stdout, certctl, domain)  # as upload's summary ends
    if certctl.backend == "filesystem":  # upload straight from the live files
        live = live_dir(certctl.store, domain)
    else:  # a database store has no files on this host: export them first
        live = tmp_path / "exported"
        live.mkdir()
        ok(certctl.invoke("export", domain, "--dir", str(live)))
    assert (live / "fullchain.pem").read_bytes() == certctl.live(domain)["fullchain.pem"]
    fullchain_bytes = (live / "fullchain.pem").read_bytes()
    issued = x509.load_pem_x509_certificates(fullchain_bytes)
    assert len(issued) >= 2  # Pebble's leaf and at least one intermediate
    leaf, chain = issued[0], [c for c in issued[1:] if c.subject != c.issuer]
    key_pem = (live / "privkey.pem").read_bytes()

    other = Certctl(tmp_path / "other", None)
    result = ok(
        upload(
            other, "copy", "--cert", live / "fullchain.pem", "--key", live / "privkey.pem", "--json"
        )
    )
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert document["names"] == [domain]
    assert document["chain_length"] == len(chain)
    assert document["warnings"] == []
    assert_stored(other, "copy", leaf, chain)
    assert other.live("copy")["fullchain.pem"] == pem(leaf, *chain)

    # the same material shuffled into one bundle comes out in the same order
    root = x509.load_pem_x509_certificate(pebble.root_pem())
    shuffled = pem(*reversed(chain), root) + key_pem + pem(leaf)
    again = ok(upload(other, "shuffled", "--bundle", write(tmp_path, "b.pem", shuffled)))
    assert again.stderr == ""
    assert_stored(other, "shuffled", leaf, chain)
    assert listed(other, "shuffled")["source"] == "upload"


# ---- 8. uploaded certificates are watched, never renewed ---------------------------------


def test_uploaded_certificate_near_expiry_is_notified_not_renewed(
    offline: Certctl, tmp_path: Path
) -> None:
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    leaf = make_leaf("soon.example.com", days=10, not_after=end)
    ok(upload(offline, "soon", "--bundle", write(tmp_path, "b.pem", leaf.bundle_pem())))
    entry = listed(offline, "soon")
    assert (entry["state"], entry["renewal"]) == ("expiring", "manual (upload)")

    due = ok(offline.invoke("renew-due", "--json"))
    report = json.loads(due.stdout)
    assert report["exit_code"] == 0
    assert [(c["name"], c["action"]) for c in report["certificates"]] == [("soon", "notified")]
    assert "uploaded certificates need a human" in report["certificates"][0]["detail"]
    assert storeview.live_version(offline, "soon") == 1
    assert storeview.versions(offline, "soon") == [1]

    # the same notice is not repeated within the day
    quiet = ok(offline.invoke("renew-due", "--json"))
    assert json.loads(quiet.stdout)["certificates"] == []

    line = one_error_line(offline.invoke("issue", "soon"))
    assert line.endswith("certctl upload soon --replace --bundle NEW-BUNDLE.pem")
    assert storeview.live_version(offline, "soon") == 1
