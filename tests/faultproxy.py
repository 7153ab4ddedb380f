"""A fault-injecting HTTPS reverse proxy in front of Pebble (test tree only, loopback only).

certctl talks to the proxy as if it were the CA. Each request is matched against a
programmable list of rules; a matching rule answers instead of Pebble (429/503 with
Retry-After, a non-JSON error, a 10 MB or endless body, no answer at all) or rewrites
Pebble's answer (an order stuck in "processing", a hostile challenge token). Every
request is logged with its arrival time, so tests can assert what certctl did and when
("no request before the Retry-After time", "one newOrder").

    with FaultProxy(pebble) as proxy:
        proxy.fail("newOrder", 429, retry_after=3600)
        proxy.rewrite_json("order", stuck_processing)
        env["CERTCTL_SERVER"] = proxy.directory_url
"""

from __future__ import annotations

import email.utils
import http.client
import http.server
import json
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pebble import PebbleServer

# Pebble's resource paths → the ACME resource they are (RFC 8555 §7.1). Longest first.
PEBBLE_PATHS = (
    ("/draft-ietf-acme-ari-03/renewalInfo", "renewalInfo"),
    ("/rollover-account-key", "keyChange"),
    ("/finalize-order/", "finalize"),
    ("/revoke-cert", "revokeCert"),
    ("/my-account/", "account"),
    ("/sign-me-up", "newAccount"),
    ("/nonce-plz", "newNonce"),
    ("/order-plz", "newOrder"),
    ("/my-order/", "order"),
    ("/authZ/", "authz"),
    ("/chalZ/", "challenge"),
    ("/certZ/", "cert"),
    ("/dir", "directory"),
)
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "accept-encoding",
    }
)
PROBLEM_JSON = "application/problem+json"
STREAM_CAP = 1 << 30  # an "endless" body stops here at the latest
UPSTREAM_TIMEOUT = 30.0


def kind_of(path: str) -> str:
    """The ACME resource a Pebble path belongs to ("other" when unknown)."""
    for prefix, kind in PEBBLE_PATHS:
        if path.startswith(prefix):
            return kind
    return "other"


@dataclass
class Request:
    """One request as the proxy received it."""

    method: str
    path: str
    kind: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival


@dataclass
class Reply:
    """What the proxy sends back; `body` may be an iterable for a streamed, unsized body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterable[bytes] = b""
    retry_at: float | None = None  # the instant a Retry-After header announced (epoch)

    def header(self, name: str) -> str | None:
        """The first header called `name` (case-insensitive)."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        """Replace every header called `name` with one value."""
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, value))


@dataclass
class Entry:
    """One logged request: when it came, what it was, what certctl got back."""

    at: float
    method: str
    path: str
    kind: str
    status: int = 0  # 0: no answer was sent
    fault: str | None = None  # the label of the rule that applied, None when forwarded as is
    retry_at: float | None = None
    sent: int = 0  # body bytes written before the client went away


@dataclass
class Rule:
    """A fault for requests of one `kind` ("*" for all), for `times` requests (None: until cleared).

    Exactly one of `respond` (answer instead of Pebble), `rewrite` (change Pebble's answer)
    or `hang` (read the request, never answer) is set.
    """

    kind: str
    label: str
    respond: Callable[[Request], Reply] | None = None
    rewrite: Callable[[Request, Reply], Reply] | None = None
    hang: bool = False
    times: int | None = None
    method: str | None = None
    hits: int = 0

    def matches(self, request: Request) -> bool:
        """True when this rule applies to `request` (and has uses left)."""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and request.method != self.method:
            return False
        return self.kind in ("*", request.kind)


def problem(status: int, typ: str, detail: str) -> bytes:
    """An RFC 7807 problem document as an ACME CA sends it (RFC 8555 §6.7)."""
    body = {"type": f"urn:ietf:params:acme:error:{typ}", "detail": detail, "status": status}
    return json.dumps(body).encode()


def http_date(epoch: float) -> str:
    """`epoch` as an HTTP-date (RFC 9110 §5.6.7), e.g. for Retry-After."""
    return email.utils.format_datetime(datetime.fromtimestamp(epoch, UTC), usegmt=True)


def stuck_processing(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """An order the CA never finishes once finalized: status processing, no certificate URL."""
    if data.get("status") in ("processing", "valid"):
        data["status"] = "processing"
        data.pop("certificate", None)
    return data


def with_token(token: str) -> Callable[[Request, dict[str, Any]], dict[str, Any]]:
    """An authorization whose challenges carry `token` instead of the CA's own."""

    def rewrite(request: Request, data: dict[str, Any]) -> dict[str, Any]:
        for challenge in data.get("challenges", []):
            challenge["token"] = token
        return data

    return rewrite


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 60  # a client that stops talking frees its thread eventually

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=self.path,
            kind=kind_of(self.path),
            headers={k: v for k, v in self.headers.items()},
            body=body,
            at=time.time(),
        )
        entry = Entry(request.at, request.method, request.path, request.kind)
        rule = proxy._take_rule(request)
        proxy._record(entry)
        if rule is not None:
            entry.fault = rule.label
        if rule is not None and rule.hang:
            # accept and never answer: hold the connection until released or stopped
            proxy._released.wait()
            self.close_connection = True
            return
        if rule is not None and rule.respond is not None:
            reply = rule.respond(request)
        else:
            reply = proxy._forward(request)
            if rule is not None and rule.rewrite is not None:
                reply = rule.rewrite(request, reply)
        entry.status, entry.retry_at = reply.status, reply.retry_at
        self._send(reply, entry)

    def _send(self, reply: Reply, entry: Entry) -> None:
        self.send_response(reply.status)
        sized = isinstance(reply.body, bytes)
        for key, value in reply.headers:
            if key.lower() not in HOP_BY_HOP or (key.lower() == "content-length" and not sized):
                self.send_header(key, value)
        if isinstance(reply.body, bytes):
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
                entry.sent = len(reply.body)
            return
        # an unsized (or lying) body: stream until the client hangs up, then close
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for chunk in reply.body:
                self.wfile.write(chunk)
                entry.sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    proxy: FaultProxy

    def finish_request(self, request: Any, client_address: Any) -> None:
        proxy = self.proxy
        if proxy._blackhole:  # accepted at TCP level; not even a TLS handshake follows
            proxy._record(Entry(time.time(), "-", "-", "connection", fault="black hole"))
            proxy._released.wait()
            return
        super().finish_request(request, client_address)


