"""End to end: a certificate from Pebble, served by a real nginx, probed after each renewal.

A deploy hook that reloads nginx makes the renewed certificate served (`probe`
sees the new serial); one that does not leaves nginx on the old version, and
`renew-due` reports the stale endpoint as a failure, notifies and exits 1.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from nginx import Nginx, require_nginx
from test_renew_pebble import obtain, webhook, write_config

from conftest import CERTCTL, Certctl, make_due, unique
from pebble import PebbleServer, free_port

pytestmark = pytest.mark.pebble
__all__ = ["webhook"]  # the fixture, used by name


def probe(certctl: Certctl, domain: str) -> tuple[int, dict[str, Any]]:
    proc = certctl.run("probe", domain, "--json", "--timeout", "5")
    document = json.loads(proc.stdout)
    assert len(document["endpoints"]) == 1, document
    return proc.returncode, document["endpoints"][0]


def test_nginx_serves_the_renewed_certificate_and_a_stale_one_fails(
    certctl: Certctl,
    pebble: PebbleServer,
    tmp_path: Path,
    webhook: tuple[list[dict[str, Any]], str],
) -> None:
    require_nginx()
    received, url = webhook
    env = write_config(certctl, f'[notify.webhook]\nurl = "{url}"\n')
    domain = unique("nginx")
    first = obtain(certctl, pebble, domain)
    served = tmp_path / "served"  # what nginx reads: `certctl export` keeps it current
    export = f"{shlex.join(CERTCTL)} export {shlex.quote(domain)} --dir {served} >/dev/null"
    served.mkdir()
    certctl.run("export", domain, "--dir", str(served), check=True)
    port = free_port()
    with Nginx(
        tmp_path / "nginx", port, domain, served / "fullchain.pem", served / "privkey.pem"
    ) as nginx:
        certctl.run("set", domain, "--endpoint", f"127.0.0.1:{port}", "--sni", domain, check=True)
        code, result = probe(certctl, domain)
        assert (code, result["status"], result["version"]) == (0, "served", 1), result
        assert result["serial"] == first["serial"]

        # a deploy hook that reloads nginx: renew-due waits until it serves version 2
        reload = f"{export} && kill -HUP {nginx.pid}"
        certctl.run("set", domain, "--deploy-hook", reload, check=True)
        make_due(certctl, domain)
        proc = certctl.run("renew-due", "--json", extra_env=env)
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        (renewed,) = json.loads(proc.stdout)["certificates"]
        assert renewed["action"] == "renewed" and renewed["errors"] == []
        assert renewed["detail"].endswith("served at 1 endpoint(s)")
        assert renewed["serial"] != first["serial"]
        code, result = probe(certctl, domain)
        assert (code, result["status"], result["version"]) == (0, "served", 2), result
        assert result["serial"] == renewed["serial"]
        assert received == []

        # a deploy hook that updates the files but forgets the reload: stale, exit 1
        certctl.run("set", domain, "--deploy-hook", export, check=True)
        make_due(certctl, domain)
        proc = certctl.run("renew-due", "--json", "--probe-wait", "2", extra_env=env)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        (stale,) = json.loads(proc.stdout)["certificates"]
        assert stale["action"] == "renewed"
        assert stale["errors"] == [
            f"endpoint 127.0.0.1:{port} (sni {domain}) still serves an older version:"
            " older version 2, not the live 3"
        ]
        assert [(r["name"], r["schema"]) for r in received] == [(domain, "certctl.notice/1")]
        assert received[0]["reason"] == f"renewed to version 3, but {stale['errors'][0]}"
        assert received[0]["state"] == "stale"
        assert received[0]["subject"] == f"[certctl] {domain} is renewed but not served ({domain})"
        code, result = probe(certctl, domain)
        assert (code, result["status"], result["version"]) == (1, "older", 2), result
        text = certctl.run("renew-due", "--force", domain, "--probe-wait", "1", extra_env=env)
        assert text.returncode == 1
        assert f"{domain}: error: endpoint 127.0.0.1:{port}" in text.stdout
        quiet = certctl.run("renew-due", "--force", domain, "--no-probe", "--json", extra_env=env)
        assert quiet.returncode == 0, quiet.stdout  # no probe: the renewal alone counts
        assert json.loads(quiet.stdout)["certificates"][0]["errors"] == []
