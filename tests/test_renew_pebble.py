"""renew-due end to end against Pebble: renewal, deploy hooks, notices, concurrency."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from conftest import CERTCTL, Certctl, make_due, make_due_by_ari, unique
from pebble import PebbleServer, free_port

pytestmark = pytest.mark.pebble


def obtain(certctl: Certctl, pebble: PebbleServer, domain: str, *extra: str) -> dict[str, Any]:
    """Issue a certificate with HTTP-01 standalone."""
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


class Mailbox:
    """Messages received by the in-process SMTP server."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[list[dict[str, Any]], str]]:
    """A real HTTP server collecting webhook POSTs."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield received, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def write_config(certctl: Certctl, text: str) -> dict[str, str]:
    """A config file for this store; returns the env that selects it."""
    path = certctl.store.parent / "config.toml"
    path.write_text(text)
    return {"CERTCTL_CONFIG": str(path)}


def test_nothing_due_is_silent(certctl: Certctl, pebble: PebbleServer) -> None:
    obtain(certctl, pebble, unique())
    # the first run asks the CA for renewal information (ARI) and stores it
    first = certctl.run("renew-due")
    assert (first.returncode, first.stdout) == (0, "")
    second = certctl.run("renew-due")
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")


def test_due_certificate_renewed_with_deploy_hook(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path
) -> None:
    domain = unique()
    log = tmp_path / "hook.log"
    deployed = tmp_path / "deployed"
    hook = f'echo "$CERTCTL_NAME|$CERTCTL_DOMAINS|$CERTCTL_FULLCHAIN_PATH" >> {log}'
    if certctl.backend == "postgresql":
        # no files on this host: CERTCTL_STORE (the URL), no path variables; the hook
        # exports the new certificate itself, as README "export" shows
        deployed.mkdir()
        paths = "".join(
            f"${{CERTCTL_{v}-}}" for v in ("LIVE_DIR", "CERT_PATH", "CHAIN_PATH", "KEY_PATH")
        )
        hook = (
            'echo "$CERTCTL_NAME|$CERTCTL_DOMAINS|${CERTCTL_FULLCHAIN_PATH-unset}|$CERTCTL_STORE"'
            f' >> {log}; [ -z "{paths}" ] || echo "path variables set" >> {log};'
            f' {" ".join(CERTCTL)} export "$CERTCTL_NAME" --dir {deployed} >/dev/null'
        )
    first = obtain(certctl, pebble, domain, "--deploy-hook", hook)
    log.unlink()  # issue ran it once; the renewal must run it once more
    other = unique("o")
    obtain(certctl, pebble, other)
    # policy override: renew when 1,000 days are left, i.e. now
    make_due(certctl, domain)
    proc = certctl.run("renew-due", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [(c["name"], c["action"]) for c in report["certificates"]] == [(domain, "renewed")]
    renewed = report["certificates"][0]
    assert renewed["serial"] != first["serial"]
    with closing(certctl.open()) as store:
        assert store.versions(domain) == [1, 2]
        assert store.live_version(domain) == 2
        old, new = (store.read_version(domain, v)["cert.pem"] for v in (1, 2))
    assert old != new
    if certctl.backend == "postgresql":  # CERTCTL_STORE (the URL) set, no path variables
        assert log.read_text().splitlines() == [f"{domain}|{domain}|unset|{certctl.location}"]
        assert (deployed / "fullchain.pem").read_bytes() == certctl.live(domain)["fullchain.pem"]
        assert (deployed / "cert.pem").read_bytes() == new
    else:
        live = certctl.store / "certs" / domain / "live"
        assert os.readlink(live) == "versions/2"
        assert (certctl.store / "certs" / domain / "versions" / "1" / "cert.pem").exists()
        assert log.read_text().splitlines() == [f"{domain}|{domain}|{live}/fullchain.pem"]
    # once renewed, it is not due again (renew_before still says 1000 days: reset it)
    certctl.run("set", domain, "--renew-before", "default", check=True)
    again = certctl.run("renew-due")
    assert (again.returncode, again.stdout) == (0, "")


def test_failing_deploy_hook_exits_1_but_keeps_certificate(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    domain = unique()
    obtain(certctl, pebble, domain, "--deploy-hook", "echo reload failed >&2; exit 7")
    make_due(certctl, domain)
    proc = certctl.run("renew-due")
    assert proc.returncode == 1
    assert "renewed" in proc.stdout and "exited 7: reload failed" in proc.stdout
    with closing(certctl.open()) as store:
        assert store.live_version(domain) == 2
    if certctl.backend == "filesystem":
        assert os.readlink(certctl.store / "certs" / domain / "live") == "versions/2"


def test_uploaded_near_expiry_notifies_email_and_webhook_once_a_day(
    certctl: Certctl,
    smtp: tuple[Mailbox, int],
    webhook: tuple[list[dict[str, Any]], str],
) -> None:
    import certfactory

    mailbox, port = smtp
    received, url = webhook
    now = datetime.now(UTC)
    # a 10-day certificate from the test CA with 2 days left: inside its notice
    # window (14 days, capped at a third of its lifetime: 3.3 days)
    leaf = certfactory.make_leaf(
        "shop.example.net", not_before=now - timedelta(days=8), not_after=now + timedelta(days=2)
    )
    material = leaf.bundle_pem()
    bundle = certctl.store.parent / "bundle.pem"
    bundle.write_bytes(material)
    env = write_config(
        certctl,
        f"""
