"""Hostile file systems and secrets: symlink tricks, loose modes, and nothing secret in output."""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import stat
import uuid
from pathlib import Path

import pytest

from certctl.challenges.http import StandaloneSolver
from certctl.models import Challenge
from certctl.store import Store

import storeview
from conftest import Certctl, make_due, unique
from pebble import PebbleServer, free_port

pytestmark = pytest.mark.faults


def challenge(token: str, validation: str) -> Challenge:
    """An http-01 challenge as certctl stores it."""
    return Challenge(
        domain="a.example.com",
        authz_url="https://ca/authz/1",
        url="https://ca/chall/1",
        type="http-01",
        token=token,
        validation=validation,
    )


def get(port: int, path: str) -> tuple[int, bytes]:
    """One GET to the standalone server."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": "a.example.com"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_standalone_serves_only_expected_tokens_and_frees_its_port() -> None:
    port = free_port()
    token = "A" * 43
    solver = StandaloneSolver(port)
    chall = challenge(token, token + ".thumbprint")
    solver.present([chall])
    try:
        assert get(port, f"/.well-known/acme-challenge/{token}") == (200, chall.validation.encode())
        for path in (
            "/.well-known/acme-challenge/" + "B" * 43,
            "/.well-known/acme-challenge/../../etc/passwd",
            f"/.well-known/acme-challenge/{token}/../{token}x",
            "/etc/passwd",
            "/",
            f"/.well-known/acme-challenge/{token}%00",
        ):
            status, _ = get(port, path)
            assert status == 404, path
    finally:
        solver.cleanup([chall])
    with socket.socket() as probe:  # the port is free again (as any server binds it)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()


def test_webroot_refuses_symlinked_challenge_directory(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path
) -> None:
    webroot, outside = tmp_path / "www", tmp_path / "outside"
    webroot.mkdir()
    outside.mkdir()
    (webroot / ".well-known").mkdir()
    (webroot / ".well-known" / "acme-challenge").symlink_to(outside)
    domain = unique("sym")
    certctl.json("order", "-d", domain, "--webroot", str(webroot), "--agree-tos")
    proc = certctl.run("verify", domain)
    assert proc.returncode == 2, proc.stderr
    assert "is a symlink" in proc.stderr
    assert list(outside.iterdir()) == []  # nothing written outside the webroot


def test_webroot_never_follows_a_symlink_planted_at_the_token(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path
) -> None:
    webroot = tmp_path / "www"
    challenge_dir = webroot / ".well-known" / "acme-challenge"
    challenge_dir.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    domain = unique("plant")
    ordered = certctl.json("order", "-d", domain, "--webroot", str(webroot), "--agree-tos")
    token = ordered["challenges"][0]["url"].rsplit("/", 1)[1]
    (challenge_dir / token).symlink_to(victim)
    proc = certctl.run("verify", domain)
    assert proc.returncode == 1
    assert "already exists" in proc.stderr
    assert victim.read_text() == "precious"
    assert (challenge_dir / token).is_symlink()  # not ours: left alone


@pytest.mark.filesystem_only  # the mode of the account key file
def test_world_readable_key_is_repaired_with_a_warning(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique("mode")
    certctl.json(
        "obtain", "-d", domain, "--standalone", "--http-port", str(pebble.http_port), "--agree-tos"
    )
    store = Store(certctl.store)
    account_key = next((certctl.store / "accounts").glob("*/account.key"))
    os.chmod(account_key, 0o644)
    proc = certctl.run("issue", domain, "--force")  # uses the account key
    assert proc.returncode == 0, proc.stderr
    assert f"{account_key} had mode 644; repaired to 600" in proc.stderr
    assert stat.S_IMODE(account_key.stat().st_mode) == 0o600
    del store


def test_symlinked_or_world_writable_store(offline: Certctl, tmp_path: Path) -> None:
    real = tmp_path / "real-store"
    Store(real).ensure()
    link = tmp_path / "link-store"
    link.symlink_to(real)
    proc = Certctl(link, None).run("list")
    assert proc.returncode == 2 and "is a symlink" in proc.stderr
    os.chmod(real, 0o777)
    proc = Certctl(real, None).run("list")
    assert proc.returncode == 0
    assert "had mode 777; repaired to 700" in proc.stderr
    assert stat.S_IMODE(real.stat().st_mode) == 0o700


def _key_pems(cx: Certctl) -> list[bytes]:
    """Every private key in the store: key files, or (PostgreSQL) opened through the contract."""
    if cx.backend == "filesystem":
        paths = [*cx.store.rglob("*.key"), *cx.store.rglob("privkey.pem")]
        return [path.read_bytes() for path in paths]
    pems = []
    with storeview.opened(cx) as store:
        for name in store.names():
            pems += [store.read_version(name, v)["privkey.pem"] for v in store.versions(name)]
            pems += [store.read_pending_key(name, i) or b"" for i in store.pending_key_ids(name)]
        for server in store.account_servers():
            pems.append(store.read_account(server)[1])
    return [pem for pem in pems if pem]


def _metadata(cx: Certctl) -> list[str]:
    """Everything the store keeps besides keys: TOML and JSON files, or every row."""
    if cx.backend == "filesystem":
        return [p.read_text() for p in cx.store.rglob("*") if p.suffix in (".toml", ".json")]
    return [repr(rows) for rows in storeview.rows(cx).values()]


def _secret_fragments(cx: Certctl) -> list[str]:
    """The private scalars of every key in the store, in the encodings a leak would use."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    fragments = []
    for pem in _key_pems(cx):
        key = serialization.load_pem_private_key(pem, None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            secret = key.private_numbers().private_value
        elif isinstance(key, rsa.RSAPrivateKey):
            secret = key.private_numbers().d
        else:
            continue
        raw = secret.to_bytes((secret.bit_length() + 7) // 8, "big")
        fragments += [
            raw.hex(),
            base64.b64encode(raw).decode()[:40],
            base64.urlsafe_b64encode(raw).decode().rstrip("=")[:40],
        ]
    return fragments


def test_no_secret_in_output_logs_or_metadata_at_max_verbosity(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path
) -> None:
    import certfactory

    passphrase = "correct horse battery staple " + uuid.uuid4().hex
    smtp_password = "smtp-" + uuid.uuid4().hex
    config = tmp_path / "config.toml"
    config.write_text(
        "[notify.email]\nhost = '127.0.0.1'\nport = 1\nsecurity = 'starttls'\n"
        "username = 'certctl'\npassword_env = 'TEST_SMTP_PASSWORD'\nto = ['ops@example.net']\n"
        "timeout = 1\n"
    )
    env = {
        "CERTCTL_DEBUG": "1",
        "CERTCTL_CONFIG": str(config),
        "UPLOAD_PASS": passphrase,
        "TEST_SMTP_PASSWORD": smtp_password,
    }
    outputs = []

    def run(*args: str) -> None:
        proc = certctl.run("--debug", *args, extra_env=env)
        outputs.append(proc.stdout + proc.stderr)

    domain = unique("sec")
    run(
        "obtain",
        "-d",
        domain,
        "--standalone",
        "--http-port",
        str(pebble.http_port),
        "--agree-tos",
        "--json",
    )
    make_due(certctl, domain)
    run("renew-due", "--json")
    leaf = certfactory.make_leaf("secret.example.net", days=10)
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(leaf.key_pem(passphrase=passphrase.encode()))
    cert = tmp_path / "cert.pem"
    cert.write_bytes(leaf.fullchain_pem())
    run(
        "upload",
        "near",
        "--cert",
        str(cert),
        "--key",
        str(encrypted),
        "--passphrase-env",
        "UPLOAD_PASS",
    )
    run("renew-due")  # notifies "near" through SMTP, which fails to connect: logged
    run("list", "--json")
    text = "\n".join(outputs)
    assert "Traceback" not in text or "OperationFailed" not in text
    secrets = [passphrase, smtp_password, base64.b64encode(smtp_password.encode()).decode()]
    secrets += _secret_fragments(certctl)
    assert len(secrets) > 9
    metadata = _metadata(certctl)
    assert metadata
    for secret in secrets:
        assert secret not in text, "secret in output"
        for data in metadata:
            assert secret not in data, "secret in metadata"
    assert not re.search(r"PRIVATE KEY-----", text)
