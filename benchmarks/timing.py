"""Run one certctl process as a whole, time it, and summarise and report the measurements."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storebuilder import STORE_SIZE

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


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


class _Spawner:
    """The small process (spawner.py) that starts every measured command."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start it (once); a fresh interpreter, small however big this process is."""
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-E", str(Path(__file__).with_name("spawner.py"))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={},
            )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.start()
            assert self._proc is not None and self._proc.stdin and self._proc.stdout
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise BenchError("the spawner process died")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchError(f"cannot start {request['argv'][0]}: {answer['error']}")
        return answer


SPAWNER = _Spawner()


def run_process(argv: list[str], env: dict[str, str], timeout: float) -> RunResult:
    """Run `argv` from the spawner; return wall time, peak RSS, CPU time and its output.

    The spawner reaps it with wait4 (peak RSS and CPU are the child's own) and sends its
    output to files, not pipes, so a big `list` never blocks on a full pipe.
    """
    with tempfile.TemporaryDirectory(prefix="certctl-run-") as tmp:
        out, err = Path(tmp, "out"), Path(tmp, "err")
        answer = SPAWNER.ask(
            {"argv": argv, "env": env, "timeout": timeout, "out": str(out), "err": str(err)}
        )
        return RunResult(
            answer["wall"],
            answer["rss"],
            answer["cpu"],
            answer["returncode"],
            out.read_bytes(),
            err.read_bytes(),
            answer["timed_out"],
        )


def tail(data: bytes, lines: int = 30) -> str:
    text = data.decode("utf-8", "replace").rstrip()
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


# ---- the measured command's executable and environment ----------------------------------


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


@dataclass
class Scenario:
    """A named benchmark: how to build each run's command, and how to check its result."""

    name: str
    target: float  # seconds; the median must not exceed it
    description: str
    needs: tuple[str, ...] = ()  # "store" and/or "pebble"
    timeout: float = 60.0


# ---- measurements of a scenario ---------------------------------------------------------


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


# ---- reporting ----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def table(outcomes: list[Outcome]) -> str:
    header = ["scenario", "median", "min", "max", "CPU", "peak RSS MiB", "target", "result"]
    rows = [header]
    for o in outcomes:
        if o.times:
            stats = [ms(statistics.median(o.times)), ms(min(o.times)), ms(max(o.times))]
            stats.append(ms(statistics.median(o.cpu)))
            rss = f"{max(o.rss) / MIB:.1f}"
        else:
            stats, rss = ["-", "-", "-", "-"], "-"
        verdict = "PASS" if o.passed else "FAIL"
        if o.error or o.failures:
            verdict += " (error)"
        target = o.scenario.target
        limit = f"≤ {ms(target)}" if target != float("inf") else "see ratio"
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


PG_PAIRS = (("list-10000-pg", "list-10000"), ("renew-due-10000-pg", "renew-due-10000"))
PG_LIMIT = 2.0  # PostgreSQL within 2x of the directory store (issue 13)


def backend_ratios(outcomes: list[Outcome]) -> dict[str, float]:
    """Median PostgreSQL time over median directory time, per pair that both ran."""
    by_name = {o.scenario.name: o for o in outcomes if o.times}
    ratios = {}
    for pg, fs in PG_PAIRS:
        if pg in by_name and fs in by_name:
            ratios[pg] = statistics.median(by_name[pg].times) / statistics.median(by_name[fs].times)
    return ratios


def parallel_speedup(outcomes: list[Outcome]) -> float | None:
    """Median --parallel 1 time over median --parallel 8 time, when both ran."""
    by_name = {o.scenario.name: o for o in outcomes if o.times}
    one, eight = by_name.get("renew-50-parallel-1"), by_name.get("renew-50-parallel-8")
    if one is None or eight is None:
        return None
    return statistics.median(one.times) / statistics.median(eight.times)
