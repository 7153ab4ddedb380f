"""The benchmark scenarios, and Bench: their setup, per-run commands and result checks."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storebuilder import STORE_SIZE, build_store
from timing import (
    MIB,
    ROOT,
    BenchError,
    Outcome,
    RunResult,
    Scenario,
    base_env,
    certctl_executable,
    ms,
    run_process,
    tail,
)

RENEW_COUNT = 50


SCENARIOS = [
    Scenario("version", 0.080, "certctl --version (interpreter + CLI start-up)"),
    Scenario("list-1000", 0.200, "certctl list, 1,000 certificates, table", ("store",)),
    Scenario("list-1000-json", 0.200, "certctl list --json, 1,000 certificates", ("store",)),
    Scenario(
        "renew-due-10000",
        0.500,  # issue 17
        "certctl renew-due, 10,000 certificates, nothing due (silent)",
        ("store-10000",),
    ),
    Scenario(
        "list-10000",
        float("inf"),
        "certctl list --json, 10,000 certificates, directory store",
        ("store-10000",),
    ),
    Scenario(
        "list-10000-pg",
        float("inf"),
        "the same on a PostgreSQL store (local server); must be within 2x of list-10000",
        ("pg-store-10000",),
    ),
    Scenario(
        "renew-due-10000-pg",
        float("inf"),
        "renew-due, 10,000 certificates, nothing due, PostgreSQL; within 2x of renew-due-10000",
        ("pg-store-10000",),
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


# ---- the benchmark driver -----------------------------------------------------------------


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
        self.postgres: Any = None
        self.pg_url = ""
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
            elif need == "pg-store-10000" and self.postgres is None:
                self._build_pg_store()
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
                + tail(result.stderr)
            )
        entries = json.loads(result.stdout)["certificates"]
        states: dict[str, int] = {}
        for entry in entries:
            states[entry["state"]] = states.get(entry["state"], 0) + 1
        if len(entries) != STORE_SIZE or "damaged" in states:
            raise BenchError(f"built store lists {len(entries)} certificates: {states}")
        self.log("certctl list sees: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))

    def _build_pg_store(self) -> None:
        """A real PostgreSQL (tests/postgres.py) holding the same 10,000 certificates."""
        sys.path.insert(0, str(ROOT / "tests"))
        from postgres import PostgresServer, require_postgres  # tests/postgres.py

        started = time.perf_counter()
        self.postgres = self.stack.enter_context(PostgresServer(require_postgres()))
        self.pg_url = self.postgres.create_database("bench")
        self.pg_key = self.work / "store.key"
        from certctl.store.sealing import generate_key_file

        generate_key_file(self.pg_key)
        os.environ["PGPASSFILE"] = str(self.postgres.passfile)  # for the builder's connection
        build_store(self.pg_url, count=10_000, seed=10_000, mix={}, key_file=self.pg_key)
        self.log(
            f"PostgreSQL up and a 10,000-certificate store built in it in"
            f" {time.perf_counter() - started:.1f} s"
        )

    def pg_env(self) -> dict[str, str]:
        return {
            **self.env,
            "CERTCTL_STORE": self.pg_url,
            "CERTCTL_STORE_KEY_FILE": str(self.pg_key),
            "PGPASSFILE": str(self.postgres.passfile),
        }

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
            _due_forever(self.renew_store, domain)
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
        if scenario.name == "list-10000":
            env = {**self.env, "CERTCTL_STORE": str(self.big_store)}
            return [exe, "list", "--json"], env, _expect_json_count(10_000)
        if scenario.name == "list-10000-pg":
            return [exe, "list", "--json"], self.pg_env(), _expect_json_count(10_000)
        if scenario.name == "renew-due-10000-pg":
            return [exe, "renew-due"], self.pg_env(), _expect_silent
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
                f"{scenario.name}: median {ms(statistics.median(outcome.times))}"
                f" over {len(outcome.times)} runs"
            )
        return outcome


def _check(argv: list[str], result: RunResult, check: Callable[[RunResult], None]) -> None:
    if result.timed_out:
        raise BenchError(f"timed out: {' '.join(argv)}\n{tail(result.stderr)}")
    if result.returncode != 0:
        raise BenchError(
            f"`{' '.join(argv)}` exited {result.returncode}; stderr:\n{tail(result.stderr)}"
        )
    try:
        check(result)
    except BenchError:
        raise
    except Exception as e:
        raise BenchError(f"unexpected result of `{' '.join(argv)}`: {type(e).__name__}: {e}") from e


def _expect_silent(result: RunResult) -> None:
    if result.stdout or result.stderr:
        raise BenchError(f"expected no output, got: {tail(result.stdout + result.stderr)}")


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
            raise BenchError(f"stdout lacks {needle!r}: {tail(result.stdout, 5)}")

    return check


def _expect_json_count(count: int) -> Callable[[RunResult], None]:
    def check(result: RunResult) -> None:
        listed = len(json.loads(result.stdout)["certificates"])
        if listed != count:
            raise BenchError(f"list --json returned {listed} certificates, expected {count}")

    return check


def _due_forever(store_root: Path, name: str) -> None:
    """renew_before beyond any lifetime: due in every run (each run renews all 50 again).

    Written to the store directly: `certctl set` refuses a renewal point that makes
    every new certificate due at once, which is exactly what this scenario wants.
    """
    from certctl.store import Store

    store = Store(store_root)
    with store.lock(name):
        record = store.read(name)
        record.renew_before_days = 1000.0
        store.write(record)
