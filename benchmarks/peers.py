"""Peers mode: certctl against certbot and lego, on the same Pebble, in the same run.

Nothing is installed here: a peer is measured when its executable is on PATH (Debian's
`certbot` and `lego` packages), and skipped with a note otherwise. Every peer is pointed
at the benchmark's own Pebble (`--server`, its CA trusted through REQUESTS_CA_BUNDLE /
LEGO_CA_CERTIFICATES) and answers HTTP-01 standalone on Pebble's HTTP-01 port: no public
CA is ever contacted. Runs alternate between the tools (certctl, certbot, lego, certctl,
...), so a machine that slows down mid-run slows every tool alike; the ratios are of the
medians of the same run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timing import MIB, BenchError, RunResult, run_process, tail

PEERS = ("certbot", "lego")
INSTALL_HINT = "apt-get install certbot lego"

# (task, tool measured, tool compared with, the least speed-up asked for): issue 17
TARGETS = (
    ("obtain", "certctl", "certbot", 10.0),
    ("order+verify+issue", "certctl", "certbot", 5.0),
    ("list-1000", "certctl", "lego", 1 / 1.5),
    ("list-1000-json", "certctl", "lego", 1 / 1.5),
)


PEER_TASK = {"order+verify+issue": "obtain", "list-1000-json": "list-1000"}


@dataclass
class Step:
    """One process of a task's run: argv, environment, and a check of its result."""

    argv: list[str]
    env: dict[str, str]
    check: Callable[[RunResult], None] = lambda result: None


@dataclass
class Measured:
    """One tool's runs of one task (a run may be several processes: wall summed)."""

    task: str
    tool: str
    command: str
    times: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "tool": self.tool,
            "command": self.command,
            "median_s": self.median,
            "times_s": self.times,
            "peak_rss_mib": max(self.rss) / MIB if self.rss else None,
            "error": self.error,
        }


