"""The Pebble watchdog, a pytest plugin (conftest.py loads it).

Pebble, the test CA, can deadlock on its own locks under concurrent requests (seen in CI:
after one wedged, every later test timed out on it, 72 minutes of cascade). A test that ran
long or failed is followed by a check of every running Pebble; a wedged one is replaced by a
fresh one on the same ports (its goroutine dump kept), and the failed test is run once more.
Only a Pebble confirmed wedged earns a rerun: by a database-lock probe, or by the failed
test's own request to that Pebble timing out (a lock of one order can leak while the
database still answers: seen in CI, the probe passed and the next test hung on it). A
timeout against anything else (a fault proxy, a stalled server of the test's own) and
certctl's own failures never do. The terminal summary lists every wedge with the
goroutines that waited on a lock.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import pytest

import pebble as pebble_module


class Watched(Protocol):
    """What the watchdog needs of a running Pebble (tests/pebble.py PebbleServer)."""

    def responsive(self) -> bool: ...
    def recover(self) -> Path: ...
    def wedge_summary(self, path: Path) -> str: ...


WATCH_AFTER = 5.0
WEDGES: list[tuple[str, Watched, Path]] = []


def _recover_wedged(nodeid: str, failure: str = "") -> bool:
    """Replace every running Pebble that no longer answers, or that the failure says a
    request to it timed out; True if there was one."""
    recovered = False
    for server in list(pebble_module.RUNNING):
        url = getattr(server, "directory_url", None)  # https://127.0.0.1:PORT/dir
        origin = url.rsplit("/", 1)[0] + "/" if isinstance(url, str) else None
        hung = origin is not None and origin in failure and "timed out" in failure
        if hung or not server.responsive():
            WEDGES.append((nodeid, server, server.recover()))
            recovered = True
    return recovered


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool:
    """Run a test; after a wedged Pebble is replaced, run its failed test once more."""
    from _pytest.runner import runtestprotocol

    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for attempt in (1, 2):
        started = time.monotonic()
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        failed = any(report.failed for report in reports)
        slow = time.monotonic() - started > WATCH_AFTER
        failure = "\n".join(str(report.longrepr) for report in reports if report.failed)
        wedged = (failed or slow) and _recover_wedged(item.nodeid, failure)
        if attempt == 1 and failed and wedged:
            for report in reports:
                if report.failed:
                    report.outcome = "rerun"  # type: ignore[assignment]
                item.ihook.pytest_runtest_logreport(report=report)
            _forget_failed_fixtures(item)
            continue
        for report in reports:
            item.ihook.pytest_runtest_logreport(report=report)
        break
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _forget_failed_fixtures(item: pytest.Item) -> None:
    """Drop cached errors of wider-scoped fixtures, so the rerun sets them up again."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return
    for fixturedefs in info.name2fixturedefs.values():
        for fixturedef in fixturedefs:
            cached = fixturedef.cached_result
            if cached is not None and cached[2] is not None:
                fixturedef.cached_result = None


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    """A test run again after a wedged Pebble shows as R (its second run counts)."""
    if report.outcome == "rerun":  # type: ignore[comparison-overlap]
        return "rerun", "R", "RERUN (Pebble wedged)"
    return None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List every wedged Pebble: the test, the kept goroutine dump, the lock waiters."""
    if not WEDGES:
        return
    terminalreporter.section("Pebble wedged (replaced; the test ran once more)")
    for nodeid, server, kept in WEDGES:
        terminalreporter.line(f"{nodeid}: goroutine dump kept in {kept}")
        terminalreporter.line(server.wedge_summary(kept))