[notify.email]
host = "127.0.0.1"
port = {port}
security = "none"
from = "certctl@example.net"
to = ["ops@example.net"]

[notify.webhook]
url = "{url}"
timeout = 5
""",
    )
    certctl.run("upload", "shop", "--bundle", str(bundle), check=True, extra_env=env)
    proc = certctl.run("renew-due", extra_env=env)
    assert proc.returncode == 0, proc.stderr
    assert "shop: notified" in proc.stdout
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert message.rcpt_tos == ["ops@example.net"]
    text = message.content.decode()
    assert "shop.example.net" in text and "certctl upload shop --replace" in text
    assert len(received) == 1
    body = received[0]
    assert body["schema"] == "certctl.notice/1"
    assert body["name"] == "shop" and body["domains"] == ["shop.example.net"]
    assert 1.9 < body["days_left"] <= 2
    # the same day: nothing is sent again, and the run is silent
    second = certctl.run("renew-due", extra_env=env)
    assert (second.returncode, second.stdout) == (0, "")
    assert len(mailbox.messages) == 1 and len(received) == 1


def test_failed_renewal_notifies_and_others_still_renew(
    certctl: Certctl, pebble: PebbleServer, webhook: tuple[list[dict[str, Any]], str]
) -> None:
    received, url = webhook
    env = write_config(certctl, f'[notify.webhook]\nurl = "{url}"\n')
    good, bad = unique("good"), unique("bad")
    obtain(certctl, pebble, good)
    obtain(certctl, pebble, bad)
    for name in (good, bad):
        make_due(certctl, name)
    pebble.set_servfail(bad)  # the domain now points nowhere
    try:
        proc = certctl.run("renew-due", "--json", extra_env=env)
    finally:
        pebble.clear_servfail(bad)
    assert proc.returncode == 1
    outcomes = {c["name"]: c for c in json.loads(proc.stdout)["certificates"]}
    assert outcomes[good]["action"] == "renewed", outcomes[good]
    assert outcomes[bad]["action"] == "failed"
    assert [r["name"] for r in received] == [bad]
    assert "renewal failed" in received[0]["reason"]
    # back-off: an immediate rerun does not try again (and does not re-notify today)
    certctl.run("set", good, "--renew-before", "default", check=True)
    rerun = certctl.run("renew-due", "--json", extra_env=env)
    assert rerun.returncode == 0, rerun.stdout
    assert json.loads(rerun.stdout)["certificates"] == []
    with closing(certctl.open()) as store:
        assert store.read(bad).renewal["failures"] == 1
    # --force overrides the back-off, and with DNS fixed the renewal succeeds
    forced = certctl.run("renew-due", "--force", bad, "--json", extra_env=env)
    assert forced.returncode == 0, forced.stdout
    assert json.loads(forced.stdout)["certificates"][0]["action"] == "renewed"
    with closing(certctl.open()) as store:
        assert "failures" not in store.read(bad).renewal


def test_ten_concurrent_runs_renew_each_certificate_once(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    names = [unique("c") for _ in range(3)]
    for name in names:
        obtain(certctl, pebble, name)
        make_due_by_ari(certctl, name)  # a renewal ends it: a later run finds nothing due
    env = {**os.environ, **certctl.env()}
    procs = [
        subprocess.Popen(
            [*CERTCTL, "renew-due", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(10)
    ]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    renewed: dict[str, int] = {}
    for code, (stdout, stderr) in results:
        assert code in (0, 3), stderr
        for entry in json.loads(stdout)["certificates"]:
            # another run holds it: "locked" (exit 3) on files; on a shared store "taken"
            # (another host does the work: silent, exit 0)
            held = "taken" if certctl.backend == "postgresql" else "locked"
            assert entry["action"] in ("renewed", held), entry
            if entry["action"] == "renewed":
                renewed[entry["name"]] = renewed.get(entry["name"], 0) + 1
    # each certificate renewed exactly once: a run that waited for another's lock re-reads
    # the record under it and finds the new certificate, which is not due
    assert renewed == dict.fromkeys(names, 1), results
    with closing(certctl.open()) as store:
        for name in names:
            assert store.versions(name) == [1, 2]


def test_dry_run_changes_nothing(certctl: Certctl, pebble: PebbleServer) -> None:
    domain = unique()
    obtain(certctl, pebble, domain)
    make_due(certctl, domain)
    proc = certctl.run("renew-due", "--dry-run")
    assert proc.returncode == 0
    assert f"{domain}: would renew" in proc.stdout
    with closing(certctl.open()) as store:
        assert store.versions(domain) == [1]


def test_certificate_without_aki_uses_the_lifetime_rule_and_others_still_renew(
    certctl: Certctl, pebble: PebbleServer, request: pytest.FixtureRequest
) -> None:
    from cryptography import x509

    from certctl.models import Current

    import certfactory

    good, plain = unique("good"), unique("noaki")
    obtain(certctl, pebble, good)
    obtain(certctl, pebble, plain)
    make_due(certctl, good)
    # `plain` now serves a certificate without an Authority Key Identifier (some private
    # CAs issue those): ARI cannot name it (RFC 9773 §4.1)
    leaf = certfactory.make_leaf(plain)
    with pytest.raises(x509.ExtensionNotFound):
        leaf.cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    store = certctl.open()
    request.addfinalizer(store.close)
    facts = Current(
        version=0,
        serial=format(leaf.cert.serial_number, "x"),
        not_before=leaf.cert.not_valid_before_utc,
        not_after=leaf.cert.not_valid_after_utc,
        issuer="Test Int2",
        fingerprint="00",
        names=[plain],
    )
    with store.transaction():  # as ops do it: version, live switch and record commit together
        version = store.add_version(
            plain, cert=leaf.cert_pem(), chain=leaf.chain_pem(), key=leaf.key_pem(), facts=facts
        )
        store.switch_live(plain, version)
        updated = store.read(plain)
        updated.current = dataclasses.replace(facts, version=version)
        store.write(updated)
    record = store.read(plain)
    assert record.current is not None and record.current.version == version
    before = datetime.now(UTC)
    proc = certctl.run("renew-due", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outcomes = [(c["name"], c["action"]) for c in json.loads(proc.stdout)["certificates"]]
    assert outcomes == [(good, "renewed")]
    assert "renewal information" not in proc.stderr  # not an error, not even a warning
    renewal = store.read(plain).renewal
    assert "ari_start" not in renewal  # no ARI window: the lifetime rule decides
    assert renewal["ari_next_check"] >= before + timedelta(hours=23)  # not asked again soon
    assert store.live_version(plain) == version


def test_force_renews_one_while_another_record_is_damaged(
    certctl: Certctl, pebble: PebbleServer
) -> None:
    good, bad = unique("f"), unique("d")
    obtain(certctl, pebble, good)
    obtain(certctl, pebble, bad)
    if certctl.backend == "postgresql":  # the same damage in the record's row
        import psycopg

        with psycopg.connect(certctl.location, autocommit=True) as conn:
            conn.execute(
                "UPDATE certctl_certificates SET record = jsonb_set(record,"
                " ARRAY['current', 'not_after'], '\"soon\"') WHERE name = %s",
                (bad,),
            )
    else:
        meta = certctl.store / "certs" / bad / "meta.toml"
        lines = meta.read_text().splitlines()
        meta.write_text(
            "\n".join('not_after = "soon"' if x.startswith("not_after = ") else x for x in lines)
        )
    proc = certctl.run("renew-due", "--force", good, "--json")
    assert proc.returncode == 1, proc.stderr  # something it was responsible for failed
    outcomes = {c["name"]: c for c in json.loads(proc.stdout)["certificates"]}
    assert outcomes[good]["action"] == "renewed"
    assert outcomes[bad]["action"] == "damaged"
    assert "current.not_after: expected a date-time" in outcomes[bad]["detail"]
    with closing(certctl.open()) as store:
        assert store.live_version(good) == 2
    if certctl.backend == "filesystem":
        assert os.readlink(certctl.store / "certs" / good / "live") == "versions/2"