class Peers:
    """Builds the peers' stores, runs every task alternating between the tools."""

    def __init__(self, bench: Any, runs: int, warmup: int) -> None:
        self.bench = bench
        self.runs = runs
        self.warmup = max(warmup, 1)  # registers every tool's ACME account untimed
        self.work: Path = bench.work / "peers"
        self.found = {name: shutil.which(name) for name in PEERS}
        self.notes = [
            f"{name}: not on PATH, skipped ({INSTALL_HINT} to compare with it)"
            for name, path in self.found.items()
            if path is None
        ]
        self._counter = 0

    # -- the peers' stores --------------------------------------------------------------

    def _domain(self, tool: str) -> str:
        self._counter += 1
        return f"{tool}-{os.getpid()}-{self._counter}-{os.urandom(3).hex()}.example.com"

    def build_list_stores(self) -> int:
        """The certificates of certctl's 1,000-certificate store, in lego's and certbot's
        layouts (the same PEM files), so every `list` reads the same certificates."""
        from certctl.store import Store

        store = Store(self.bench.store_root)
        lego_certs = self.work / "lego-list" / "certificates"
        certbot = self.work / "certbot-list"
        lego_certs.mkdir(parents=True)
        for part in ("live", "archive", "renewal"):
            (certbot / part).mkdir(parents=True, exist_ok=True)
        count = 0
        for name in store.names():
            paths = store.live_paths(name)
            files = paths.as_dict() if paths is not None else {}
            if not files or not os.path.exists(files["cert"]):
                continue  # a first order still pending: no certificate to list
            count += 1
            shutil.copyfile(files["cert"], lego_certs / f"{name}.crt")
            shutil.copyfile(files["privkey"], lego_certs / f"{name}.key")
            archive, live = certbot / "archive" / name, certbot / "live" / name
            archive.mkdir()
            live.mkdir()
            for kind in ("cert", "chain", "fullchain", "privkey"):
                shutil.copyfile(files[kind], archive / f"{kind}1.pem")
                os.symlink(f"../../archive/{name}/{kind}1.pem", live / f"{kind}.pem")
            (certbot / "renewal" / f"{name}.conf").write_text(
                f"version = 2.1.0\narchive_dir = {archive}\n"
                + "".join(f"{k} = {live / f'{k}.pem'}\n" for k in ("cert", "privkey", "chain"))
                + f"fullchain = {live / 'fullchain.pem'}\n\n[renewalparams]\n"
                "authenticator = standalone\nserver = https://127.0.0.1:14000/dir\n"
            )
        return count

    def _certbot(self, *args: str, config: Path | None = None) -> list[str]:
        config = config or self.work / "certbot"
        assert self.found["certbot"] is not None
        return [
            self.found["certbot"],
            *args,
            "--config-dir",
            str(config),
            "--work-dir",
            str(self.work / "certbot-work"),
            "--logs-dir",
            str(self.work / "certbot-logs"),
            "--non-interactive",
        ]

    def _peer_env(self) -> dict[str, str]:
        pebble = self.bench.pebble
        return {
            **self.bench.env,
            "REQUESTS_CA_BUNDLE": str(pebble.ca_bundle),
            "LEGO_CA_CERTIFICATES": str(pebble.ca_bundle),
        }

    # -- the tasks ------------------------------------------------------------------------

    def tasks(self) -> dict[str, dict[str, Callable[[], list[Step]]]]:
        """task → tool → a maker of one run's steps."""
        bench, exe = self.bench, self.bench.certctl
        pebble = bench.pebble
        port = str(pebble.http_port)
        issue_env, peer_env = bench.issue_env(), self._peer_env()
        list_env = bench.list_env()

        def certctl_obtain() -> list[Step]:
            domain = self._domain("certctl")
            argv = [exe, "obtain", "-d", domain, "--standalone", "--http-port", port]
            return [Step([*argv, "--agree-tos"], issue_env, bench._expect_issued(domain))]

        def certctl_steps() -> list[Step]:
            domain = self._domain("steps")
            order = [exe, "order", "-d", domain, "--standalone", "--http-port", port]
            return [
                Step([*order, "--agree-tos"], issue_env),
                Step([exe, "verify", domain], issue_env),
                Step([exe, "issue", domain], issue_env, bench._expect_issued(domain)),
            ]

        def certbot_certonly() -> list[Step]:
            argv = self._certbot("certonly", "--standalone", "--http-01-port", port)
            argv += ["--server", pebble.directory_url, "--agree-tos"]
            argv += ["--register-unsafely-without-email", "-d", self._domain("certbot")]
            return [Step(argv, peer_env)]

        def lego_run() -> list[Step]:
            assert self.found["lego"] is not None
            argv = [self.found["lego"], "--server", pebble.directory_url, "--accept-tos"]
            argv += ["--email", "bench@example.com", "--http", "--http.port", f":{port}"]
            argv += ["--path", str(self.work / "lego"), "--domains", self._domain("lego"), "run"]
            return [Step(argv, peer_env)]

        def certctl_list(*extra: str) -> Callable[[], list[Step]]:
            def make() -> list[Step]:
                return [Step([exe, "list", *extra], list_env, _nonempty)]

            return make

        def lego_list() -> list[Step]:
            assert self.found["lego"] is not None
            path = str(self.work / "lego-list")
            return [Step([self.found["lego"], "--path", path, "list"], peer_env, _nonempty)]

        def certbot_certificates() -> list[Step]:
            argv = self._certbot("certificates", config=self.work / "certbot-list")
            return [Step(argv, peer_env, _nonempty)]

        quiet_env = {**bench.env, "CERTCTL_STORE": str(self.work / "quiet-1000")}

        def certctl_renew() -> list[Step]:
            return [Step([exe, "renew-due"], quiet_env)]

        def certbot_renew() -> list[Step]:
            # the list store: its certificates have 89 days left, so none is due
            config = self.work / "certbot-list"
            argv = self._certbot("renew", "--no-random-sleep-on-renew", config=config)
            return [Step(argv, peer_env, _not_renewed)]

        tasks: dict[str, dict[str, Callable[[], list[Step]]]] = {
            "obtain": {"certctl": certctl_obtain, "certbot": certbot_certonly, "lego": lego_run},
            "order+verify+issue": {"certctl": certctl_steps},
            "list-1000": {"certctl": certctl_list(), "lego": lego_list},
            "list-1000-json": {"certctl": certctl_list("--json")},
            "certbot-certificates-1000": {"certbot": certbot_certificates},
            "renew, nothing due": {"certctl": certctl_renew, "certbot": certbot_renew},
        }
        for task in tasks.values():
            for tool in [t for t in task if t != "certctl" and self.found.get(t) is None]:
                del task[tool]
        return {name: tools for name, tools in tasks.items() if tools}

    def commands(self, count: int) -> dict[tuple[str, str], str]:
        """What each (task, tool) runs, for the table."""
        return {
            ("obtain", "certctl"): "certctl obtain --standalone",
            ("obtain", "certbot"): "certbot certonly --standalone",
            ("obtain", "lego"): "lego --http run",
            ("order+verify+issue", "certctl"): "certctl order; verify; issue (3 processes)",
            ("list-1000", "certctl"): "certctl list",
            ("list-1000", "lego"): f"lego list ({count:,} certificates)",
            ("list-1000-json", "certctl"): "certctl list --json",
            ("certbot-certificates-1000", "certbot"): f"certbot certificates ({count:,})",
            ("renew, nothing due", "certctl"): "certctl renew-due (1,000 certificates)",
            ("renew, nothing due", "certbot"): f"certbot renew ({count:,} certificates)",
        }

    def run(self) -> list[Measured]:
        """Every task, its tools alternating run by run; the warm-ups are not counted."""
        self.bench.setup("store")
        self.bench.setup("pebble")
        self.work.mkdir()
        count = self.build_list_stores()
        self.bench.log(f"peers: {count} certificates in lego's and certbot's list stores")
        from storebuilder import build_store

        build_store(self.work / "quiet-1000", count=1000, seed=1000, mix={})  # nothing due
        for note in self.notes:
            self.bench.log(f"peers: {note}")
        commands = self.commands(count)
        results: list[Measured] = []
        # certbot's "obtain" task before the three steps: its accounts and store exist then
        order = ["obtain", "order+verify+issue", "renew, nothing due"]
        order += ["list-1000", "list-1000-json", "certbot-certificates-1000"]
        tasks = self.tasks()
        for name in [t for t in order if t in tasks]:
            tools = tasks[name]
            measured = {tool: Measured(name, tool, commands[(name, tool)]) for tool in tools}
            for index in range(self.warmup + self.runs):
                for tool, make in tools.items():
                    m = measured[tool]
                    if m.error:
                        continue
                    try:
                        wall, rss = _run_steps(make())
                    except BenchError as e:
                        m.error = str(e)
                        self.bench.log(f"peers: {name} / {tool}: {e}")
                        continue
                    if index >= self.warmup:
                        m.times.append(wall)
                        m.rss.append(rss)
            for m in measured.values():
                if m.median is not None:
                    self.bench.log(f"peers: {name} / {m.tool}: median {m.median * 1000:.1f} ms")
            results.extend(measured.values())
        return results


