"""certctl benchmarks: start-up, `list` over a 1,000-certificate store, one ACME issuance.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/bench.py                 # all scenarios, 11 runs each
    .venv/bin/python benchmarks/bench.py --runs 5 --only list-1000
    .venv/bin/python benchmarks/bench.py --json > bench.json

Every measured run is a fresh `certctl` process. Wall time is taken around
spawn-to-reap; peak RSS is the child's own `ru_maxrss` from `os.wait4`. The
first run(s) of each scenario are warm-ups and are discarded. See README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
STORE_SIZE = 1000
RENEW_COUNT = 50
MIB = 1024 * 1024

EXIT_OK, EXIT_MISSED, EXIT_ERROR = 0, 1, 2


class BenchError(RuntimeError):
    """A run or a setup step failed; the message carries the evidence (stderr)."""


# ---- one measured process ---------------------------------------------------------------


@dataclass
class RunResult:
    """One finished certctl process."""

    wall: float  # seconds, spawn to reap
    max_rss: int  # bytes, the child's own peak resident set
    cpu: float  # seconds of user + system CPU of the child (robust to a busy machine)
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


def run_process(argv: list[str], env: dict[str, str], timeout: float) -> RunResult:
    """Spawn `argv`, reap it with wait4 and return wall time, peak RSS and its output.

    Output goes to anonymous temp files (not pipes) so a big `list` never blocks on a
    full pipe and nothing but the child is being timed.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        killed = threading.Event()
        reaped = threading.Event()
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)

        def kill() -> None:
            if not reaped.is_set():
                killed.set()
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, 9)

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            reaped.set()
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen quiet
        out.seek(0)
        err.seek(0)
        # ru_maxrss is KiB on Linux, bytes on macOS.
        rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
        cpu = usage.ru_utime + usage.ru_stime
        return RunResult(wall, rss, cpu, proc.returncode, out.read(), err.read(), killed.is_set())


def _tail(data: bytes, lines: int = 30) -> str:
    text = data.decode("utf-8", "replace").rstrip()
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


# ---- scenarios --------------------------------------------------------------------------


@dataclass
class Scenario:
    """A named benchmark: how to build each run's command, and how to check its result."""

    name: str
    target: float  # seconds; the median must not exceed it
    description: str
    needs: tuple[str, ...] = ()  # "store" and/or "pebble"
    timeout: float = 60.0


SCENARIOS = [
    Scenario("version", 0.080, "certctl --version (interpreter + CLI start-up)"),
    Scenario("list-1000", 0.200, "certctl list, 1,000 certificates, table", ("store",)),
    Scenario("list-1000-json", 0.200, "certctl list --json, 1,000 certificates", ("store",)),
    Scenario(
        "renew-due-10000",
        1.000,
        "certctl renew-due, 10,000 certificates, nothing due (silent)",
        ("store-10000",),
    ),
    Scenario(
        "renew-50-parallel-1",
        float("inf"),
        "renew-due renewing 50 due certificates, --parallel 1 (Pebble validating in 0 or 1 s)",
        ("renew-store",),
        timeout=600.0,
    ),
    Scenario(
        "renew-50-parallel-8",
        float("inf"),
        "the same with --parallel 8; must be >= 4x faster than --parallel 1",
        ("renew-store",),
        timeout=600.0,
    ),
    Scenario(
        "issue-standalone",
        0.500,
        "certctl obtain --standalone against local Pebble (one new name)",
        ("pebble",),
        timeout=150.0,
    ),
]
BY_NAME = {s.name: s for s in SCENARIOS}


@dataclass
class Outcome:
    """Measurements of one scenario."""

    scenario: Scenario
    times: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    error: str | None = None  # setup failed or the scenario was aborted

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures and bool(self.times)

    @property
    def passed(self) -> bool:
        return self.ok and statistics.median(self.times) <= self.scenario.target

    def to_json(self) -> dict[str, Any]:
        s = self.scenario
        doc: dict[str, Any] = {
            "name": s.name,
            "description": s.description,
            "target_s": s.target if s.target != float("inf") else None,
            "runs": len(self.times),
            "passed": self.passed,
            "error": self.error,
            "failed_runs": len(self.failures),
            "failures": self.failures,
        }
        if self.times:
            doc.update(
                median_s=statistics.median(self.times),
                min_s=min(self.times),
                max_s=max(self.times),
                mean_s=statistics.fmean(self.times),
                stdev_s=statistics.stdev(self.times) if len(self.times) > 1 else 0.0,
                times_s=self.times,
                peak_rss_mib=max(self.rss) / MIB,
                median_rss_mib=statistics.median(self.rss) / MIB,
                median_cpu_s=statistics.median(self.cpu),
                cpu_s=self.cpu,
                rss_mib=[r / MIB for r in self.rss],
            )
        return doc