class FaultProxy:
    """An HTTPS reverse proxy on 127.0.0.1 in front of one Pebble, with fault rules."""

    def __init__(self, upstream: PebbleServer) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self._log: list[Entry] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._blackhole = False
        self._upstream = threading.local()  # one kept-alive connection per handler thread
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen on a free loopback port, with Pebble's own TLS certificate (valid for it)."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tmp = self.upstream.tmp_dir
        context.load_cert_chain(tmp / "pebble-server.pem", tmp / "pebble-server.key")
        # the handshake happens in the handler thread: a silent client blocks nothing else
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port = server.server_address[1]
        self._server = server
        self._released.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hung requests and stop listening."""
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        """https://127.0.0.1:PORT of the proxy."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def directory_url(self) -> str:
        """The ACME directory URL, through the proxy."""
        return f"{self.origin}/dir"

    # -- rules -------------------------------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        """Append a rule (the first matching rule applies to a request)."""
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule and release hung requests: Pebble answers everything again."""
        with self._lock:
            self.rules.clear()
        self._blackhole = False
        self._released.set()

    def fail(
        self,
        kind: str,
        status: int,
        *,
        retry_after: float | None = None,
        as_date: bool = False,
        body: bytes | None = None,
        content_type: str = PROBLEM_JSON,
        times: int | None = 1,
        method: str | None = None,
    ) -> Rule:
        """Answer `kind` with `status` instead of Pebble, optionally with Retry-After.

        Retry-After is `retry_after` seconds, or with `as_date` an HTTP-date at least that far
        ahead (whole seconds, as the format allows); the announced instant is logged.
        """
        if body is None:
            typ = {429: "rateLimited", 503: "serverInternal"}.get(status, "serverInternal")
            body = problem(status, typ, f"injected {status} by the fault proxy")

        def respond(request: Request) -> Reply:
            reply = Reply(status, [("Content-Type", content_type)], body)
            if retry_after is not None:
                if as_date:
                    when = float(math.ceil(request.at + retry_after))
                    reply.headers.append(("Retry-After", http_date(when)))
                else:
                    when = request.at + retry_after
                    reply.headers.append(("Retry-After", f"{retry_after:g}"))
                reply.retry_at = when
            if request.method == "POST":
                nonce = self._fresh_nonce()  # real CAs send a nonce with every error
                if nonce:
                    reply.headers.append(("Replay-Nonce", nonce))
            return reply

        label = f"{status}" + (f" Retry-After {retry_after:g}s" if retry_after is not None else "")
        return self.add(Rule(kind, label, respond=respond, times=times, method=method))

    def hang(self, kind: str = "*", times: int | None = None) -> Rule:
        """Accept the connection, read the request and never answer."""
        self._released.clear()
        return self.add(Rule(kind, "no answer", hang=True, times=times))

    def blackhole(self) -> None:
        """Accept every TCP connection and then say nothing at all (no TLS handshake)."""
        self._released.clear()
        self._blackhole = True

    def rewrite_json(
        self,
        kind: str,
        change: Callable[[Request, dict[str, Any]], dict[str, Any]],
        times: int | None = None,
        label: str = "rewritten",
    ) -> Rule:
        """Let Pebble answer, then change its JSON body with `change`."""

        def rewrite(request: Request, reply: Reply) -> Reply:
            if not isinstance(reply.body, bytes) or reply.status >= 300:
                return reply
            data = change(request, json.loads(reply.body))
            reply.body = json.dumps(data).encode()
            return reply

        return self.add(Rule(kind, label, rewrite=rewrite, times=times))

    def rewrite_body(
        self,
        kind: str,
        change: Callable[[Request, bytes], bytes],
        times: int | None = None,
        label: str = "rewritten body",
    ) -> Rule:
        """Let Pebble answer, then replace its (non-JSON) body with `change`'s result."""

        def rewrite(request: Request, reply: Reply) -> Reply:
            if not isinstance(reply.body, bytes) or reply.status >= 300:
                return reply
            reply.body = change(request, reply.body)
            return reply

        return self.add(Rule(kind, label, rewrite=rewrite, times=times))

    def big_body(
        self, kind: str, size: int | None, *, declared: bool = True, times: int | None = None
    ) -> Rule:
        """Answer `kind` with 200 and a `size`-byte body (None: endless), sized or not."""

        def chunks() -> Iterator[bytes]:
            block = b" " * 65536
            sent = 0
            while size is None or sent < size:
                piece = block if size is None else block[: size - sent]
                sent += len(piece)
                yield piece
                if sent >= STREAM_CAP:
                    return

        def respond(request: Request) -> Reply:
            headers = [("Content-Type", "application/json")]
            if declared and size is not None:
                headers.append(("Content-Length", str(size)))
            nonce = self._fresh_nonce() if request.method == "POST" else None
            if nonce:
                headers.append(("Replay-Nonce", nonce))
            return Reply(200, headers, chunks())

        label = f"{size} byte body" if size is not None else "endless body"
        return self.add(Rule(kind, label, respond=respond, times=times))

    # -- the log -----------------------------------------------------------------------------

    @property
    def log(self) -> list[Entry]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._log)

    def requests(self, kind: str | None = None, method: str | None = None) -> list[Entry]:
        """Logged requests of one kind (and method)."""
        return [
            e
            for e in self.log
            if (kind is None or e.kind == kind) and (method is None or e.method == method)
        ]

    def faults(self) -> list[Entry]:
        """Logged requests that a rule answered or changed."""
        return [e for e in self.log if e.fault is not None]

    def reset_log(self) -> None:
        """Forget the logged requests (rules stay)."""
        with self._lock:
            self._log.clear()

    # -- internals ---------------------------------------------------------------------------

    def _take_rule(self, request: Request) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(request):
                    rule.hits += 1
                    return rule
        return None

    def _record(self, entry: Entry) -> None:
        with self._lock:
            self._log.append(entry)

    def _connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1",
            self.upstream.acme_port,
            context=self.upstream.ssl_context,
            timeout=UPSTREAM_TIMEOUT,
        )

    def _fresh_nonce(self) -> str | None:
        connection = self._connection()
        try:
            connection.request("HEAD", "/nonce-plz", headers={"User-Agent": "faultproxy"})
            return connection.getresponse().getheader("Replay-Nonce")
        except OSError:
            return None
        finally:
            connection.close()

    def _forward(self, request: Request) -> Reply:
        """Pebble's answer to `request`, with its URLs pointing back at the proxy."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        # Pebble builds its URLs (and checks the JWS "url") from the Host header: keep ours
        headers["Accept-Encoding"] = "identity"
        for attempt in (1, 2):  # a kept-alive connection Pebble has closed: once more, afresh
            connection = getattr(self._upstream, "connection", None) or self._connection()
            self._upstream.connection = connection
            try:
                connection.request(request.method, request.path, body=request.body, headers=headers)
                response = connection.getresponse()
                body = response.read()
                reply_headers = response.getheaders()
                break
            except (http.client.HTTPException, OSError):
                connection.close()
                self._upstream.connection = None
                if attempt == 2:
                    raise
        upstream = f"https://127.0.0.1:{self.upstream.acme_port}"
        body = body.replace(upstream.encode(), self.origin.encode())
        reply = Reply(
            response.status,
            [(k, v.replace(upstream, self.origin)) for k, v in reply_headers],
            body,
        )
        return reply