def _run_steps(steps: list[Step]) -> tuple[float, int]:
    """Run a task's processes in order: total wall time, the highest peak RSS."""
    wall, rss = 0.0, 0
    for step in steps:
        result = run_process(step.argv, step.env, 300.0)
        if result.timed_out or result.returncode != 0:
            raise BenchError(
                f"`{' '.join(step.argv)}` exited {result.returncode}:\n{tail(result.stderr, 8)}"
            )
        step.check(result)
        wall += result.wall
        rss = max(rss, result.max_rss)
    return wall, rss


def _not_renewed(result: RunResult) -> None:
    if b"No renewals were attempted" not in result.stdout + result.stderr:
        raise BenchError(f"certbot renew renewed something: {tail(result.stdout, 5)}")


def _nonempty(result: RunResult) -> None:
    if len(result.stdout) < 1000:
        raise BenchError(f"expected a long listing, got: {tail(result.stdout, 5)}")


# ---- the verdicts and the table ---------------------------------------------------------


def verdicts(results: list[Measured]) -> list[dict[str, Any]]:
    """Each issue-17 target whose two sides ran: the speed-up and whether it is met."""
    by_key = {(m.task, m.tool): m for m in results if m.median is not None}
    found = []
    for task, tool, peer, least in TARGETS:
        # the three steps are compared with certbot's one certonly, list --json with lego list
        peer_task = task if (task, peer) in by_key else PEER_TASK.get(task, task)
        ours, theirs = by_key.get((task, tool)), by_key.get((peer_task, peer))
        if ours is None or theirs is None or ours.median is None or theirs.median is None:
            continue
        speedup = theirs.median / ours.median
        found.append(
            {
                "task": task,
                "against": f"{peer} ({theirs.command})",
                "speedup": speedup,
                "target": least,
                "passed": speedup >= least,
            }
        )
    # every certctl command against the least certbot needs for any of its commands
    certbot_peak = min((max(m.rss) for m in results if m.tool == "certbot" and m.rss), default=0)
    certctl_peak = max((max(m.rss) for m in results if m.tool == "certctl" and m.rss), default=0)
    if certbot_peak:
        found.append(
            {
                "task": "peak memory of every certctl command",
                "against": "certbot's lowest",
                "speedup": None,
                "certctl_peak_mib": certctl_peak / MIB,
                "certbot_peak_mib": certbot_peak / MIB,
                "passed": certctl_peak <= certbot_peak,
            }
        )
    return found


