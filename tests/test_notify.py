"""Notification channels against real servers started in-process.

E-mail goes to aiosmtpd (plain, STARTTLS with a throwaway certificate, implicit
TLS, AUTH LOGIN), the webhook to a local HTTP server with scripted answers, and
the command channel runs real shell commands. The end-to-end path through
`renew-due` is covered in test_renew_pebble.py.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import threading
import time
import traceback
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certctl.errors import BadInput, OperationFailed
from certctl.notify import (
    SCHEMA,
    CommandChannel,
    EmailChannel,
    Notice,
    WebhookChannel,
    channels_from_config,
)

from pebble import free_port

pytestmark = pytest.mark.timeout(60)

NOT_AFTER = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
PASSWORD = "s3cret-Pa55w0rd!"  # what the SMTP server expects
WRONG = "wr0ng-Pa55-hunter2"  # what a misconfigured certctl sends


def make_notice(**changes: Any) -> Notice:
    values: dict[str, Any] = {
        "name": "shop",
        "domains": ["shop.example.net", "www.shop.example.net"],
        "not_after": NOT_AFTER,
        "days_left": 2.345678,
        "state": "expiring",
        "reason": "will not be renewed automatically: uploaded certificates need a human",
        "action": "obtain a new certificate and run 'certctl upload shop --replace ...'",
        "host": "web1.example.net",
    }
    values.update(changes)
    return Notice(**values)


# --- the notice itself ----------------------------------------------------------------------


def test_notice_json_body_shape() -> None:
    notice = make_notice()
    body = notice.to_json()
    assert set(body) == {
        "schema",
        "name",
        "domains",
        "not_after",
        "days_left",
        "state",
        "reason",
        "action",
        "host",
        "subject",
    }
    assert body["schema"] == SCHEMA == "certctl.notice/1"
    assert body["name"] == "shop"
    assert body["domains"] == ["shop.example.net", "www.shop.example.net"]
    assert body["not_after"] == "2025-06-01T08:30:00+00:00"
    assert datetime.fromisoformat(body["not_after"]) == NOT_AFTER
    assert body["days_left"] == 2.35
    assert body["state"] == "expiring"
    assert body["reason"].startswith("will not be renewed automatically")
    assert "certctl upload shop --replace" in body["action"]
    assert body["host"] == "web1.example.net"
    assert body["subject"] == (
        "[certctl] shop expires in 2.3 days (shop.example.net, www.shop.example.net)"
    )
    assert json.loads(json.dumps(body)) == body  # plain JSON, nothing exotic


def test_notice_json_without_dates_and_expired_subject() -> None:
    unknown = make_notice(not_after=None, days_left=None, state="failed").to_json()
    assert (unknown["not_after"], unknown["days_left"]) == (None, None)
    assert "expires in unknown" in unknown["subject"]
    expired = make_notice(days_left=-1.5, state="expired")
    assert expired.subject == (
        "[certctl] shop has EXPIRED (shop.example.net, www.shop.example.net)"
    )


def test_notice_host_defaults_to_this_machine() -> None:
    notice = Notice("n", ["n.example"], NOT_AFTER, 1.0, "expiring", "why", "what")
    assert notice.host == os.uname().nodename


def test_notice_text_body() -> None:
    text = make_notice().body()
    for expected in (
        "Certificate: shop",
        "Names:       shop.example.net, www.shop.example.net",
        "Expires:     2025-06-01 08:30 UTC",
        "State:       expiring",
        "Why:         will not be renewed automatically",
        "What to do:  obtain a new certificate and run 'certctl upload shop --replace ...'",
        "Host:        web1.example.net",
    ):
        assert expected in text


# --- channels_from_config -------------------------------------------------------------------


def test_no_notify_table_means_no_channels() -> None:
    assert channels_from_config({}) == []
    assert channels_from_config({"notify": {}}) == []


def test_all_channels_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    raw = {
        "notify": {
            "email": [
                {"host": "mail.example.net", "to": "ops@example.net", "security": "none"},
                {
                    "host": "smtp.example.net",
                    "port": 465,
                    "security": "tls",
                    "to": ["a@example.net", "b@example.net"],
                    "username": "certctl",
                    "password_env": "TEST_SMTP_PASSWORD",
                },
            ],
            "webhook": {"url": "https://hooks.example.net/x?token=abc", "timeout": 3},
            "command": {"command": "logger -t certctl"},
        }
    }
    channels = channels_from_config(raw)
    assert [type(c) for c in channels] == [
        EmailChannel,
        EmailChannel,
        WebhookChannel,
        CommandChannel,
    ]
    assert [c.label for c in channels] == [
        "e-mail to ops@example.net",
        "e-mail to a@example.net, b@example.net",
        "webhook https://hooks.example.net/…",  # neither path nor query (often a secret) shown
        "command logger",
    ]
    first, second = channels[0], channels[1]
    assert isinstance(first, EmailChannel) and isinstance(second, EmailChannel)
    assert (first.port, first.security, first.password) == (587, "none", None)
    assert (second.port, second.security, second.password) == (465, "tls", PASSWORD)


@pytest.mark.parametrize(
    ("notify", "words"),
    [
        pytest.param({"slack": {"url": "https://x"}}, ["unknown notify channel", "'slack'"],
                     id="unknown channel"),
        pytest.param({"email": {"to": "ops@example.net"}}, ["notify.email", "'host'"],
                     id="email without host"),
        pytest.param({"email": {"host": "mail.example.net"}}, ["notify.email", "'to'"],
                     id="email without to"),
        pytest.param({"email": {"host": "h", "to": "t@example.net", "security": "ssl"}},
                     ["security must be starttls, tls or none"], id="bad security"),
        pytest.param({"email": {"host": "h", "to": "t@example.net", "port": "smtp"}},
                     ["notify.email", "invalid value"], id="bad port"),
        pytest.param({"webhook": {"timeout": 5}}, ["notify.webhook", "'url'"],
                     id="webhook without url"),
        pytest.param({"webhook": {"url": "ftp://example.net/x"}}, ["http:// or https://"],
                     id="webhook not http"),
        pytest.param({"webhook": {"url": "https://x", "timeout": "soon"}},
                     ["notify.webhook", "invalid value"], id="webhook bad timeout"),
        pytest.param({"command": {"timeout": 5}}, ["notify.command", "'command'"],
                     id="command without command"),
        pytest.param({"email": "mail.example.net"}, ["[notify.email] must be a table"],
                     id="email not a table"),
        pytest.param({"email": {"host": "h", "to": "t@example.net",
                                "password_env": "CERTCTL_TEST_UNSET_VARIABLE"}},
                     ["CERTCTL_TEST_UNSET_VARIABLE", "not set"], id="password_env unset"),
    ],
)  # fmt: skip
def test_channels_from_config_refusals(
    notify: dict[str, Any], words: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CERTCTL_TEST_UNSET_VARIABLE", raising=False)
    with pytest.raises(BadInput) as caught:
        channels_from_config({"notify": notify})
    for word in words:
        assert word in str(caught.value)


def test_notify_must_be_a_table() -> None:
    with pytest.raises(BadInput, match=r"\[notify\] must be a table"):
        channels_from_config({"notify": ["email"]})


def test_password_in_config_refused_without_echoing_it() -> None:
    raw = {"notify": {"email": {"host": "h", "to": "t@example.net", "password": PASSWORD}}}
    with pytest.raises(BadInput) as caught:
        channels_from_config(raw)
    message = str(caught.value)
    assert "password_env" in message and "password_file" in message
    assert "not in the config file" in message
    assert PASSWORD not in message
    assert PASSWORD not in "".join(traceback.format_exception(caught.value))


def test_password_file_unreadable(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    raw = {"notify": {"email": {"host": "h", "to": "t@example.net", "password_file": str(missing)}}}
    with pytest.raises(BadInput, match="cannot read password file"):
        channels_from_config(raw)


# --- a throwaway TLS certificate for 127.0.0.1 ----------------------------------------------


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1/localhost, made with cryptography."""
    directory = tmp_path_factory.mktemp("smtp-tls")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Tls(directory / "smtp-cert.pem", directory / "smtp-key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# --- real SMTP servers (aiosmtpd) -----------------------------------------------------------


@dataclass
class Mailbox:
    """What the in-process SMTP server saw."""

    messages: list[Any] = field(default_factory=list)
    logins: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # mechanism, user, pw
    tls: list[bool] = field(default_factory=list)  # was each delivered message over TLS?

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        self.tls.append(session.ssl is not None)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((mechanism, auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (b"certctl", PASSWORD.encode())
        return AuthResult(success=ok, handled=False)

    def email(self, index: int = 0) -> EmailMessage:
        parsed = message_from_bytes(self.messages[index].content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpServer:
    mailbox: Mailbox
    port: int


def start_smtp(*, auth: bool = False, **kwargs: Any) -> tuple[Controller, SmtpServer]:
    mailbox = Mailbox()
    if auth:
        kwargs.setdefault("auth_require_tls", True)
        kwargs.update(
            authenticator=mailbox.authenticate,
            auth_exclude_mechanism=["PLAIN"],  # AUTH LOGIN
        )
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, SmtpServer(mailbox, port)


@pytest.fixture
def plain_smtp() -> Iterator[SmtpServer]:
    """A local relay without TLS or authentication."""
    controller, server = start_smtp()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def starttls_smtp(tls: Tls) -> Iterator[SmtpServer]:
    """A submission server: STARTTLS required, AUTH LOGIN only over TLS."""
    controller, server = start_smtp(
        tls_context=tls.server_context(), require_starttls=True, auth=True
    )
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def implicit_tls_smtp(tls: Tls) -> Iterator[SmtpServer]:
    """An SMTPS server (TLS from the first byte), AUTH LOGIN."""
    # aiosmtpd cannot tell that an implicit-TLS connection is encrypted: with
    # auth_require_tls it would hide AUTH. The socket is TLS from the first byte.
    controller, server = start_smtp(
        ssl_context=tls.server_context(), auth=True, auth_require_tls=False
    )
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) but never says a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def unreachable_port() -> Iterator[int]:
    """A port whose accept queue is full: connecting to it times out (SYNs are dropped)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    port = sock.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            fillers.append(filler)
            filler.settimeout(0.2)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.skip("could not fill the accept queue on this system")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        sock.close()


def email_channel(port: int, **settings: Any) -> EmailChannel:
    table = {
        "host": "127.0.0.1",
        "port": port,
        "from": "certctl@web1.example.net",
        "to": ["ops@example.net", "oncall@example.net"],
        "timeout": 10,
        **settings,
    }
    channels = channels_from_config({"notify": {"email": table}})
    assert len(channels) == 1 and isinstance(channels[0], EmailChannel)
    return channels[0]


def assert_delivered(server: SmtpServer, notice: Notice) -> EmailMessage:
    assert len(server.mailbox.messages) == 1
    envelope = server.mailbox.messages[0]
    assert envelope.mail_from == "certctl@web1.example.net"
    assert envelope.rcpt_tos == ["ops@example.net", "oncall@example.net"]
    message = server.mailbox.email()
    # CPython folds a long Subject onto a continuation line; unfolded, it keeps the space
    assert str(message["Subject"]).strip() == notice.subject
    assert message["From"] == "certctl@web1.example.net"
    assert message["To"] == "ops@example.net, oncall@example.net"
    body = message.get_content()
    assert body.replace("\r\n", "\n") == notice.body()  # CRLF on the wire
    return message


def test_email_plain_local_relay(plain_smtp: SmtpServer) -> None:
    notice = make_notice()
    email_channel(plain_smtp.port, security="none").send(notice)
    assert_delivered(plain_smtp, notice)
    assert plain_smtp.mailbox.tls == [False]
    assert plain_smtp.mailbox.logins == []


def test_email_single_recipient_as_string(plain_smtp: SmtpServer) -> None:
    channel = email_channel(plain_smtp.port, security="none", to="ops@example.net")
    channel.send(make_notice())
    assert plain_smtp.mailbox.messages[0].rcpt_tos == ["ops@example.net"]


def test_email_starttls_login_password_env(
    starttls_smtp: SmtpServer, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    channel = email_channel(
        starttls_smtp.port,
        security="starttls",
        ca_bundle=str(tls.cert),
        username="certctl",
        password_env="TEST_SMTP_PASSWORD",
    )
    notice = make_notice()
    channel.send(notice)
    assert_delivered(starttls_smtp, notice)
    assert starttls_smtp.mailbox.tls == [True]
    assert starttls_smtp.mailbox.logins == [("LOGIN", b"certctl", PASSWORD.encode())]


def test_email_starttls_is_the_default(starttls_smtp: SmtpServer, tls: Tls, tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")  # a trailing newline, as editors leave it
    secret.chmod(0o600)
    channel = email_channel(
        starttls_smtp.port, ca_bundle=str(tls.cert), username="certctl", password_file=str(secret)
    )
    assert channel.security == "starttls"
    notice = make_notice()
    channel.send(notice)
    assert_delivered(starttls_smtp, notice)
    assert starttls_smtp.mailbox.tls == [True]
    assert starttls_smtp.mailbox.logins == [("LOGIN", b"certctl", PASSWORD.encode())]


def test_email_implicit_tls_login(
    implicit_tls_smtp: SmtpServer, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    channel = email_channel(
        implicit_tls_smtp.port,
        security="tls",
        ca_bundle=str(tls.cert),
        username="certctl",
        password_env="TEST_SMTP_PASSWORD",
    )
    notice = make_notice()
    channel.send(notice)
    assert_delivered(implicit_tls_smtp, notice)
    assert implicit_tls_smtp.mailbox.logins == [("LOGIN", b"certctl", PASSWORD.encode())]


def secrets_of(password: str) -> list[str]:
    """The password and the forms it takes on the wire (AUTH LOGIN/PLAIN base64)."""
    return [
        password,
        b64encode(password.encode()).decode(),
        b64encode(b"\0certctl\0" + password.encode()).decode(),
    ]


def assert_secret_free(error: BaseException, password: str) -> None:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for text in texts:
        for secret in secrets_of(password):
            assert secret not in text, text


@pytest.mark.parametrize("source", ["password_env", "password_file"])
def test_email_login_refused_never_leaks_password(
    starttls_smtp: SmtpServer,
    tls: Tls,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    if source == "password_env":
        monkeypatch.setenv("TEST_SMTP_PASSWORD", WRONG)
        settings = {"password_env": "TEST_SMTP_PASSWORD"}
    else:
        secret = tmp_path / "smtp-password"
        secret.write_text(WRONG)
        settings = {"password_file": str(secret)}
    channel = email_channel(
        starttls_smtp.port, ca_bundle=str(tls.cert), username="certctl", **settings
    )
    with pytest.raises(OperationFailed) as caught:
        channel.send(make_notice())
    assert "login refused for certctl" in str(caught.value)
    assert f"127.0.0.1:{starttls_smtp.port}" in str(caught.value)
    assert_secret_free(caught.value, WRONG)
    assert starttls_smtp.mailbox.logins == [("LOGIN", b"certctl", WRONG.encode())]
    assert starttls_smtp.mailbox.messages == []


def test_email_untrusted_server_certificate_refused(
    starttls_smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    channel = email_channel(  # no ca_bundle: the throwaway certificate is not trusted
        starttls_smtp.port, username="certctl", password_env="TEST_SMTP_PASSWORD"
    )
    with pytest.raises(OperationFailed) as caught:
        channel.send(make_notice())
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert_secret_free(caught.value, PASSWORD)
    assert starttls_smtp.mailbox.logins == []  # the password never left
    assert starttls_smtp.mailbox.messages == []


def test_email_starttls_never_downgrades_to_plain(
    plain_smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    channel = email_channel(  # the server offers no STARTTLS: nothing may go in clear
        plain_smtp.port, username="certctl", password_env="TEST_SMTP_PASSWORD"
    )
    with pytest.raises(OperationFailed, match="failed"):
        channel.send(make_notice())
    assert plain_smtp.mailbox.messages == []
    assert plain_smtp.mailbox.logins == []


def test_email_connection_refused() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(OperationFailed, match=rf"e-mail via 127\.0\.0\.1:{port} failed: .*refused"):
        email_channel(port, security="none").send(make_notice())


def test_email_silent_server_says_it_timed_out(silent_server: int) -> None:
    channel = email_channel(silent_server, security="none", timeout=0.5)
    with pytest.raises(OperationFailed) as caught:
        channel.send(make_notice())
    assert "timed out" in str(caught.value)


def test_email_connect_timeout_says_it_timed_out(unreachable_port: int) -> None:
    channel = email_channel(unreachable_port, security="none", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(OperationFailed) as caught:
        channel.send(make_notice())
    assert time.monotonic() - started < 5
    assert "None" not in str(caught.value)
    assert "timed out" in str(caught.value)


@pytest.mark.parametrize("kind", ["silent_server", "unreachable_port"])
def test_email_unresponsive_server_fails_within_the_timeout(
    kind: str, request: pytest.FixtureRequest
) -> None:
    port = request.getfixturevalue(kind)
    channel = email_channel(port, security="none", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(OperationFailed, match=rf"e-mail via 127\.0\.0\.1:{port} failed"):
        channel.send(make_notice())
    assert time.monotonic() - started < 5


# --- a real HTTP server for the webhook -----------------------------------------------------


@dataclass
class Hook:
    """A local HTTP endpoint answering with scripted status codes (then 200)."""

    url: str
    statuses: list[int]
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Hook(f"http://127.0.0.1:{server.server_address[1]}/notify?token=t0k3n", [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            state.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": json.loads(self.rfile.read(length)),
                    "at": time.monotonic(),
                }
            )
            status = state.statuses.pop(0) if state.statuses else 200
            payload = b'{"ok": true}' if status < 300 else b"internal error"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def webhook_channel(url: str, **settings: Any) -> WebhookChannel:
    channels = channels_from_config({"notify": {"webhook": {"url": url, **settings}}})
    assert len(channels) == 1 and isinstance(channels[0], WebhookChannel)
    return channels[0]


def test_webhook_200_sent_once(hook: Hook) -> None:
    notice = make_notice()
    webhook_channel(hook.url, timeout=5, headers={"Authorization": "Bearer abc"}).send(notice)
    assert len(hook.requests) == 1
    request = hook.requests[0]
    assert request["path"] == "/notify?token=t0k3n"
    assert request["body"] == notice.to_json()
    assert request["body"]["schema"] == "certctl.notice/1"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["User-Agent"] == "certctl"
    assert request["headers"]["Authorization"] == "Bearer abc"


def test_webhook_2xx_other_than_200_is_success(hook: Hook) -> None:
    hook.statuses[:] = [204]
    webhook_channel(hook.url).send(make_notice())
    assert len(hook.requests) == 1


def test_webhook_500_then_200_retried_once(hook: Hook) -> None:
    hook.statuses[:] = [500, 200]
    notice = make_notice()
    webhook_channel(hook.url, timeout=5).send(notice)
    assert len(hook.requests) == 2
    assert hook.requests[0]["body"] == hook.requests[1]["body"] == notice.to_json()
    assert hook.requests[1]["at"] - hook.requests[0]["at"] >= 0.9  # a pause before the retry


def test_webhook_500_twice_fails(hook: Hook) -> None:
    hook.statuses[:] = [500, 500]
    with pytest.raises(OperationFailed) as caught:
        webhook_channel(hook.url, timeout=5).send(make_notice())
    assert "HTTP 500" in str(caught.value)
    assert "failed twice" in str(caught.value)
    assert "t0k3n" not in str(caught.value)  # the query string may hold a token
    assert len(hook.requests) == 2  # one retry, no more


@pytest.mark.parametrize("kind", ["silent_server", "unreachable_port"])
def test_webhook_unresponsive_server_fails_within_the_timeout(
    kind: str, request: pytest.FixtureRequest
) -> None:
    timeout = 0.5
    port = request.getfixturevalue(kind)
    channel = webhook_channel(f"http://127.0.0.1:{port}/hook", timeout=timeout)
    started = time.monotonic()
    with pytest.raises(OperationFailed) as caught:
        channel.send(make_notice())
    elapsed = time.monotonic() - started
    # two attempts of `timeout` each and the one-second pause, with slack for a busy machine
    assert 2 * timeout <= elapsed < 2 * timeout + 1 + 2
    assert "timed out" in str(caught.value)


def test_webhook_connection_refused() -> None:
    port = free_port()
    with pytest.raises(OperationFailed, match="refused"):
        webhook_channel(f"http://127.0.0.1:{port}/hook", timeout=2).send(make_notice())


# --- the command channel --------------------------------------------------------------------


def command_channel(command: str, **settings: Any) -> CommandChannel:
    channels = channels_from_config({"notify": {"command": {"command": command, **settings}}})
    assert len(channels) == 1 and isinstance(channels[0], CommandChannel)
    return channels[0]


def test_command_gets_json_on_stdin_and_environment(tmp_path: Path) -> None:
    stdin, env = tmp_path / "stdin.json", tmp_path / "env.txt"
    notice = make_notice()
    command_channel(f"cat > '{stdin}'; env > '{env}'").send(notice)
    assert json.loads(stdin.read_text()) == notice.to_json()
    variables = dict(
        line.split("=", 1) for line in env.read_text().splitlines() if line.startswith("CERTCTL_")
    )
    assert variables["CERTCTL_NAME"] == "shop"
    assert variables["CERTCTL_DOMAINS"] == "shop.example.net www.shop.example.net"
    assert variables["CERTCTL_STATE"] == "expiring"
    assert variables["CERTCTL_SUBJECT"] == notice.subject
    assert variables["CERTCTL_NOT_AFTER"] == "2025-06-01T08:30:00+00:00"


def test_command_failure_reports_stderr_tail() -> None:
    channel = command_channel("echo starting >&2; echo 'relay unreachable' >&2; exit 3")
    with pytest.raises(OperationFailed) as caught:
        channel.send(make_notice())
    assert str(caught.value) == "command echo exited 3: relay unreachable"


def test_command_failure_without_output() -> None:
    with pytest.raises(OperationFailed, match="exited 1: no output"):
        command_channel("cat >/dev/null; false").send(make_notice())


def test_command_timeout() -> None:
    channel = command_channel("sleep 30", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(OperationFailed, match=r"timed out after 0\.5s"):
        channel.send(make_notice())
    assert time.monotonic() - started < 10


# --- headers every e-mail needs, secret-free labels ------------------------------------------


def test_email_has_date_and_message_id(plain_smtp: SmtpServer) -> None:
    from email.utils import parsedate_to_datetime

    before = datetime.now(UTC).replace(microsecond=0)
    channel = email_channel(plain_smtp.port, security="none")
    channel.send(make_notice())
    channel.send(make_notice())
    first, second = plain_smtp.mailbox.email(0), plain_smtp.mailbox.email(1)
    sent = parsedate_to_datetime(str(first["Date"]))
    assert sent.tzinfo is not None
    assert before <= sent <= datetime.now(UTC) + timedelta(seconds=1)
    message_id = str(first["Message-ID"])
    assert message_id.startswith("<") and message_id.endswith("@web1.example.net>")
    assert message_id != str(second["Message-ID"])  # unique per message


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXX", "webhook https://hooks.slack.com/…"),
        ("https://hooks.example.com/x?token=abc#frag", "webhook https://hooks.example.com/…"),
        ("https://hooks.example.com?token=abc", "webhook https://hooks.example.com/…"),
        ("http://127.0.0.1:8080/", "webhook http://127.0.0.1:8080/"),
        ("https://hooks.example.com", "webhook https://hooks.example.com/"),
        ("http://[::1]:9000/secret", "webhook http://[::1]:9000/…"),
    ],
)
def test_webhook_label_leaves_out_path_and_query(url: str, label: str) -> None:
    assert webhook_channel(url).label == label


def test_webhook_url_with_userinfo_is_refused_without_echoing_it() -> None:
    with pytest.raises(BadInput) as caught:
        channels_from_config({"notify": {"webhook": {"url": "https://u:hunter2@h.example/x"}}})
    assert "user:password@" in str(caught.value) and "headers" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_channels_that_look_alike_get_distinct_labels() -> None:
    channels = channels_from_config(
        {
            "notify": {
                "webhook": [
                    {"url": "https://hooks.slack.com/services/A"},
                    {"url": "https://hooks.slack.com/services/B"},
                ]
            }
        }
    )
    assert [c.label for c in channels] == [
        "webhook https://hooks.slack.com/…",
        "webhook https://hooks.slack.com/… #2",
    ]


def test_webhook_redirect_is_not_followed(hook: Hook) -> None:
    """The channel alone: a 3xx fails at once (no retry), naming no URL or secret."""
    hook.statuses[:] = [302]
    with pytest.raises(OperationFailed) as caught:
        webhook_channel(hook.url, headers={"Authorization": "Bearer abc"}).send(make_notice())
    assert "answered HTTP 302 (a redirect)" in str(caught.value)
    assert "t0k3n" not in str(caught.value) and "/notify" not in str(caught.value)
    assert len(hook.requests) == 1


def test_command_label_is_the_program_without_variables_or_arguments() -> None:
    assert command_channel("logger -t certctl").label == "command logger"
    assert command_channel("TOKEN=s3cr3t API_KEY=k3y /usr/bin/notify --x y").label == (
        "command /usr/bin/notify"
    )
