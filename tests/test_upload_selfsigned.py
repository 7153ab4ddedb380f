"""Self-signed certificates as people make them: the `openssl` command line, default config.

Debian's /etc/ssl/openssl.cnf puts `basicConstraints = critical,CA:true` on every
`openssl req -x509` certificate (its v3_ca section), so the CA flag alone cannot tell a
self-signed server certificate from a root CA. These tests run the real `openssl`
binary with the system's default configuration and upload through the real CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from test_upload_cli import assert_stored, listed, one_error_line, snapshot, spki, upload, write

import storeview
from certfactory import make_cert, name, pem, pki, private_key
from conftest import Certctl


@pytest.fixture(autouse=True)
def _fresh_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """render.console() caches a Console per stream id; CliRunner swaps streams per run."""
    from certctl.cli import render

    monkeypatch.setattr(render, "_consoles", {}, raising=False)


def openssl(directory: Path, *args: str) -> None:
    """Run the openssl command line in `directory` with the system's default config."""
    env = {k: v for k, v in os.environ.items() if k != "OPENSSL_CONF"}
    subprocess.run(
        ["openssl", *args], cwd=directory, env=env, check=True, capture_output=True, timeout=120
    )


def self_signed_by_openssl(directory: Path, newkey: str, san: str) -> tuple[Path, Path]:
    """`openssl req -x509 -newkey NEWKEY -nodes -subj /CN=x -addext subjectAltName=SAN`."""
    directory.mkdir(parents=True, exist_ok=True)
    openssl(
        directory,
        *("req", "-x509", "-newkey", newkey, "-nodes", "-subj", "/CN=x"),
        *("-addext", f"subjectAltName={san}", "-keyout", "key.pem", "-out", "cert.pem"),
    )
    return directory / "cert.pem", directory / "key.pem"


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def warnings_of(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


OPENSSL_SELF_SIGNED = [
    pytest.param("rsa:2048", "DNS:x", ["x"], "rsa2048", id="rsa-dns"),
    pytest.param("ed25519", "DNS:x", ["x"], "ed25519", id="ed25519-dns"),
    pytest.param("rsa:2048", "IP:127.0.0.1", ["127.0.0.1"], "rsa2048", id="rsa-ip"),
]


@pytest.mark.parametrize(("newkey", "san", "names", "key_type"), OPENSSL_SELF_SIGNED)
def test_openssl_self_signed_certificate_is_stored_with_a_warning(
    offline: Certctl, tmp_path: Path, newkey: str, san: str, names: list[str], key_type: str
) -> None:
    cert_path, key_path = self_signed_by_openssl(tmp_path / "in", newkey, san)
    cert = load_cert(cert_path)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True  # what the default openssl.cnf makes: the case at issue

    result = upload(offline, "selfie", "--cert", cert_path, "--key", key_path)
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    (warning,) = warnings_of(result)
    assert warning.startswith("warning: self-signed certificate")
    assert "pin it" in warning and "CA:TRUE" in warning
    assert_stored(offline, "selfie", cert, [])
    entry = listed(offline, "selfie")
    assert (entry["source"], entry["domains"], entry["state"]) == ("upload", names, "valid")

    # the same through a real process, as a CI job runs it: the warning is in the JSON too
    proc = offline.run(
        "upload", "selfie-ci", "--cert", str(cert_path), "--key", str(key_path), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert (document["names"], document["key_type"], document["chain_length"]) == (
        names,
        key_type,
        0,
    )
    assert len(document["warnings"]) == 1 and "pin it" in document["warnings"][0]
    assert_stored(offline, "selfie-ci", cert, [])


def _openssl_ca_and_leaf(directory: Path) -> dict[str, Path]:
    """A CA made by `openssl req -x509` and a leaf it signed with `openssl x509 -req`."""
    directory.mkdir(parents=True, exist_ok=True)
    openssl(
        directory,
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=Openssl Test CA"),
        *("-keyout", "ca.key", "-out", "ca.pem"),
    )
    openssl(
        directory,
        *("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=leaf.example.com"),
        *("-keyout", "leaf.key", "-out", "leaf.csr"),
    )
    (directory / "san.ext").write_text("subjectAltName=DNS:leaf.example.com\n")
    openssl(
        directory,
        *("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key"),
        *("-CAcreateserial", "-days", "30", "-extfile", "san.ext", "-out", "leaf.pem"),
    )
    return {stem: directory / stem for stem in ("ca.pem", "ca.key", "leaf.pem", "leaf.key")}


def test_openssl_ca_given_with_its_key_beside_its_leaf_is_refused(
    offline: Certctl, tmp_path: Path
) -> None:
    files = _openssl_ca_and_leaf(tmp_path / "in")
    bundle = b"".join(files[f].read_bytes() for f in ("ca.pem", "ca.key", "leaf.pem"))
    path = write(tmp_path, "bundle.pem", bundle)
    line = one_error_line(upload(offline, "site", "--bundle", path))
    assert "does not match the certificate leaf.example.com" in line
    assert "it belongs to Openssl Test CA" in line
    assert not storeview.exists(offline)
    # the leaf with its own key is stored; the openssl CA is checked as its root, left out
    ok = upload(
        offline,
        "site",
        "--cert",
        files["leaf.pem"],
        "--key",
        files["leaf.key"],
        "--chain",
        files["ca.pem"],
    )
    assert ok.exit_code == 0, ok.stderr
    assert_stored(offline, "site", load_cert(files["leaf.pem"]), [])


def test_openssl_ca_with_a_different_key_is_refused(offline: Certctl, tmp_path: Path) -> None:
    files = _openssl_ca_and_leaf(tmp_path / "in")
    result = upload(offline, "site", "--cert", files["ca.pem"], "--key", files["leaf.key"])
    assert "CA certificate given as the leaf" in one_error_line(result)
    assert not storeview.exists(offline)


def test_openssl_self_signed_with_another_key_is_refused(offline: Certctl, tmp_path: Path) -> None:
    cert_path, _ = self_signed_by_openssl(tmp_path / "a", "rsa:2048", "DNS:x")
    _, other_key = self_signed_by_openssl(tmp_path / "b", "rsa:2048", "DNS:x")
    result = upload(offline, "site", "--cert", cert_path, "--key", other_key)
    assert "CA certificate given as the leaf" in one_error_line(result)
    assert not storeview.exists(offline)


@pytest.mark.parametrize(
    "which",
    [
        pytest.param("root", id="root-ca-named-like-a-ca"),
        pytest.param("cert-sign", id="ca-key-usage-cert-sign"),
    ],
)
def test_a_real_ca_with_its_own_key_is_still_refused(
    seeded_offline: Certctl, tmp_path: Path, which: str
) -> None:
    """Alone and with its key, but named like a CA, or its key usage signs certificates."""
    if which == "root":
        cert, key = pki().root.cert, pki().root.key
    else:
        key = private_key("ec256", 90)
        cert = make_cert(name("ca.example.com"), key, names=("ca.example.com",), ca=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert spki(key.public_key()) == spki(cert.public_key())
    before = snapshot(seeded_offline)
    bundle = write(tmp_path, "ca.pem", pem(cert) + key_pem)
    line = one_error_line(upload(seeded_offline, "ca", "--bundle", bundle))
    assert "CA certificate given as the leaf" in line
    assert snapshot(seeded_offline) == before


@pytest.fixture
def seeded_offline(offline: Certctl, tmp_path: Path) -> Certctl:
    """A store that exists (one self-signed upload in it)."""
    cert_path, key_path = self_signed_by_openssl(tmp_path / "seed", "rsa:2048", "DNS:x")
    result = upload(offline, "seed", "--cert", cert_path, "--key", key_path)
    assert result.exit_code == 0, result.stderr
    return offline
