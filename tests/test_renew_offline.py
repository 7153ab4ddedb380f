"""renew-due without a CA: damaged records, notices per channel, forced renewals, hooks.

Certificates are uploaded (certfactory), so nothing here needs Pebble. E-mail goes
to a real in-process SMTP server (aiosmtpd), webhooks to real HTTP servers on
loopback; certctl runs as a subprocess, as cron runs it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from certctl.models import CertRecord, Current, Validation
from certctl.store import Store
from certctl.store.index import RACY_NS

import certfactory
import storeview
from conftest import Certctl
from pebble import free_port

pytestmark = pytest.mark.timeout(120)

SECRET_PATH = "T0SECRET/B0SECRET/xoxSecretPathPart"
SECRET_QUERY = "sig=QuerySecret123"


# ---- helpers ------------------------------------------------------------------------------


def upload(certctl: Certctl, name: str, *, days_left: float = 2, lifetime: float = 10) -> None:
    """An uploaded certificate `days_left` from expiry (inside its notice window by default)."""
    now = datetime.now(UTC)
    leaf = certfactory.make_leaf(
        f"{name}.example.net",
        not_before=now - timedelta(days=lifetime - days_left),
        not_after=now + timedelta(days=days_left),
    )
    bundle = certctl.store.parent / f"{name}.pem"
    bundle.write_bytes(leaf.bundle_pem())
    certctl.run("upload", name, "--bundle", str(bundle), check=True)


def config(certctl: Certctl, text: str) -> dict[str, str]:
    path = certctl.store.parent / "config.toml"
    path.write_text(text)
    return {"CERTCTL_CONFIG": str(path)}


def meta(certctl: Certctl, name: str) -> Path:
    return certctl.store / "certs" / name / "meta.toml"


def stored_record(certctl: Certctl, name: str) -> str:
    """The record as stored: meta.toml, or the row's JSON."""
    if certctl.backend == "filesystem":
        return meta(certctl, name).read_text()
    ((text,),) = storeview.query(
        certctl, "SELECT record::text FROM certctl_certificates WHERE name = %s", (name,)
    )
    return str(text)


def damage_record(certctl: Certctl, name: str, toml: str, json_record: str) -> None:
    """Overwrite a stored record by hand: meta.toml with `toml`, or the row with `json_record`."""
    if certctl.backend == "filesystem":
        meta(certctl, name).write_text(toml)
        return
    statement = "UPDATE certctl_certificates SET record = %s::jsonb WHERE name = %s"
    assert storeview.execute(certctl, statement, (json_record, name)) == 1


def record_where(certctl: Certctl, name: str) -> str:
    """Where doctor says a record is: its meta.toml, or its row."""
    return str(meta(certctl, name)) if certctl.backend == "filesystem" else f"certificates/{name}"


def read_record(certctl: Certctl, name: str) -> CertRecord:
    with storeview.opened(certctl) as store:
        return store.read(name)  # type: ignore[no-any-return]


