"""Run throwaway BIND9 `named` instances on loopback for the DNS-01 tests."""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import pytest

from pebble import PebbleServer, _free_tcp_udp_port, _tail, require_pebble

SBIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
START_ATTEMPTS = 3


def find_tool(name: str) -> str | None:
    """Path of `name` on PATH or in the sbin directories (named lives in /usr/sbin)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in SBIN_DIRS:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def require_tools(*names: str) -> list[str]:
    """Paths of the tools, or skip (fail under CI=true) when one is missing."""
    paths = [find_tool(n) for n in names]
    missing = [n for n, p in zip(names, paths, strict=True) if p is None]
    if not missing:
        return [p for p in paths if p]
    message = f"{', '.join(missing)} not installed (Debian: bind9, bind9-dnsutils)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must run scripts/setup.sh first", pytrace=False)
    pytest.skip(f"{message}; run `sudo scripts/setup.sh` to enable the BIND tests")


@dataclass(frozen=True)
class Key:
    """A TSIG key as BIND and dnspython both need it."""

    name: str
    secret: str = field(default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    algorithm: str = "hmac-sha256"

    def clause(self) -> str:
        """The named.conf key clause (also what `tsig-keygen` prints)."""
        return f'key "{self.name}" {{ algorithm {self.algorithm}; secret "{self.secret}"; }};\n'

    def dnspython(self) -> dns.tsig.Key:
        """The key for dnspython."""
        return dns.tsig.Key(self.name, self.secret, self.algorithm)


@dataclass
class Zone:
    """One zone served by a BindServer."""

    name: str
    records: str = ""
    update_key: str | None = None  # key granted TXT updates (update-policy zonesub)
    admin_key: str | None = None  # key granted any update (for test set-up)
    primary_port: int | None = None  # serve as a secondary of 127.0.0.1:port
    notify_ports: list[int] = field(default_factory=list)

    def text(self) -> str:
        """Zone file: SOA, NS at 127.0.0.2:53 (nothing listens there), every name → 127.0.0.1."""
        return (
            f"$TTL 60\n$ORIGIN {self.name}.\n"
            f"@ IN SOA ns1 hostmaster 1 60 60 600 60\n"
            "@ IN NS ns1\nns1 IN A 127.0.0.2\n@ IN A 127.0.0.1\n* IN A 127.0.0.1\n" + self.records
        )


class BindServer:
    """A `named -g` on 127.0.0.1 on a free port, with its config, zones and journals in tmp_dir."""

    def __init__(
        self,
        tmp_dir: Path,
        zones: list[Zone],
        keys: list[Key],
        port: int = 0,
        forward_to: int | None = None,
    ) -> None:
        """`forward_to` (a port on 127.0.0.1) makes a caching-off recursive resolver for *.test."""
        self.tmp_dir = Path(tmp_dir)
        self.zones = zones
        self.keys = keys
        self.forward_to = forward_to
        self.fixed_port = bool(port)  # others were configured with it: never move it
        self.port = port or _free_tcp_udp_port()
        self.log_path = self.tmp_dir / "named.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """ "127.0.0.1:PORT"."""
        return f"127.0.0.1:{self.port}"

    def _config(self) -> str:
        d = self.tmp_dir
        parts = [
            "options {\n"
            f'  directory "{d}";\n'
            f"  listen-on port {self.port} {{ 127.0.0.1; }};\n"
            "  listen-on-v6 { none; };\n"
            f'  pid-file "{d}/named.pid";\n'
            f'  session-keyfile "{d}/session.key";\n'
            f'  managed-keys-directory "{d}";\n'
            "  dnssec-validation no;\n  notify no;\n  notify-delay 2;\n"
            "  allow-transfer { 127.0.0.1; };\n"
            + (
                "  recursion yes;\n  allow-recursion { 127.0.0.1; };\n"
                "  max-cache-ttl 0;\n  max-ncache-ttl 0;\n"
                if self.forward_to
                else "  recursion no;\n"
            )
            + "};\ncontrols { };\n",
            *(k.clause() for k in self.keys),
        ]
        if self.forward_to:
            parts.append(
                'zone "test" { type forward; forward only;'
                f" forwarders {{ 127.0.0.1 port {self.forward_to}; }}; }};\n"
            )
        for zone in self.zones:
            (d / f"{zone.name}.zone").write_text(zone.text())
            body = f'  file "{zone.name}.zone";\n'
            if zone.primary_port:
                body = (
                    f'  type secondary;\n  file "{zone.name}.sec";\n'
                    f"  primaries {{ 127.0.0.1 port {zone.primary_port}; }};\n"
                )
            else:
                body = "  type primary;\n" + body
            grants = [f"grant {k} zonesub TXT;" for k in (zone.update_key,) if k]
            grants += [f"grant {k} zonesub ANY;" for k in (zone.admin_key,) if k]
            if grants:
                body += f"  update-policy {{ {' '.join(grants)} }};\n"
            if zone.notify_ports:
                targets = " ".join(f"127.0.0.1 port {p};" for p in zone.notify_ports)
                body += f"  notify explicit;\n  also-notify {{ {targets} }};\n"
            parts.append(f'zone "{zone.name}" {{\n{body}}};\n')
        return "".join(parts)

    def start(self) -> BindServer:
        """Start named and wait until every zone answers its SOA with authority."""
        named = require_tools("named")[0]
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        conf = self.tmp_dir / "named.conf"
        for attempt in range(1, START_ATTEMPTS + 1):
            conf.write_text(self._config())
            with self.log_path.open("wb") as log:
                self._proc = subprocess.Popen(
                    [named, "-g", "-4", "-n", "1", "-c", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            atexit.register(self.stop)
            try:
                self._wait_ready()
                return self
            except RuntimeError:
                self.stop()
                in_use = "address in use" in _tail(self.log_path)
                if attempt == START_ATTEMPTS or not in_use or self.fixed_port:
                    raise
                self.port = _free_tcp_udp_port()
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        pending = [z.name for z in self.zones] or ["test"]  # a resolver: its forward zone
        while pending:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"named exited {self._proc.returncode}:\n{_tail(self.log_path)}")
            pending = [z for z in pending if not self._serves(z)]
            if time.monotonic() > deadline:
                raise RuntimeError(f"named not serving {pending}:\n{_tail(self.log_path)}")
            if pending:
                time.sleep(0.05)

    def _serves(self, zone: str) -> bool:
        try:
            response = self.query(zone, "SOA", timeout=0.5, recurse=bool(self.forward_to))
        except Exception:
            return False
        if self.forward_to:
            return True
        return bool(response.flags & dns.flags.AA) and bool(response.answer)

    def stop(self) -> None:
        """Terminate named (SIGTERM, then SIGKILL) and reap it."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)

    def freeze(self) -> None:
        """SIGSTOP: the server stays bound but answers nothing (a hung or firewalled server)."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after freeze()."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)

    def __enter__(self) -> BindServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- DNS helpers -------------------------------------------------------------------------

    def query(
        self, name: str, rdtype: str, timeout: float = 3.0, recurse: bool = False
    ) -> dns.message.Message:
        """A query to this server (non-recursive unless asked)."""
        request = dns.message.make_query(name, rdtype)
        if not recurse:
            request.flags &= ~dns.flags.RD
        response, _ = dns.query.udp_with_fallback(
            request, "127.0.0.1", timeout=timeout, port=self.port
        )
        return response

    def txt(self, name: str) -> list[str]:
        """The TXT values this server serves at `name`."""
        response = self.query(name, "TXT")
        target = dns.name.from_text(name)
        return sorted(
            b"".join(r.strings).decode()
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.TXT and rrset.name == target
            for r in rrset
        )

    def leftover_challenges(self) -> list[str]:
        """Every `_acme-challenge` TXT still in the primary zones (via zone transfer)."""
        import dns.zone

        found = []
        for zone in self.zones:
            if zone.primary_port:
                continue
            xfr = dns.zone.from_xfr(
                dns.query.xfr("127.0.0.1", zone.name, port=self.port, timeout=5)
            )
            for name, node in xfr.nodes.items():
                challenge = bool(name.labels) and name.labels[0] == b"_acme-challenge"
                if challenge and node.get_rdataset(xfr.rdclass, dns.rdatatype.TXT) is not None:
                    found.append(f"{name}.{zone.name}")
        return found

    def update(self, zone: str, key: Key, *changes: tuple[str, str, str, str]) -> None:
        """Apply ("add"|"delete", name, type, rdata) changes signed with `key` (test set-up)."""
        message = dns.update.UpdateMessage(zone, keyring=key.dnspython())
        for action, text, rdtype, rdata in changes:
            name = dns.name.from_text(text)  # absolute: strings would be relative to the zone
            if action == "add":
                message.add(name, 60, rdtype, rdata)
            else:
                message.delete(name, rdtype, rdata)
        response = dns.query.tcp(message, "127.0.0.1", timeout=5, port=self.port)
        assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())


# -- the lab the DNS-01 tests share --------------------------------------------------------

UPDATABLE = ("dns1.test", "dns2.test", "challenges.test")


@dataclass
class DnsLab:
    """BIND: a primary, a stale copy, a transferring secondary, a resolver; Pebble uses it."""

    primary: BindServer
    resolver: BindServer  # recursive, no cache, forwards *.test to the primary (as the CA's)
    stale: BindServer  # its own static copy of dns1.test: never gets an update
    secondary: BindServer  # secondary of xfer.test (NOTIFY + zone transfer from the primary)
    pebble: PebbleServer
    key: Key  # granted TXT updates in UPDATABLE and xfer.test
    admin: Key  # granted anything (test set-up: CNAMEs)
    secret_file: Path  # the key clause, as tsig-keygen writes it


@contextmanager
def dns_lab(tmp: Path) -> Iterator[DnsLab]:
    """Start the lab's servers in `tmp`; stop them all afterwards (retried on a port race)."""
    require_pebble()
    require_tools("named")
    key, admin = Key("certctl-test"), Key("certctl-admin", algorithm="hmac-sha512")
    secret_file = tmp / "tsig.key"
    secret_file.write_text(key.clause())
    secret_file.chmod(0o600)
    for attempt in range(1, START_ATTEMPTS + 1):
        stack = contextlib.ExitStack()
        try:
            lab = _start_lab(stack, tmp / f"attempt-{attempt}", key, admin, secret_file)
        except RuntimeError:  # PebbleError too: a port picked free was taken meanwhile
            stack.close()
            if attempt == START_ATTEMPTS:
                raise
            continue
        with stack:
            yield lab
        return