def _speed(v: dict[str, Any]) -> str:
    if v["speedup"] is None:
        return f"{v['certctl_peak_mib']:.1f} vs {v['certbot_peak_mib']:.1f} MiB"
    if v["target"] >= 1:
        return f"{v['speedup']:.2f}x faster (target ≥ {v['target']:g}x)"
    return f"{1 / v['speedup']:.2f}x the time (target ≤ {1 / v['target']:g}x)"


def peers_table(results: list[Measured], notes: list[str]) -> str:
    rows = [["task", "tool", "command", "median", "peak MiB"]]
    for m in results:
        median = f"{m.median * 1000:.0f} ms" if m.median is not None else "error"
        peak = f"{max(m.rss) / MIB:.1f}" if m.rss else "-"
        rows.append([m.task, m.tool, m.command, median, peak])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in pairs]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    for v in verdicts(results):
        verdict = "PASS" if v["passed"] else "FAIL"
        lines.append(f"{v['task']} vs {v['against']}: {_speed(v)} {verdict}")
    lines += [f"note: {n}" for n in notes]
    lines += [f"error: {m.task} / {m.tool}: {m.error}" for m in results if m.error]
    return "\n".join(lines)


def peer_versions(found: dict[str, str | None]) -> dict[str, str]:
    """`certbot --version` / `lego --version` of the peers measured."""
    import subprocess

    versions = {}
    for name, path in found.items():
        if path is None:
            continue
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
            versions[name] = (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            versions[name] = "unknown"
        try:  # Debian's lego says "version dev": the package version says more
            package = subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}", name],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if package.returncode == 0 and package.stdout:
                versions[name] += f" (Debian package {package.stdout})"
        except (OSError, subprocess.SubprocessError):
            pass
    print(f"peers: {versions}", file=sys.stderr)
    return versions