@dataclass
class Mailbox:
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@dataclass
class Web:
    """A loopback HTTP server recording requests, answering with scripted statuses."""

    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    location: str = ""

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def web() -> Iterator[Any]:
    """Start as many web servers as a test wants (each its own port: its own origin)."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start() -> Web:
        server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
        state = Web(server.server_address[1])

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                state.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length),
                    }
                )
                status = state.statuses.pop(0) if state.statuses else 204
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", state.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = _answer

            def log_message(self, *args: object) -> None:
                pass

        server.RequestHandlerClass = Handler
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        servers.append((server, thread))
        return state

    try:
        yield start
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join()


# ---- 1: a record that cannot be read stops nothing else ----------------------------------


def test_wrongly_typed_meta_is_reported_and_the_others_still_handled(offline: Certctl) -> None:
    upload(offline, "good")
    upload(offline, "bad")
    if offline.backend == "filesystem":
        text = meta(offline, "bad").read_text()
        assert "\nnot_after = " in text
        damaged = "\n".join(
            'not_after = "soon"' if line.startswith("not_after = ") else line
            for line in text.splitlines()
        )
        meta(offline, "bad").write_text(damaged)
    else:  # the same value by hand in the row
        statement = (
            "UPDATE certctl_certificates SET record = jsonb_set(record,"
            " '{current,not_after}', '\"soon\"') WHERE name = %s"
        )
        assert storeview.execute(offline, statement, ("bad",)) == 1
        damaged = stored_record(offline, "bad")
        assert '"not_after": "soon"' in damaged

    listed = offline.run("list", "--json")
    assert listed.returncode == 0, listed.stderr
    states = {e["name"]: e for e in json.loads(listed.stdout)["certificates"]}
    assert states["good"]["state"] == "expiring"
    assert states["bad"]["state"] == "damaged"
    assert "current.not_after: expected a date-time, got a string" in states["bad"]["reason"]

    shown = offline.run("show", "bad")
    assert shown.returncode == 1
    assert shown.stderr.count("\n") == 1 and "internal error" not in shown.stderr
    assert "metadata of 'bad' is damaged" in shown.stderr
    assert "current.not_after: expected a date-time" in shown.stderr
    assert offline.run("show", "good").returncode == 0

    proc = offline.run("renew-due", "--json")
    assert proc.returncode == 1, proc.stderr
    outcomes = {c["name"]: c for c in json.loads(proc.stdout)["certificates"]}
    assert outcomes["good"]["action"] == "notified"
    assert outcomes["bad"]["action"] == "damaged"
    assert "current.not_after" in outcomes["bad"]["detail"]
    assert stored_record(offline, "bad") == damaged  # left for the user

    doctor = offline.run("doctor", "--json")
    assert doctor.returncode == 1
    errors = [f for f in json.loads(doctor.stdout)["findings"] if f["severity"] == "error"]
    assert [(f["name"], f["path"]) for f in errors] == [("bad", record_where(offline, "bad"))]
    assert "current.not_after: expected a date-time" in errors[0]["problem"]


@pytest.mark.filesystem_only  # index.json, the filesystem store's list cache
def test_garbage_in_the_index_cache_is_not_trusted(offline: Certctl) -> None:
    upload(offline, "good")
    upload(offline, "other")
    time.sleep(RACY_NS / 1e9 + 0.1)  # records younger than this are not cached
    assert offline.run("list").returncode == 0  # writes index.json
    index = offline.store / "index.json"
    header, heads, summaries, records = storeview.read_index(index)
    records["good"]["current"]["not_after"] = "garbage"
    summaries["good"]["not_after"] = "garbage"
    # valid JSON with a correct checksum: only the record and summary checks can catch it
    storeview.write_index(index, header, heads, summaries, records)
    listed = offline.run("list", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = {e["name"]: e for e in json.loads(listed.stdout)["certificates"]}
    assert entries["good"]["state"] == "expiring"  # read again from meta.toml
    stored = Store(offline.store).read("good").current
    assert stored is not None
    assert datetime.fromisoformat(entries["good"]["not_after"]) == stored.not_after
    proc = offline.run("renew-due", "--json")
    assert proc.returncode == 0, proc.stderr
    assert {c["name"] for c in json.loads(proc.stdout)["certificates"]} == {"good", "other"}


# ---- 4: --force on what certctl cannot renew ---------------------------------------------


def test_force_on_an_uploaded_certificate_says_why_and_exits_2(offline: Certctl) -> None:
    upload(offline, "shop", days_left=60, lifetime=90)
    before = stored_record(offline, "shop")
    proc = offline.run("renew-due", "--force", "shop")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "cannot renew 'shop': it was uploaded" in proc.stderr
    assert "certctl upload shop --replace" in proc.stderr
    assert stored_record(offline, "shop") == before


def test_force_on_a_manual_validation_certificate_says_why_and_exits_2(offline: Certctl) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    storeview.write_record(
        offline,
        CertRecord(
            name="hand",
            domains=["hand.example.net"],
            validation=Validation(challenge="dns", method="manual"),
            current=Current(
                1, "1234", now - timedelta(days=1), now + timedelta(days=89), "CA", "F"
            ),
        ),
    )
    before = stored_record(offline, "hand")
    proc = offline.run("renew-due", "--force", "hand")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "cannot renew 'hand' unattended: its validation (dns-01 manual) needs a human" in (
        proc.stderr
    )
    assert "certctl order -d hand.example.net --name hand" in proc.stderr
    assert stored_record(offline, "hand") == before


# ---- 2: a notice counts as sent per channel, once that channel accepted it ---------------


def test_failed_email_is_retried_next_run_and_the_webhook_not_resent(
    offline: Certctl, web: Any
) -> None:
    upload(offline, "shop")
    hook = web()
    smtp_port = free_port()  # nothing listens there yet: the relay is down
    env = config(
        offline,
        f"""
[notify.email]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout = 5
from = "certctl@example.net"
to = ["ops@example.net"]