# ---- the 1,000-certificate store ----------------------------------------------------------

ISSUERS_ACME = ["R10", "R11", "E5", "E6"]
ISSUERS_UPLOAD = [
    "Sectigo RSA Domain Validation Secure Server CA",
    "DigiCert Global G2 TLS RSA SHA256 2020 CA1",
    "GlobalSign GCC R6 AlphaSSL CA 2023",
    "ZeroSSL ECC Domain Secure Site CA",
]
WORDS = ["shop", "api", "mail", "blog", "app", "cdn", "static", "auth", "status", "docs"]
# State the record is built to have → share of the store (the rest are "valid").
STATE_MIX = {"due": 0.08, "expiring": 0.07, "expired": 0.05, "pending": 0.03, "failed": 0.02}


def _templates() -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """One EC P-256 key (PEM) and a few self-signed (cert, chain) PEM pairs reused by all."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    now = datetime.now(UTC)
    pairs = []
    for sans in (
        ["bench.example.com"],
        ["bench.example.com", "www.bench.example.com"],
        [f"{w}.bench.example.com" for w in WORDS[:5]],
        ["*.bench.example.com", "bench.example.com"],
    ):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=89))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        pairs.append((cert_pem, cert_pem))  # chain: the self-signed cert stands in for an R1x
    return key_pem, pairs


def _domains(rng: random.Random, index: int) -> tuple[str, list[str]]:
    """A certificate name and its domains: single, www+apex, multi-SAN or wildcard."""
    base = f"{rng.choice(WORDS)}-{index:04d}.example.com"
    shape = rng.random()
    if shape < 0.55:
        return base, [base]
    if shape < 0.80:
        return base, [base, f"www.{base}"]
    if shape < 0.92:
        return base, [base, *(f"{w}.{base}" for w in rng.sample(WORDS, rng.randint(2, 8)))]
    return f"wildcard.{base}", [f"*.{base}", base]


def _record(
    rng: random.Random, index: int, now: datetime, mix: dict[str, float]
) -> tuple[Any, str]:
    """A CertRecord (without `current`) and the state it is built to have."""
    from certctl.models import SOURCE_ACME, SOURCE_UPLOAD, CertRecord, Validation

    name, domains = _domains(rng, index)
    wildcard = domains[0].startswith("*.")
    roll = rng.random()
    wanted = "valid"
    for state, share in mix.items():
        if roll < share:
            wanted = state
            break
        roll -= share

    upload = wanted == "expiring" or (wanted in ("valid", "expired") and rng.random() < 0.3)
    if upload:
        validation = Validation()
    elif wildcard:
        validation = Validation(challenge="dns", method=rng.choice(["rfc2136", "hook"]))
    elif wanted in ("due", "failed", "pending"):
        validation = Validation(
            challenge="http",
            method=rng.choice(["standalone", "webroot"]),
            http_port=None,
        )
    else:
        method = rng.choices(["standalone", "webroot", "manual"], weights=[4, 5, 1])[0]
        validation = Validation(challenge="http", method=method)
    if validation.method == "webroot":
        validation.webroot = f"/var/www/{name}"
    if validation.method == "standalone":
        validation.http_port = rng.choice([80, 8080, 8402])
    profile = None
    if not upload and rng.random() < 0.1:
        profile = "shortlived"
    record = CertRecord(
        name=name,
        domains=domains,
        source=SOURCE_UPLOAD if upload else SOURCE_ACME,
        key_type=rng.choice(["ec256", "ec256", "ec256", "ec384", "rsa2048"]),
        server=None if upload else "https://acme-v02.api.letsencrypt.org/directory",
        profile=profile,
        validation=validation,
        deploy_hook=rng.choice([None, None, "systemctl reload nginx", "systemctl reload haproxy"]),
        created=now - timedelta(days=rng.uniform(1, 900)),
    )
    return record, wanted


def _dates(
    rng: random.Random, record: Any, wanted: str, now: datetime
) -> tuple[datetime, datetime]:
    """not_before/not_after putting `record` in state `wanted` at `now` (14-day notices)."""
    if record.source == "upload":
        lifetime = timedelta(days=rng.choice([90, 365, 397]))
    else:
        lifetime = timedelta(days=6) if record.profile == "shortlived" else timedelta(days=90)
    third = lifetime / 3 if lifetime >= timedelta(days=10) else lifetime / 2
    window = min(timedelta(days=14), lifetime / 3)
    if wanted == "expired":
        left = -timedelta(days=rng.uniform(0.5, 60))
    elif wanted == "due":  # automatic, past the renewal point
        left = third * rng.uniform(0.2, 0.9)
    elif wanted in ("expiring", "failed"):  # inside the notice window
        left = window * rng.uniform(0.1, 0.9)
    else:  # valid (and renewals in progress): before the renewal point / notice window
        floor = max(third, window) + timedelta(hours=6)
        left = floor + (lifetime - floor) * rng.uniform(0.0, 0.95)
    not_after = (now + left).replace(microsecond=0)
    return not_after - lifetime, not_after


def build_store(
    root: Path,
    count: int = STORE_SIZE,
    seed: int = 20250,
    mix: dict[str, float] | None = None,
) -> dict[str, int]:
    """Fill a new store at `root` with `count` certificates through certctl's Store API.

    Returns how many records were built for each intended state. fsync is stubbed out
    while building (a throwaway store needs no durability; it is ~10 fsyncs a
    certificate); what `list` later reads is byte-for-byte what certctl writes.
    """
    from certctl.models import Challenge, Current, OrderState
    from certctl.store import Store

    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    key_pem, pairs = _templates()
    store = Store(root)
    built: dict[str, int] = {}
    with mock.patch("os.fsync", lambda fd: None):
        store.ensure()
        for index in range(count):
            record, wanted = _record(rng, index, now, STATE_MIX if mix is None else mix)
            built[wanted] = built.get(wanted, 0) + 1
            server = record.server or ""
            if wanted == "pending" and rng.random() < 0.5:
                # A first order still waiting for its challenge: no certificate yet.
                record.order = _order(rng, record, now, Challenge, OrderState, server)
                store.write_pending_key(record.name, key_pem)
                store.write(record)
                continue
            cert_pem, chain_pem = rng.choice(pairs)
            versions = 1 if wanted == "pending" else rng.choice([1, 1, 2, 3])
            for _ in range(versions):
                version = store.add_version(
                    record.name, cert=cert_pem, chain=chain_pem, key=key_pem
                )
            store.switch_live(record.name, version)
            not_before, not_after = _dates(rng, record, wanted, now)
            upload = record.source == "upload"
            bits = 128 if upload else 144  # 16-byte commercial / 18-byte Let's Encrypt serials
            record.current = Current(
                version=version,
                serial=format(rng.getrandbits(bits) | 1 << (bits - 4), "x"),
                not_before=not_before,
                not_after=not_after,
                issuer=rng.choice(ISSUERS_UPLOAD if upload else ISSUERS_ACME),
                fingerprint=rng.randbytes(32).hex(":").upper(),
                names=list(record.domains),
            )
            if wanted == "pending":  # renewal order in progress
                record.order = _order(rng, record, now, Challenge, OrderState, server)
                store.write_pending_key(record.name, key_pem)
            if wanted == "failed":
                record.renewal = {
                    "failures": rng.randint(1, 4),
                    "last_attempt": now - timedelta(hours=rng.uniform(1, 20)),
                    "last_error": "the CA refused: urn:ietf:params:acme:error:connection",
                }
            if wanted in ("expiring", "expired"):
                record.notices = {"last_sent": now - timedelta(hours=rng.uniform(1, 30))}
            if record.source != "upload":  # as after an earlier run: ARI checked recently
                record.renewal["ari_next_check"] = now + timedelta(hours=rng.uniform(1, 6))
            store.write(record)
    return built


def _order(
    rng: random.Random, record: Any, now: datetime, challenge_cls: Any, order_cls: Any, server: str
) -> Any:
    base = server.removesuffix("/directory") or "https://acme.example"
    order_id = rng.getrandbits(48)
    challenges = []
    for domain in record.domains:
        authz = rng.getrandbits(48)
        token = rng.randbytes(32).hex()
        dns = record.validation.challenge == "dns"
        challenges.append(
            challenge_cls(
                domain=domain,
                authz_url=f"{base}/acme/authz/{authz}",
                url=f"{base}/acme/chall/{authz}/{rng.getrandbits(24)}",
                type="dns-01" if dns else "http-01",
                token=token,
                validation=rng.randbytes(32).hex() if dns else f"{token}.{rng.randbytes(16).hex()}",
            )
        )
    return order_cls(
        url=f"{base}/acme/order/{order_id}",
        status="pending",
        finalize_url=f"{base}/acme/finalize/{order_id}",
        expires=now + timedelta(days=6),
        challenges=challenges,
        created=now - timedelta(hours=rng.uniform(1, 48)),
        profile=record.profile,
    )


# ---- the benchmark driver -----------------------------------------------------------------


def certctl_executable(explicit: str | None) -> str:
    """The console script of the interpreter running this file (the venv's)."""
    candidates = [explicit] if explicit else []
    candidates += [
        str(Path(sys.executable).parent / "certctl"),
        str(ROOT / ".venv" / "bin" / "certctl"),
        shutil.which("certctl"),
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("bench: no certctl executable found; pass --certctl PATH")


def base_env(config: Path, pycache: Path | None) -> dict[str, str]:
    """Our environment minus anything that would change certctl's behaviour.

    With `pycache`, children cache bytecode under that prefix (PYTHONDONTWRITEBYTECODE
    dropped): the warm-up compiles, timed runs load .pyc files as an installed certctl
    would, and nothing is written into the source tree.
    """
    drop = ("CERTCTL_", "PYTHONPROFILEIMPORTTIME", "PYTHONDEVMODE", "PYTHONTRACEMALLOC")
    if pycache is not None:
        drop += ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(NO_COLOR="1", CERTCTL_CONFIG=str(config))
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


class Bench:
    """Sets up what the chosen scenarios need, runs them, and collects Outcomes."""

    def __init__(self, args: argparse.Namespace, work: Path, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.work = work
        self.stack = stack
        self.certctl = certctl_executable(args.certctl)
        self.config = work / "empty-config.toml"
        self.config.write_text("")
        self.env = base_env(self.config, None if args.inherit_bytecode else work / "pycache")
        self.store_root = work / "store-1000"
        self.issue_store = work / "issue-store"
        self.pebble: Any = None
        self.slow_pebble: Any = None
        self.big_store = work / "store-10000"
        self.renew_store = work / "renew-store"
        self._setup_errors: dict[str, str] = {}
        self._counter = 0

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # -- setup --------------------------------------------------------------------------------

    def setup(self, need: str) -> None:
        """Build the store / start Pebble once; remember a failure for later scenarios."""
        if need in self._setup_errors:
            raise BenchError(self._setup_errors[need])
        try:
            if need == "store" and not self.store_root.exists():
                started = time.perf_counter()
                built = build_store(self.store_root)
                mix = ", ".join(f"{k} {v}" for k, v in sorted(built.items()))
                self.log(
                    f"built a {STORE_SIZE}-certificate store in"
                    f" {time.perf_counter() - started:.1f} s ({mix})"
                )
                self._check_store()
            elif need == "store-10000" and not self.big_store.exists():
                started = time.perf_counter()
                build_store(self.big_store, count=10_000, seed=10_000, mix={})
                self.log(
                    f"built a 10,000-certificate store (nothing due) in"
                    f" {time.perf_counter() - started:.1f} s"
                )
            elif need == "pebble" and self.pebble is None:
                self.pebble = self._start_pebble()
            elif need == "renew-store" and self.slow_pebble is None:
                self.slow_pebble = self._start_pebble(slow=True)
                self._build_renew_store()
        except BenchError as e:
            self._setup_errors[need] = str(e)
            raise
        except Exception as e:
            self._setup_errors[need] = f"{need} setup failed: {type(e).__name__}: {e}"
            raise BenchError(self._setup_errors[need]) from e

    def _check_store(self) -> None:
        """`list --json` must see all the certificates, in the intended mix of states."""
        result = run_process(
            [self.certctl, "list", "--json"], self.list_env(), BY_NAME["list-1000"].timeout
        )
        if result.returncode != 0:
            raise BenchError(
                f"certctl list --json on the built store exited {result.returncode}:\n"
                + _tail(result.stderr)
            )
        entries = json.loads(result.stdout)["certificates"]
        states: dict[str, int] = {}
        for entry in entries:
            states[entry["state"]] = states.get(entry["state"], 0) + 1
        if len(entries) != STORE_SIZE or "damaged" in states:
            raise BenchError(f"built store lists {len(entries)} certificates: {states}")
        self.log("certctl list sees: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))

    def _start_pebble(self, slow: bool = False) -> Any:
        sys.path.insert(0, str(ROOT / "tests"))
        from pebble import PebbleServer  # tests/pebble.py

        started = time.perf_counter()
        if slow:
            # a CA that takes 0 or 1 s to validate (Pebble sleeps rand.Intn(N) seconds), like a
            # real one over the network: renewals then wait on the CA, not on the CPU
            server = PebbleServer(
                self.work / "pebble-slow",
                nonce_reject=0,
                va_nosleep=False,
                extra_env={"PEBBLE_VA_SLEEPTIME": "2"},
            )
        else:
            server = PebbleServer(self.work / "pebble", nonce_reject=0, va_nosleep=True)
        self.stack.enter_context(server)
        self.log(
            f"Pebble up in {time.perf_counter() - started:.1f} s at {server.directory_url}"
            f" (HTTP-01 port {server.http_port}, DNS {server.dns_address})"
        )
        return server

    # -- per-run commands -----------------------------------------------------------------

    def _build_renew_store(self) -> None:
        """50 certificates issued by the slow Pebble, all made due by renew_before."""
        env = self.renew_env()
        started = time.perf_counter()
        for index in range(RENEW_COUNT):
            domain = f"renew-{index:02d}-{os.urandom(3).hex()}.example.com"
            argv = [self.certctl, "obtain", "-d", domain, "--standalone"]
            argv += ["--http-port", str(self.slow_pebble.http_port), "--agree-tos"]
            argv += ["--timeout", "60"]
            _check(argv, run_process(argv, env, 120), lambda result: None)
            argv = [self.certctl, "set", domain, "--renew-before", "1000"]
            _check(argv, run_process(argv, env, 60), lambda result: None)
        self.log(
            f"issued {RENEW_COUNT} certificates for the renewal scenarios in"
            f" {time.perf_counter() - started:.1f} s"
        )

    def renew_env(self) -> dict[str, str]:
        p = self.slow_pebble
        return {
            **self.env,
            "CERTCTL_STORE": str(self.renew_store),
            "CERTCTL_SERVER": p.directory_url,
            "CERTCTL_CA_BUNDLE": str(p.ca_bundle),
            "CERTCTL_RESOLVER": p.dns_address,
            "CERTCTL_CHECK_HTTP_PORT": str(p.http_port),
        }

    def list_env(self) -> dict[str, str]:
        return {**self.env, "CERTCTL_STORE": str(self.store_root)}

    def issue_env(self) -> dict[str, str]:
        p = self.pebble
        return {
            **self.env,
            "CERTCTL_STORE": str(self.issue_store),
            "CERTCTL_SERVER": p.directory_url,
            "CERTCTL_CA_BUNDLE": str(p.ca_bundle),
            "CERTCTL_RESOLVER": p.dns_address,
            "CERTCTL_CHECK_HTTP_PORT": str(p.http_port),
        }

    def command(self, scenario: Scenario) -> tuple[list[str], dict[str, str], Callable[..., None]]:
        """argv, env and a result check for the next run of `scenario`."""
        exe = self.certctl
        if scenario.name == "version":
            return [exe, "--version"], self.env, _expect_stdout(b"certctl, version")
        if scenario.name == "list-1000":
            return [exe, "list"], self.list_env(), _expect_stdout(b"NAME")
        if scenario.name == "list-1000-json":
            return [exe, "list", "--json"], self.list_env(), _expect_json_count(STORE_SIZE)
        if scenario.name == "renew-due-10000":
            env = {**self.env, "CERTCTL_STORE": str(self.big_store)}
            return [exe, "renew-due"], env, _expect_silent
        if scenario.name.startswith("renew-50-parallel-"):
            parallel = scenario.name.rsplit("-", 1)[1]
            argv = [exe, "renew-due", "--json", "--parallel", parallel]
            return argv, self.renew_env(), _expect_renewed(RENEW_COUNT)
        if scenario.name == "issue-standalone":
            self._counter += 1
            domain = f"bench-{os.getpid()}-{self._counter}-{os.urandom(3).hex()}.example.com"
            argv = [exe, "obtain", "-d", domain, "--standalone"]
            argv += ["--http-port", str(self.pebble.http_port), "--agree-tos"]
            return argv, self.issue_env(), self._expect_issued(domain)
        raise AssertionError(scenario.name)

    def _expect_issued(self, domain: str) -> Callable[[RunResult], None]:
        def check(result: RunResult) -> None:
            from certctl.store import Store

            record = Store(self.issue_store).read(domain)
            if record.current is None or record.current.names != [domain]:
                raise BenchError(f"obtain exited 0 but {domain} has no live certificate")

        return check

    # -- running ----------------------------------------------------------------------------

    def run_scenario(self, scenario: Scenario) -> Outcome:
        outcome = Outcome(scenario)
        try:
            for need in scenario.needs:
                self.setup(need)
        except BenchError as e:
            outcome.error = str(e)
            return outcome
        # The issuance warm-up also registers the ACME account, so it is never timed.
        warmup = max(self.args.warmup, 1) if "pebble" in scenario.needs else self.args.warmup
        total = warmup + self.args.runs
        for index in range(total):
            timed = index >= warmup
            label = f"run {index - warmup + 1}/{self.args.runs}" if timed else "warm-up"
            argv, env, check = self.command(scenario)
            result = run_process(argv, env, scenario.timeout)
            try:
                _check(argv, result, check)
            except BenchError as e:
                message = f"{scenario.name} {label}: {e}"
                if not self.args.keep_going or not timed:
                    outcome.error = message  # a failed warm-up leaves nothing to measure
                    return outcome
                self.log(message)
                outcome.failures.append(message)
                continue
            if timed:
                outcome.times.append(result.wall)
                outcome.rss.append(result.max_rss)
                outcome.cpu.append(result.cpu)
            if self.args.verbose:
                self.log(
                    f"  {scenario.name} {label}: {result.wall * 1000:.1f} ms"
                    f" (CPU {result.cpu * 1000:.1f} ms), {result.max_rss / MIB:.1f} MiB"
                )
        if outcome.times:
            self.log(
                f"{scenario.name}: median {_ms(statistics.median(outcome.times))}"
                f" over {len(outcome.times)} runs"
            )
        return outcome


def _check(argv: list[str], result: RunResult, check: Callable[[RunResult], None]) -> None:
    if result.timed_out:
        raise BenchError(f"timed out: {' '.join(argv)}\n{_tail(result.stderr)}")
    if result.returncode != 0:
        raise BenchError(
            f"`{' '.join(argv)}` exited {result.returncode}; stderr:\n{_tail(result.stderr)}"
        )
    try:
        check(result)
    except BenchError:
        raise
    except Exception as e:
        raise BenchError(f"unexpected result of `{' '.join(argv)}`: {type(e).__name__}: {e}") from e


def _expect_silent(result: RunResult) -> None:
    if result.stdout or result.stderr:
        raise BenchError(f"expected no output, got: {_tail(result.stdout + result.stderr)}")


def _expect_renewed(count: int) -> Callable[[RunResult], None]:
    def check(result: RunResult) -> None:
        entries = json.loads(result.stdout)["certificates"]
        renewed = [e for e in entries if e["action"] == "renewed"]
        if len(renewed) != count:
            raise BenchError(f"expected {count} renewals, got {len(renewed)}: {entries[:3]}")

    return check


def _expect_stdout(needle: bytes) -> Callable[[RunResult], None]:
    def check(result: RunResult) -> None:
        if needle not in result.stdout:
            raise BenchError(f"stdout lacks {needle!r}: {_tail(result.stdout, 5)}")

    return check


def _expect_json_count(count: int) -> Callable[[RunResult], None]:
    def check(result: RunResult) -> None:
        listed = len(json.loads(result.stdout)["certificates"])
        if listed != count:
            raise BenchError(f"list --json returned {listed} certificates, expected {count}")

    return check


# ---- reporting ----------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def table(outcomes: list[Outcome]) -> str:
    header = ["scenario", "median", "min", "max", "CPU", "peak RSS MiB", "target", "result"]
    rows = [header]
    for o in outcomes:
        if o.times:
            stats = [_ms(statistics.median(o.times)), _ms(min(o.times)), _ms(max(o.times))]
            stats.append(_ms(statistics.median(o.cpu)))
            rss = f"{max(o.rss) / MIB:.1f}"
        else:
            stats, rss = ["-", "-", "-", "-"], "-"
        verdict = "PASS" if o.passed else "FAIL"
        if o.error or o.failures:
            verdict += " (error)"
        target = o.scenario.target
        limit = f"≤ {_ms(target)}" if target != float("inf") else "see ratio"
        rows.append([o.scenario.name, *stats, rss, limit, verdict])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {1, 2, 3, 4, 5, 6}
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    errors = [o.error or o.failures[0] for o in outcomes if o.error or o.failures]
    return "\n".join(lines + [f"\nerror: {e}" for e in errors])


def git_state() -> str | None:
    """The commit measured, with "-dirty" when the working tree has changes."""
    try:
        result = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def json_document(
    args: argparse.Namespace, certctl: str, outcomes: list[Outcome]
) -> dict[str, Any]:
    from certctl import __version__

    return {
        "certctl_version": __version__,
        "certctl": certctl,
        "git": git_state(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "warmup": args.warmup,
        "store_size": STORE_SIZE,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "passed": all(o.passed for o in outcomes),
        "scenarios": [o.to_json() for o in outcomes],
    }


# ---- command line -------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description="Benchmark certctl: median wall time and peak RSS of fresh processes.",
        epilog="Scenarios: "
        + ", ".join(
            f"{s.name} (≤ {_ms(s.target)})" if s.target != float("inf") else s.name
            for s in SCENARIOS
        )
        + ". Exit status: 0 all targets met, 1 a target missed, 2 a run or setup failed.",
    )
    parser.add_argument("--runs", type=int, default=11, help="timed runs per scenario (11)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded runs first (1)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this scenario (repeatable or comma-separated)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="record a failing run and go on instead of aborting the benchmark",
    )
    parser.add_argument("--certctl", help="certctl executable (default: next to this Python)")
    parser.add_argument(
        "--inherit-bytecode",
        action="store_true",
        help="pass PYTHONDONTWRITEBYTECODE/PYTHONPYCACHEPREFIX through (default: children"
        " cache bytecode in a temp prefix, so timed runs never compile source)",
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the work directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every run")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be ≥ 1 and --warmup ≥ 0")
    names = [n.strip() for item in args.only or [] for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    args.scenarios = [s for s in SCENARIOS if not names or s.name in names]
    return args


@contextlib.contextmanager
def work_dir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="certctl-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"work directory kept: {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    outcomes: list[Outcome] = []
    with work_dir(args.keep_temp) as work, contextlib.ExitStack() as stack:
        bench = Bench(args, work, stack)
        for scenario in args.scenarios:
            outcome = bench.run_scenario(scenario)
            outcomes.append(outcome)
            if outcome.error and not args.keep_going:
                print(f"bench: aborted: {outcome.error}", file=sys.stderr)
                break
        certctl = bench.certctl
    if any(o.error or o.failures for o in outcomes):
        status = EXIT_ERROR
    elif not all(o.passed for o in outcomes):
        status = EXIT_MISSED
    else:
        status = EXIT_OK
    ratio = parallel_speedup(outcomes)
    if ratio is not None and ratio < 4 and status == EXIT_OK:
        status = EXIT_MISSED
    if args.json:
        document = json_document(args, certctl, outcomes)
        document["parallel_speedup"] = ratio
        print(json.dumps(document, indent=2))
    elif outcomes:
        print(table(outcomes))
        if ratio is not None:
            verdict = "PASS" if ratio >= 4 else "FAIL"
            print(f"renew-due --parallel 8 vs 1: {ratio:.1f}x faster (target >= 4x) {verdict}")
    return status


def parallel_speedup(outcomes: list[Outcome]) -> float | None:
    """Median --parallel 1 time over median --parallel 8 time, when both ran."""
    by_name = {o.scenario.name: o for o in outcomes if o.times}
    one, eight = by_name.get("renew-50-parallel-1"), by_name.get("renew-50-parallel-8")
    if one is None or eight is None:
        return None
    return statistics.median(one.times) / statistics.median(eight.times)


if __name__ == "__main__":
    sys.exit(main())
