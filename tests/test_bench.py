"""The benchmark's own measuring (benchmarks/): not timings, which are too noisy for CI,
but what the figures mean: a command's peak RSS is its own, and a peer that is not
installed is skipped with a note instead of failing or being faked."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def bench() -> Any:
    """benchmarks/timing.py and peers.py, imported as bench.py imports them."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        modules: dict[str, ModuleType] = {
            name: importlib.import_module(name) for name in ("timing", "peers")
        }
    finally:
        sys.path.remove(str(BENCHMARKS))
    return SimpleNamespace(**modules)


def test_peak_rss_is_the_measured_commands_own(bench: Any) -> None:
    """Linux carries a process's peak RSS across fork and exec: a command started by a
    big benchmark process must still report its own few MiB, not the benchmark's size."""
    ballast = b"x" * (300 * MIB)  # written, so resident: this process is now > 300 MiB
    result = bench.timing.run_process([sys.executable, "-S", "-c", "pass"], {}, 60)
    assert len(ballast) == 300 * MIB
    assert result.returncode == 0 and not result.timed_out
    assert 0 < result.max_rss < 100 * MIB, result.max_rss / MIB
    assert result.wall > 0 and result.cpu >= 0


def test_run_process_keeps_output_and_exit_code(bench: Any) -> None:
    code = "import sys; print('out' * 50000); print('err', file=sys.stderr); sys.exit(3)"
    result = bench.timing.run_process([sys.executable, "-S", "-c", code], {}, 60)
    assert result.returncode == 3
    assert result.stdout == b"out" * 50000 + b"\n"
    assert result.stderr == b"err\n"


def _stub_bench(work: Path) -> SimpleNamespace:
    pebble = SimpleNamespace(http_port=5002, directory_url="https://127.0.0.1:1/dir", ca_bundle="")
    return SimpleNamespace(
        work=work,
        certctl="certctl",
        pebble=pebble,
        env={},
        issue_env=dict,
        list_env=dict,
        _expect_issued=lambda domain: lambda result: None,
    )


def test_a_missing_peer_is_skipped_with_a_note(
    bench: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    peers = bench.peers.Peers(_stub_bench(tmp_path), runs=1, warmup=0)
    assert peers.found == {"certbot": None, "lego": None}
    assert peers.notes == [
        f"{name}: not on PATH, skipped (apt-get install certbot lego to compare with it)"
        for name in ("certbot", "lego")
    ]
    assert {tool for task in peers.tasks().values() for tool in task} == {"certctl"}
    # one peer installed: it is measured, the other still skipped
    fake = empty / "certbot"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    peers = bench.peers.Peers(_stub_bench(tmp_path), runs=1, warmup=0)
    assert peers.found == {"certbot": str(fake), "lego": None}
    assert [n.split(":")[0] for n in peers.notes] == ["lego"]
    assert set(peers.tasks()["obtain"]) == {"certctl", "certbot"}
    assert os.access(fake, os.X_OK)


def test_verdicts_are_ratios_of_medians(bench: Any) -> None:
    measured = bench.peers.Measured
    results = [
        measured("obtain", "certctl", "", [0.30, 0.32, 0.29], [50 * MIB]),
        measured("obtain", "certbot", "", [3.3, 3.2, 3.4], [56 * MIB]),
        measured("order+verify+issue", "certctl", "", [0.7], [48 * MIB]),
        measured("list-1000", "certctl", "", [0.1], [22 * MIB]),
        measured("list-1000", "lego", "", [0.05], [21 * MIB]),
    ]
    found = {v["task"]: v for v in bench.peers.verdicts(results)}
    assert found["obtain"]["speedup"] == pytest.approx(3.3 / 0.30)
    assert found["obtain"]["passed"] is True
    # the three steps are held against certbot's one certonly
    assert found["order+verify+issue"]["speedup"] == pytest.approx(3.3 / 0.7)
    assert found["order+verify+issue"]["passed"] is False
    assert found["list-1000"]["speedup"] == pytest.approx(0.5)
    assert found["list-1000"]["passed"] is False  # 2x lego's time: more than 1.5x
    assert "list-1000-json" not in found  # not measured: no verdict
    memory = found["peak memory of every certctl command"]
    assert memory["passed"] is True and memory["certbot_peak_mib"] == pytest.approx(56)
