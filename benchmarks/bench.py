"""certctl benchmarks: start-up, `list` over 1,000 and 10,000 certificates (directory and
PostgreSQL stores), renew-due, one ACME issuance.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/bench.py                 # all scenarios, 11 runs each
    .venv/bin/python benchmarks/bench.py --runs 5 --only list-1000
    .venv/bin/python benchmarks/bench.py --json > bench.json

Every measured run is a fresh `certctl` process. Wall time is taken around
spawn-to-reap; peak RSS is the child's own `ru_maxrss` from `os.wait4`. The
first run(s) of each scenario are warm-ups and are discarded. See README.md.

This file is the entry point only (command line, exit status, output). The rest
lives beside it: scenarios.py (the scenarios and the Bench driver that sets them
up and checks each run), timing.py (running and timing one process, reporting)
and storebuilder.py (the synthetic certificate store).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from scenarios import BY_NAME, SCENARIOS, Bench
from timing import (
    PG_LIMIT,
    SPAWNER,
    BenchError,
    Outcome,
    backend_ratios,
    json_document,
    ms,
    parallel_speedup,
    table,
)

EXIT_OK, EXIT_MISSED, EXIT_ERROR = 0, 1, 2


# ---- command line -------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description="Benchmark certctl: median wall time and peak RSS of fresh processes.",
        epilog="Scenarios: "
        + ", ".join(
            f"{s.name} (≤ {ms(s.target)})" if s.target != float("inf") else s.name
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
    parser.add_argument(
        "--peers",
        action="store_true",
        help="compare with certbot and lego (those on PATH) against the same Pebble instead",
    )
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


def peers_main(args: argparse.Namespace) -> int:
    """--peers: certctl, certbot and lego side by side, the issue-17 ratios."""
    from peers import Peers, peer_versions, peers_table, verdicts

    with work_dir(args.keep_temp) as work, contextlib.ExitStack() as stack:
        bench = Bench(args, work, stack)
        peers = Peers(bench, args.runs, args.warmup)
        versions = peer_versions(peers.found)
        try:
            results = peers.run()
        except BenchError as e:
            print(f"bench: peers: {e}", file=sys.stderr)
            return EXIT_ERROR
    found = verdicts(results)
    if args.json:
        document = json_document(args, bench.certctl, [])
        del document["scenarios"], document["passed"]
        document.update(
            peers=versions,
            notes=peers.notes,
            results=[m.to_json() for m in results],
            verdicts=found,
        )
        print(json.dumps(document, indent=2))
    else:
        print(peers_table(results, peers.notes))
    if any(m.error for m in results):
        return EXIT_ERROR
    return EXIT_OK if all(v["passed"] for v in found) else EXIT_MISSED


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    SPAWNER.start()  # measured commands are started from it: their peak RSS is their own
    if args.peers:
        return peers_main(args)
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
    backends = backend_ratios(outcomes)
    if any(r > PG_LIMIT for r in backends.values()) and status == EXIT_OK:
        status = EXIT_MISSED
    if args.json:
        document = json_document(args, certctl, outcomes)
        document["parallel_speedup"] = ratio
        document["postgresql_over_directory"] = backends
        print(json.dumps(document, indent=2))
    elif outcomes:
        print(table(outcomes))
        if ratio is not None:
            verdict = "PASS" if ratio >= 4 else "FAIL"
            print(f"renew-due --parallel 8 vs 1: {ratio:.1f}x faster (target >= 4x) {verdict}")
        for name, value in backends.items():
            verdict = "PASS" if value <= PG_LIMIT else "FAIL"
            print(
                f"{name} vs the directory store: {value:.2f}x the time"
                f" (target <= {PG_LIMIT:.0f}x) {verdict}"
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
