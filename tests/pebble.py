"""Run a throwaway Pebble ACME CA plus pebble-challtestsrv for end-to-end tests."""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

INSTALL_SCRIPT = "scripts/install-pebble.sh"
PEBBLE = "pebble"
CHALLTESTSRV = "pebble-challtestsrv"
FALLBACK_DIRS = ("/usr/local/bin", "/opt/pebble/usr/bin")
DEFAULT_PROFILES: dict[str, dict[str, Any]] = {
    "default": {"description": "default", "validityPeriod": 7776000},
    "shortlived": {"description": "short", "validityPeriod": 518400},
}
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
START_ATTEMPTS = 3
_POLL_INTERVAL = 0.05
_HTTP_TIMEOUT = 5.0
# A Pebble that takes longer than this to answer a request that reads its database is wedged.
WEDGE_TIMEOUT = 10.0
DUMP_TIMEOUT = 10.0
# Every PebbleServer between start() and stop(), for the watchdog in conftest.py.
RUNNING: set[Any] = set()


def find_binary(name: str) -> str | None:
    """Return the path of an executable `name` (PATH, then the install locations)."""
    found = shutil.which(name)
    if found:
        return found
    dirs = list(FALLBACK_DIRS)
    prefix = os.environ.get("PEBBLE_PREFIX")
    if prefix:
        dirs.insert(1, os.path.join(prefix, "usr", "bin"))
    for directory in dirs:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_pebble() -> tuple[str, str]:
    """Return (pebble, pebble-challtestsrv) paths, or skip (fail when CI=true) if missing."""
    pebble, challtestsrv = find_binary(PEBBLE), find_binary(CHALLTESTSRV)
    if pebble and challtestsrv:
        return pebble, challtestsrv
    missing = ", ".join(n for n, p in ((PEBBLE, pebble), (CHALLTESTSRV, challtestsrv)) if not p)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{missing} not installed; CI must run {INSTALL_SCRIPT} first", pytrace=False)
    pytest.skip(f"{missing} not installed; run `sudo {INSTALL_SCRIPT}` to enable Pebble tests")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_tcp_udp_port() -> int:
    """Return a port on 127.0.0.1 free for both TCP and UDP (for DNS)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for both TCP and UDP on 127.0.0.1")


def _tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a log file, or a placeholder if unreadable."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<{path} unreadable>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


def _write_tls_material(tmp_dir: Path) -> tuple[Path, Path, Path]:
    """Create a throwaway CA and a 127.0.0.1/localhost/::1 server cert; return their paths."""
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=7)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certctl test Pebble TLS CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(san, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_path = tmp_dir / "ca.pem"
    cert_path = tmp_dir / "pebble-server.pem"
    key_path = tmp_dir / "pebble-server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def _fqdn(host: str) -> str:
    """Return `host` with exactly one trailing dot, as challtestsrv expects."""
    return host.rstrip(".") + "."


class PebbleError(RuntimeError):
    """Pebble or challtestsrv failed to start or answered unexpectedly."""


class PebbleServer:
    """A Pebble ACME server and its pebble-challtestsrv DNS, on free local ports."""

    def __init__(
        self,
        tmp_dir: Path,
        nonce_reject: int = 5,
        va_nosleep: bool = True,
        profiles: dict[str, dict[str, Any]] | None = None,
        eab_keys: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        authz_reuse: int = 0,
        config_overrides: dict[str, Any] | None = None,
        pebble_bin: str | None = None,
        challtestsrv_bin: str | None = None,
        dns_server: str | None = None,
    ) -> None:
        """Configure (but do not start) the servers; files go into `tmp_dir`.

        `dns_server` ("IP:PORT", e.g. a BIND) is where Pebble resolves, instead of challtestsrv.
        """
        self.tmp_dir = Path(tmp_dir)
        self.nonce_reject = nonce_reject
        self.va_nosleep = va_nosleep
        self.profiles = DEFAULT_PROFILES if profiles is None else profiles
        self.eab_keys = eab_keys
        self.extra_env = dict(extra_env or {})
        self.authz_reuse = authz_reuse
        self.config_overrides = dict(config_overrides or {})
        self.pebble_bin = pebble_bin
        self.challtestsrv_bin = challtestsrv_bin
        self.dns_server = dns_server

        self.ca_bundle = self.tmp_dir / "ca.pem"
        self.config_path = self.tmp_dir / "pebble-config.json"
        self.pebble_log_path = self.tmp_dir / "pebble.log"
        self.challtestsrv_log_path = self.tmp_dir / "challtestsrv.log"

        self.acme_port = 0
        self.management_port = 0
        self.http_port = 0
        self.tls_port = 0
        self.dns_port = 0
        self.challtestsrv_port = 0

        self._pebble: subprocess.Popen[bytes] | None = None
        self._challtestsrv: subprocess.Popen[bytes] | None = None
        self._pebble_bin: str | None = None
        self._ssl: ssl.SSLContext | None = None
        self.wedged_logs: list[Path] = []

    # -- addresses ---------------------------------------------------------------------------

    @property
    def directory_url(self) -> str:
        """ACME directory URL."""
        return f"https://127.0.0.1:{self.acme_port}/dir"

    @property
    def management_url(self) -> str:
        """Pebble management API base URL (HTTPS, same CA as the ACME API)."""
        return f"https://127.0.0.1:{self.management_port}"

    @property
    def challtestsrv_url(self) -> str:
        """pebble-challtestsrv management API base URL (plain HTTP)."""
        return f"http://127.0.0.1:{self.challtestsrv_port}"

    @property
    def dns_address(self) -> str:
        """challtestsrv DNS server as "127.0.0.1:<port>" (UDP and TCP)."""
        return f"127.0.0.1:{self.dns_port}"

    @property
    def pids(self) -> tuple[int, ...]:
        """PIDs of the running child processes."""
        return tuple(p.pid for p in (self._pebble, self._challtestsrv) if p is not None)

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context trusting only `ca_bundle`."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self.ca_bundle))
        return self._ssl

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> PebbleServer:
        """Start the servers."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the servers."""
        self.stop()

    def start(self) -> PebbleServer:
        """Start challtestsrv then Pebble and wait until both answer; return self."""
        if self._pebble is not None or self._challtestsrv is not None:
            raise PebbleError("PebbleServer already started")
        pebble_bin = self.pebble_bin or find_binary(PEBBLE)
        chall_bin = self.challtestsrv_bin or find_binary(CHALLTESTSRV)
        if not pebble_bin or not chall_bin:
            raise PebbleError(f"pebble binaries not found; run `sudo {INSTALL_SCRIPT}`")
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        _write_tls_material(self.tmp_dir)
        self._ssl = None
        for attempt in range(1, START_ATTEMPTS + 1):
            self._pick_ports()
            atexit.register(self.stop)
            try:
                self._launch(pebble_bin, chall_bin)
                RUNNING.add(self)
                return self
            except PebbleError:
                self.stop()
                logs = self.pebble_log() + self.challtestsrv_log()
                if attempt == START_ATTEMPTS or "address already in use" not in logs:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Terminate both processes (SIGTERM, then SIGKILL after a timeout) and reap them."""
        atexit.unregister(self.stop)
        RUNNING.discard(self)
        for proc in (self._pebble, self._challtestsrv):
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_TIMEOUT)
        self._pebble = self._challtestsrv = None

    def _pick_ports(self) -> None:
        """Choose distinct free ports for every listener."""
        taken: set[int] = set()

        def pick(dual: bool = False) -> int:
            while True:
                port = _free_tcp_udp_port() if dual else free_port()
                if port not in taken:
                    taken.add(port)
                    return port

        self.dns_port = pick(dual=True)
        self.challtestsrv_port = pick()
        self.acme_port = pick()
        self.management_port = pick()
        self.http_port = pick()
        self.tls_port = pick()

    def _config(self) -> dict[str, Any]:
        """Return the Pebble JSON configuration."""
        conf: dict[str, Any] = {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self.tmp_dir / "pebble-server.pem"),
            "privateKey": str(self.tmp_dir / "pebble-server.key"),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(self.eab_keys),
            "retryAfter": {"authz": 1, "order": 1},
            "profiles": self.profiles,
        }
        if self.eab_keys:
            conf["externalAccountMACKeys"] = self.eab_keys
        conf.update(self.config_overrides)
        return {"pebble": conf}

    def _env(self) -> dict[str, str]:
        """Return Pebble's environment: ours minus stray PEBBLE_* plus the configured knobs."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
        if self.va_nosleep:
            env["PEBBLE_VA_NOSLEEP"] = "1"
        env["PEBBLE_WFE_NONCEREJECT"] = str(self.nonce_reject)
        env["PEBBLE_AUTHZREUSE"] = str(self.authz_reuse)
        env.update(self.extra_env)
        return env

    def _launch(self, pebble_bin: str, chall_bin: str) -> None:
        """Spawn both processes and wait for readiness; raise PebbleError with log tails."""
        self.config_path.write_text(json.dumps(self._config(), indent=2))
        chall_cmd = [
            chall_bin,
            "-dnsserver", self.dns_address,
            "-management", f"127.0.0.1:{self.challtestsrv_port}",
            "-defaultIPv4", "127.0.0.1",
            "-defaultIPv6", "",
            "-http01", "",
            "-https01", "",
            "-tlsalpn01", "",
            "-doh", "",
        ]  # fmt: skip
        with self.challtestsrv_log_path.open("wb") as log:
            self._challtestsrv = subprocess.Popen(
                chall_cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        self._wait(deadline, "challtestsrv", self._challtestsrv_ready)
        self._spawn_pebble(pebble_bin, deadline)

    def _spawn_pebble(self, pebble_bin: str, deadline: float) -> None:
        """Start Pebble on the configured ports and wait until it answers."""
        self._pebble_bin = pebble_bin
        pebble_dns = self.dns_server or self.dns_address
        pebble_cmd = [pebble_bin, "-config", str(self.config_path), "-dnsserver", pebble_dns]
        with self.pebble_log_path.open("wb") as log:
            self._pebble = subprocess.Popen(
                pebble_cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmp_dir,
                env=self._env(),
            )
        self._wait(deadline, "pebble", self._pebble_ready)

    def _wait(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        """Poll `ready()` until true, a child dies, or the deadline passes."""
        while True:
            for name, proc in (("pebble", self._pebble), ("challtestsrv", self._challtestsrv)):
                if proc is not None and proc.poll() is not None:
                    raise PebbleError(
                        f"{name} exited with status {proc.returncode} during startup\n"
                        + self._log_tails()
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                raise PebbleError(
                    f"{what} not ready after {START_TIMEOUT:.0f}s\n" + self._log_tails()
                )
            time.sleep(_POLL_INTERVAL)

    def _log_tails(self) -> str:
        """Return the tails of both logs for error messages."""
        return (
            f"--- {self.challtestsrv_log_path} ---\n{_tail(self.challtestsrv_log_path)}\n"
            f"--- {self.pebble_log_path} ---\n{_tail(self.pebble_log_path)}"
        )

    def _challtestsrv_ready(self) -> bool:
        """Return True once challtestsrv's management API and DNS TCP listener accept."""
        try:
            urllib.request.urlopen(self.challtestsrv_url + "/", timeout=1).close()
        except urllib.error.HTTPError:
            pass  # any HTTP answer (404 for "/") means it is serving
        except OSError:
            return False
        try:
            socket.create_connection(("127.0.0.1", self.dns_port), timeout=1).close()
        except OSError:
            return False
        return True

    def _pebble_ready(self) -> bool:
        """Return True once the ACME directory and the management API answer over TLS."""
        try:
            for url in (self.directory_url, self.management_url + "/roots/0"):
                with urllib.request.urlopen(url, timeout=1, context=self.ssl_context) as resp:
                    if resp.status != 200:
                        return False
        except OSError:
            return False
        return True

    # -- a wedged Pebble ---------------------------------------------------------------------

    def responsive(self, timeout: float = WEDGE_TIMEOUT) -> bool:
        """True unless Pebble is running but leaves a request that reads its database unanswered.

        Pebble (an in-memory test CA) can deadlock on its own locks under concurrent requests;
        from then on every ACME request that touches its database hangs, while the directory
        still answers. `cert-status-by-serial` takes the same database lock, so it hangs too.
        """
        if self._pebble is None or self._pebble.poll() is not None:
            return True  # not running: nothing to watch (a dead Pebble fails loudly on its own)
        url = f"{self.management_url}/cert-status-by-serial/0"
        try:
            urllib.request.urlopen(url, timeout=timeout, context=self.ssl_context).close()
        except urllib.error.HTTPError:
            return True  # 404: it looked the serial up, so its database lock is free
        except OSError:
            return False
        return True

    def recover(self) -> Path:
        """Replace a wedged Pebble by a fresh one on the same ports; return the kept log.

        SIGQUIT makes a Go program write every goroutine's stack to stderr (our log) and exit:
        the kept log shows where Pebble deadlocked. The new Pebble has a new issuing CA and no
        accounts or orders; the TLS CA of its API (ca_bundle) and every port stay the same.
        """
        assert self._pebble is not None and self._pebble_bin is not None
        self._pebble.send_signal(signal.SIGQUIT)
        try:
            self._pebble.wait(DUMP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._pebble.kill()
            self._pebble.wait(STOP_TIMEOUT)
        kept = self.tmp_dir / f"pebble-wedged-{len(self.wedged_logs) + 1}.log"
        self.pebble_log_path.replace(kept)
        self.wedged_logs.append(kept)
        self._pebble = None
        self._spawn_pebble(self._pebble_bin, time.monotonic() + START_TIMEOUT)
        return kept

    def wedge_summary(self, path: Path) -> str:
        """The goroutines of a kept log that wait on a lock, each by its Pebble frames."""
        try:
            text = path.read_text(errors="replace")
        except OSError as err:
            return f"<{path} unreadable: {err}>"
        lines = []
        for block in re.split(r"\n\n(?=goroutine \d+ )", text)[1:]:
            head = re.match(r"goroutine (\d+) .*?(\[[^\]]*\])", block)
            if head is None or not re.search(r"sync\.\(\*(RW)?Mutex\)|semacquire", block):
                continue
            frames = [
                line.strip().rsplit("(", 1)[0]
                for line in block.splitlines()
                if line and not line.startswith("\t") and "letsencrypt/pebble" in line
            ]
            lines.append(f"  goroutine {head[1]} {head[2]}: " + " <- ".join(frames[:4]))
        return "\n".join(lines) or "  (no goroutine waiting on a lock in the dump)"

    # -- HTTP helpers ------------------------------------------------------------------------

    def _get(self, url: str) -> bytes:
        """GET `url` (trusting ca_bundle) and return the body."""
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT, context=self.ssl_context) as resp:
            body: bytes = resp.read()
            return body

    def _chall_post(self, path: str, payload: dict[str, Any]) -> None:
        """POST JSON to challtestsrv's management API; raise PebbleError unless 200."""
        req = urllib.request.Request(
            self.challtestsrv_url + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=_HTTP_TIMEOUT) as resp:
                if resp.status != 200:
                    raise PebbleError(f"challtestsrv {path} answered {resp.status}")
        except urllib.error.HTTPError as err:
            raise PebbleError(f"challtestsrv {path} answered {err.code}: {err.read()!r}") from err

    # -- challtestsrv DNS --------------------------------------------------------------------

    def add_txt(self, host: str, value: str) -> None:
        """Add a TXT value for `host` (values accumulate until clear_txt)."""
        self._chall_post("/set-txt", {"host": _fqdn(host), "value": value})

    def clear_txt(self, host: str) -> None:
        """Remove all TXT values for `host`."""
        self._chall_post("/clear-txt", {"host": _fqdn(host)})

    def add_a(self, host: str, *ips: str) -> None:
        """Answer A queries for `host` with `ips` instead of the default address."""
        self._chall_post("/add-a", {"host": _fqdn(host), "addresses": list(ips)})

    def clear_a(self, host: str) -> None:
        """Remove the A records of `host` (falls back to the default address)."""
        self._chall_post("/clear-a", {"host": _fqdn(host)})

    def add_aaaa(self, host: str, *ips: str) -> None:
        """Answer AAAA queries for `host` with `ips`."""
        self._chall_post("/add-aaaa", {"host": _fqdn(host), "addresses": list(ips)})

    def clear_aaaa(self, host: str) -> None:
        """Remove the AAAA records of `host`."""
        self._chall_post("/clear-aaaa", {"host": _fqdn(host)})

    def set_default_ipv4(self, ip: str) -> None:
        """Set the A answer for names without their own record ("" disables)."""
        self._chall_post("/set-default-ipv4", {"ip": ip})

    def set_default_ipv6(self, ip: str) -> None:
        """Set the AAAA answer for names without their own record ("" disables)."""
        self._chall_post("/set-default-ipv6", {"ip": ip})

    def set_servfail(self, host: str) -> None:
        """Make every query for `host` answer SERVFAIL."""
        self._chall_post("/set-servfail", {"host": _fqdn(host)})

    def clear_servfail(self, host: str) -> None:
        """Undo set_servfail for `host`."""
        self._chall_post("/clear-servfail", {"host": _fqdn(host)})

    # -- Pebble management API ---------------------------------------------------------------

    def root_pem(self, index: int = 0) -> bytes:
        """Return Pebble's issuing root certificate (PEM), regenerated on every start."""
        return self._get(f"{self.management_url}/roots/{index}")

    def intermediate_pem(self, index: int = 0) -> bytes:
        """Return Pebble's issuing intermediate certificate (PEM)."""
        return self._get(f"{self.management_url}/intermediates/{index}")

    def cert_status(self, serial: str | int) -> dict[str, Any] | None:
        """Return Pebble's {Certificate, Status, Serial, Reason?, RevokedAt?} or None if unknown."""
        if isinstance(serial, int):
            serial_hex = f"{serial:x}"
        else:
            serial_hex = serial.lower().removeprefix("0x").replace(":", "")
        try:
            data: dict[str, Any] = json.loads(
                self._get(f"{self.management_url}/cert-status-by-serial/{serial_hex}")
            )
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise
        return data

    # -- logs --------------------------------------------------------------------------------

    def pebble_log(self) -> str:
        """Return Pebble's combined stdout/stderr so far."""
        try:
            return self.pebble_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def challtestsrv_log(self) -> str:
        """Return challtestsrv's combined stdout/stderr so far."""
        try:
            return self.challtestsrv_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
