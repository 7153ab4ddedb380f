"""`certctl deploy` without a CA: uploaded certificates, on both store backends."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from certfactory import make_cert, name, pem, private_key
from conftest import Certctl


def upload(offline: Certctl, tmp_path: Path, cert_name: str, slot: int) -> bytes:
    """Upload a self-signed certificate for `cert_name`; returns its PEM."""
    key = private_key("ec256", slot)
    domain = f"{cert_name}.example.com"
    cert = pem(make_cert(name(domain), key, names=(domain,)))
    (tmp_path / f"{cert_name}-{slot}.pem").write_bytes(cert)
    (tmp_path / f"{cert_name}-{slot}.key").write_bytes(pem(key))
    args = ["upload", cert_name, "--cert", str(tmp_path / f"{cert_name}-{slot}.pem")]
    args += ["--key", str(tmp_path / f"{cert_name}-{slot}.key")]
    done = offline.run(*args, *(["--replace"] if slot else []))
    assert done.returncode == 0, done.stderr
    return cert


def test_deploy_writes_changed_certificates_and_runs_the_hook_once(
    offline: Certctl, tmp_path: Path
) -> None:
    shop = upload(offline, tmp_path, "shop", 0)
    upload(offline, tmp_path, "shop-eu", 0)
    upload(offline, tmp_path, "blog", 0)
    target = tmp_path / "tls"
    target.mkdir()
    log = tmp_path / "hook.log"
    args = ["deploy", "--name", "shop*", "--dir", str(target), "--host-id", "web1"]
    args += ["--hook", f'echo "$CERTCTL_DEPLOYED" >> {log}', "--json"]
    first = json.loads(offline.run(*args).stdout)
    assert sorted(first["changed"]) == ["shop", "shop-eu"]  # not blog: not this host's
    assert (target / "shop" / "cert.pem").read_bytes() == shop
    assert not (target / "blog").exists()
    key = target / "shop" / "privkey.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert log.read_text().split() == ["shop", "shop-eu"]
    second = json.loads(offline.run(*args).stdout)
    assert second["changed"] == [] and second["hook_ran"] is False
    assert log.read_text().split() == ["shop", "shop-eu"]  # no second hook run
    renewed = upload(offline, tmp_path, "shop", 1)  # a new version of one of them
    third = json.loads(offline.run(*args).stdout)
    assert third["changed"] == ["shop"]
    assert [c["previous_version"] for c in third["certificates"] if c["name"] == "shop"] == [1]
    assert (target / "shop" / "cert.pem").read_bytes() == renewed
    assert log.read_text().split() == ["shop", "shop-eu", "shop"]
    listed = {e["name"]: e for e in offline.json("list")["certificates"]}
    assert [(d["host"], d["version"]) for d in listed["shop"]["deployments"]] == [("web1", 2)]
    assert listed["blog"]["deployments"] == []


def test_deploy_reads_the_hosts_deploy_table(offline: Certctl, tmp_path: Path) -> None:
    upload(offline, tmp_path, "shop", 0)
    target = tmp_path / "tls"
    target.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[deploy]\ndir = "{target}"\nnames = ["shop"]\nhost_id = "web7"\n')
    done = offline.run("deploy", extra_env={"CERTCTL_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"shop: deployed version 1 to {target / 'shop'}\n"
    again = offline.run("deploy", extra_env={"CERTCTL_CONFIG": str(config)})
    assert (again.returncode, again.stdout) == (0, "")


def test_bad_deploy_input_is_refused_with_one_line(offline: Certctl, tmp_path: Path) -> None:
    upload(offline, tmp_path, "shop", 0)
    cases = [
        (["deploy", "--name", "shop"], "needs a directory"),
        (["deploy", "--dir", str(tmp_path)], "needs the certificates"),
        (["deploy", "--name", "nope", "--dir", str(tmp_path)], "matches 'nope'"),
        (["deploy", "--name", "shop", "--dir", str(tmp_path / "missing")], "not a directory"),
        (["deploy", "--name", "shop", "--dir", str(tmp_path), "--host-id", "../x"], "host id"),
    ]
    for args, needle in cases:
        done = offline.run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert needle in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "shop").exists()