[notify.webhook]
url = "{hook.url()}"
timeout = 5
""",
    )
    first = offline.run("renew-due", "--json", extra_env=env)
    assert first.returncode == 1
    outcome = json.loads(first.stdout)["certificates"][0]
    assert outcome["action"] == "notified"
    assert len(outcome["errors"]) == 1 and f"127.0.0.1:{smtp_port} failed" in outcome["errors"][0]
    assert len(hook.requests) == 1
    notices = read_record(offline, "shop").notices
    assert set(notices["delivered"]) == {f"webhook http://127.0.0.1:{hook.port}/…"}
    assert notices["channels"] == [f"webhook http://127.0.0.1:{hook.port}/…"]

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        second = offline.run("renew-due", "--json", extra_env=env)
        assert second.returncode == 0, second.stdout
        assert [c["action"] for c in json.loads(second.stdout)["certificates"]] == ["notified"]
        assert len(mailbox.messages) == 1  # the e-mail went out at last
        assert mailbox.messages[0].rcpt_tos == ["ops@example.net"]
        assert len(hook.requests) == 1  # the webhook had it already: not sent again
        notices = read_record(offline, "shop").notices
        assert set(notices["delivered"]) == {
            f"webhook http://127.0.0.1:{hook.port}/…",
            "e-mail to ops@example.net",
        }
        third = offline.run("renew-due", extra_env=env)
        assert (third.returncode, third.stdout, third.stderr) == (0, "", "")
        assert len(mailbox.messages) == 1 and len(hook.requests) == 1
    finally:
        controller.stop()


def test_smtp_down_records_nothing_for_email_then_it_arrives(offline: Certctl) -> None:
    upload(offline, "shop")
    smtp_port = free_port()
    env = config(
        offline,
        f"""
[notify.email]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout = 5
from = "certctl@example.net"
to = ["ops@example.net"]
""",
    )
    first = offline.run("renew-due", extra_env=env)
    assert first.returncode == 1
    assert f"shop: error: e-mail via 127.0.0.1:{smtp_port} failed" in first.stdout
    notices = read_record(offline, "shop").notices
    assert notices.get("delivered") == {} and notices.get("channels") == []
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        second = offline.run("renew-due", extra_env=env)
        assert second.returncode == 0, second.stdout
        assert "shop: notified" in second.stdout
        assert len(mailbox.messages) == 1
        text = mailbox.messages[0].content.decode()
        assert "shop.example.net" in text and "certctl upload shop --replace" in text
        third = offline.run("renew-due", extra_env=env)
        assert (third.returncode, third.stdout) == (0, "")
        assert len(mailbox.messages) == 1
    finally:
        controller.stop()


# ---- 6: webhook secrets stay out of redirects, metadata and output ------------------------


def test_webhook_secret_path_and_query_never_shown_or_stored(offline: Certctl, web: Any) -> None:
    upload(offline, "shop")
    hook = web()
    hook.statuses[:] = [500, 500]  # run 1 fails (error lines), run 2 succeeds
    url = hook.url(f"/services/{SECRET_PATH}?{SECRET_QUERY}")
    env = config(offline, f'[notify.webhook]\nurl = "{url}"\ntimeout = 5\n')
    failed = offline.run("renew-due", extra_env=env)
    assert failed.returncode == 1
    assert f"webhook http://127.0.0.1:{hook.port}/… failed twice: HTTP 500" in failed.stdout
    ok = offline.run("renew-due", "--json", extra_env=env)
    assert ok.returncode == 0, ok.stdout
    assert hook.requests[-1]["path"] == f"/services/{SECRET_PATH}?{SECRET_QUERY}"
    shown = offline.run("show", "shop", "--json")
    assert json.loads(shown.stdout)["notices"]["channels"] == [
        f"webhook http://127.0.0.1:{hook.port}/…"
    ]
    texts = {
        "renew-due output": failed.stdout + failed.stderr + ok.stdout + ok.stderr,
        "show --json": shown.stdout + shown.stderr,
        "the record": stored_record(offline, "shop"),
    }
    if offline.backend == "filesystem":
        texts["index.json"] = (offline.store / "index.json").read_text()
    else:
        texts["every row"] = repr(storeview.rows(offline))
    for where, text in texts.items():
        for secret in ("T0SECRET", "xoxSecretPathPart", "QuerySecret123", "/services"):
            assert secret not in text, where


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_webhook_redirect_to_another_origin_gets_no_credentials(
    offline: Certctl, web: Any, status: int
) -> None:
    upload(offline, "shop")
    hook, elsewhere = web(), web()  # two ports: two origins
    hook.statuses[:] = [status]
    hook.location = elsewhere.url("/steal")
    url = hook.url(f"/services/{SECRET_PATH}")
    env = config(
        offline,
        f"""