def _start_lab(
    stack: contextlib.ExitStack, tmp: Path, key: Key, admin: Key, secret_file: Path
) -> DnsLab:
    # the primary and secondary name each other's ports in their configurations
    primary_port, secondary_port = _free_tcp_udp_port(), _free_tcp_udp_port()
    zones = [Zone(z, update_key=key.name, admin_key=admin.name) for z in UPDATABLE]
    zones += [
        Zone("locked.test", admin_key=admin.name),
        Zone("xfer.test", update_key=key.name, notify_ports=[secondary_port]),
    ]
    primary = stack.enter_context(BindServer(tmp / "primary", zones, [key, admin], primary_port))
    secondary = stack.enter_context(
        BindServer(
            tmp / "secondary", [Zone("xfer.test", primary_port=primary_port)], [], secondary_port
        )
    )
    # only now: a port picked earlier (secondary_port) is no longer free to pick
    stale = stack.enter_context(BindServer(tmp / "stale", [Zone("dns1.test")], []))
    resolver = stack.enter_context(BindServer(tmp / "resolver", [], [], forward_to=primary_port))
    pebble = stack.enter_context(PebbleServer(tmp / "pebble", dns_server=resolver.address))
    return DnsLab(primary, resolver, stale, secondary, pebble, key, admin, secret_file)