[notify.webhook]
url = "{url}"
timeout = 5
headers = {{ Authorization = "Bearer hunter2-token" }}
""",
    )
    proc = offline.run("renew-due", extra_env=env)
    assert proc.returncode == 1
    assert len(hook.requests) == 1
    assert hook.requests[0]["headers"]["Authorization"] == "Bearer hunter2-token"
    assert elsewhere.requests == []  # neither the body nor the Authorization header left
    assert f"answered HTTP {status} (a redirect)" in proc.stdout
    assert "does not follow webhook redirects" in proc.stdout
    for secret in ("hunter2", SECRET_PATH, "/steal"):
        assert secret not in proc.stdout + proc.stderr
    # not recorded as sent: the next run (with the URL fixed) delivers it
    assert read_record(offline, "shop").notices["delivered"] == {}


# ---- 5: deploy hook output ----------------------------------------------------------------


def replace_with_hook(offline: Certctl, hook: str) -> Any:
    upload(offline, "shop", days_left=60, lifetime=90)
    offline.run("set", "shop", "--deploy-hook", hook, check=True)
    leaf = certfactory.make_leaf("shop.example.net")
    bundle = offline.store.parent / "new.pem"
    bundle.write_bytes(leaf.bundle_pem())
    return offline.run("upload", "shop", "--bundle", str(bundle), "--replace")


def test_failed_deploy_hook_reports_what_it_printed_on_stdout(offline: Certctl) -> None:
    proc = replace_with_hook(
        offline, "echo 'testing configuration'; echo 'nginx: [emerg] unknown directive'; exit 1"
    )
    assert proc.returncode == 1
    assert "no output" not in proc.stderr
    assert (
        "deploy hook of 'shop' exited 1: stdout: testing configuration"
        " | nginx: [emerg] unknown directive" in proc.stderr
    )


def test_failed_deploy_hook_reports_stderr_then_stdout_bounded(offline: Certctl) -> None:
    proc = replace_with_hook(
        offline, "for i in $(seq 1 50); do echo out$i; echo err$i >&2; done; exit 4"
    )
    assert proc.returncode == 1
    line = next(x for x in proc.stderr.splitlines() if "deploy hook" in x)
    assert "exited 4: err46 | err47 | err48 | err49 | err50; stdout: out46 |" in line
    assert "out45" not in line and "err45" not in line
    assert line.endswith("out50 (the new certificate is stored and live)")


def test_successful_deploy_hook_output_is_passed_on_to_stderr(offline: Certctl) -> None:
    proc = replace_with_hook(offline, "echo 'nginx reloaded'; echo 'a warning' >&2")
    assert proc.returncode == 0, proc.stderr
    assert "shop: deploy hook: nginx reloaded\n" in proc.stderr
    assert "shop: deploy hook (stderr): a warning\n" in proc.stderr
    assert "nginx reloaded" not in proc.stdout
    as_json = replace_with_hook_json(offline)
    assert json.loads(as_json.stdout)["name"] == "shop"  # stdout stays one JSON document
    assert "shop: deploy hook: again\n" in as_json.stderr


def test_successful_deploy_hook_output_is_bounded(offline: Certctl) -> None:
    proc = replace_with_hook(offline, "seq 1 30")
    assert proc.returncode == 0, proc.stderr
    passed = [x for x in proc.stderr.splitlines() if x.startswith("shop: deploy hook")]
    assert passed == [
        "shop: deploy hook: … 10 earlier line(s)",
        *(f"shop: deploy hook: {n}" for n in range(11, 31)),
    ]


def replace_with_hook_json(offline: Certctl) -> Any:
    offline.run("set", "shop", "--deploy-hook", "echo again", check=True)
    leaf = certfactory.make_leaf("shop.example.net")
    bundle = offline.store.parent / "newer.pem"
    bundle.write_bytes(leaf.bundle_pem())
    return offline.run("upload", "shop", "--bundle", str(bundle), "--replace", "--json")


# ---- 1: what a worker did not foresee stays with its certificate -------------------------


def automatic_record(store: Store, name: str, cert_pem: bytes, key_pem: bytes) -> None:
    """An HTTP-01 standalone certificate whose CA is never reached (nothing listens there)."""
    now = datetime.now(UTC).replace(microsecond=0)
    version = store.add_version(name, cert=cert_pem, chain=b"", key=key_pem)
    store.switch_live(name, version)
    store.write(
        CertRecord(
            name=name,
            domains=[f"{name}.example.net"],
            server=f"https://127.0.0.1:{free_port()}/dir",
            validation=Validation(challenge="http", method="standalone"),
            current=Current(
                version, "1", now - timedelta(days=1), now + timedelta(days=89), "CA", "F"
            ),
        )
    )


def test_damaged_live_certificate_fails_alone(offline: Certctl) -> None:
    upload(offline, "shop")
    with storeview.opened(offline) as store:
        automatic_record(store, "auto", b"-----BEGIN CERTIFICATE-----\nbroken\n", b"key")
    proc = offline.run("renew-due", "--json")
    assert proc.returncode == 1, proc.stderr
    outcomes = {c["name"]: c for c in json.loads(proc.stdout)["certificates"]}
    assert outcomes["shop"]["action"] == "notified"
    assert outcomes["auto"]["action"] == "failed"
    assert "the live cert.pem of 'auto' is not a readable certificate" in outcomes["auto"]["detail"]


@pytest.mark.filesystem_only  # the fault is a symlink planted in a version directory
def test_unforeseen_error_in_one_worker_fails_only_that_certificate(offline: Certctl) -> None:
    upload(offline, "shop")
    store = Store(offline.store)
    leaf = certfactory.make_leaf("auto.example.net")
    automatic_record(store, "auto", leaf.cert_pem(), leaf.key_pem())
    # a symlink planted at the live key: the store refuses to follow it (ELOOP), an
    # OSError no code path expects
    key = offline.store / "certs" / "auto" / "versions" / "1" / "privkey.pem"
    key.rename(key.with_name("elsewhere.pem"))
    key.symlink_to("elsewhere.pem")
    proc = offline.run("renew-due", "--json")
    assert proc.returncode == 1, proc.stderr
    outcomes = {c["name"]: c for c in json.loads(proc.stdout)["certificates"]}
    assert outcomes["shop"]["action"] == "notified"
    assert outcomes["auto"]["action"] == "failed"
    # today "internal error (OSError: ...); rerun with --debug" (one line, not a traceback)
    assert "privkey.pem" in outcomes["auto"]["detail"]
    assert "Traceback" not in proc.stderr


def test_doctor_names_the_field_of_damaged_account_metadata(offline: Certctl) -> None:
    from certctl.models import AccountRecord

    server = "https://acme.example/dir"
    with storeview.opened(offline) as store:
        store.ensure()
        store.write_account_key(server, certfactory.key_bytes(certfactory.private_key()))
        store.write_account(AccountRecord(server=server, uri="https://acme.example/acct/1"))
    assert offline.run("doctor").returncode == 0
    if offline.backend == "filesystem":
        (account,) = (offline.store / "accounts").glob("*/account.toml")
        account.write_text(
            account.read_text().replace('uri = "https://acme.example/acct/1"', "uri = 5")
        )
        path = str(account)
    else:  # the same by hand in the row
        statement = (
            "UPDATE certctl_accounts SET record = jsonb_set(record, '{uri}', '5') WHERE server = %s"
        )
        assert storeview.execute(offline, statement, (server,)) == 1
        path = f"accounts/{server}"
    proc = offline.run("doctor", "--json")
    assert proc.returncode == 1
    (finding,) = json.loads(proc.stdout)["findings"]
    assert (finding["severity"], finding["path"]) == ("error", path)
    assert (
        "account metadata is damaged (uri: expected a string, got an integer)"
        in (finding["problem"])
    )


def test_force_on_a_damaged_record_reports_it_and_handles_the_others(offline: Certctl) -> None:
    upload(offline, "good")
    upload(offline, "bad")
    damage_record(offline, "bad", "name = 'bad'\ndomains = 5\n", '{"name": "bad", "domains": 5}')
    proc = offline.run("renew-due", "--force", "bad", "--json")
    assert proc.returncode == 1, proc.stderr
    outcomes = {c["name"]: c for c in json.loads(proc.stdout)["certificates"]}
    assert outcomes["good"]["action"] == "notified"
    assert outcomes["bad"]["action"] == "damaged"
    assert "domains: expected an array, got an integer" in outcomes["bad"]["detail"]
