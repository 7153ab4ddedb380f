"""The Pebble watchdog (tests/pebblewatch.py) in a pytest run of its own.

A stand-in for a wedged Pebble (a narrow fake of the three calls the watchdog makes; the
real probe and recovery are proven against Pebble in test_pebble_fixture.py) shows the
rules: a failed test after which a Pebble is found wedged runs once more; a failure with
every Pebble answering is a plain failure; a passing quick test costs no probe.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

INNER = """
from pathlib import Path

import pebble


class Stand_in:
    def __init__(self) -> None:
        self.wedged = False
        self.probes = 0
        self.recovered = 0

    def responsive(self) -> bool:
        self.probes += 1
        return not self.wedged

    def recover(self) -> Path:
        self.wedged = False
        self.recovered += 1
        return Path("pebble-wedged-1.log")

    def wedge_summary(self, path: Path) -> str:
        return "  goroutine 7 [sync.RWMutex.RLock]: db.(*MemoryStore).GetOrderByID"


CA = Stand_in()
pebble.RUNNING.add(CA)
runs = []


def test_a_quick_pass_is_not_probed():
    assert CA.probes == 0


def test_failed_while_the_ca_wedged():
    runs.append(1)
    if len(runs) == 1:
        CA.wedged = True
        assert False, "timed out talking to the CA"
    assert CA.recovered == 1


def test_a_plain_failure_is_not_rerun():
    assert False, "certctl's own bug"


def test_counts():
    assert (len(runs), CA.recovered, CA.probes) == (2, 1, 2)
"""


def test_a_test_failing_on_a_wedged_pebble_runs_once_more(pytester: pytest.Pytester) -> None:
    tests_dir = Path(__file__).parent
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(
        "-p", "pebblewatch", "-p", "no:cacheprovider", "-o", f"pythonpath={tests_dir}"
    )
    assert result.parseoutcomes() == {"passed": 3, "failed": 1, "rerun": 1}
    result.stdout.fnmatch_lines(["test_inner.py .R.F.*"])
    result.stdout.fnmatch_lines(
        [
            "*Pebble wedged (replaced; the test ran once more)*",
            "test_inner.py::test_failed_while_the_ca_wedged: goroutine dump kept in*",
            "*goroutine 7 ?sync.RWMutex.RLock?: db.(*MemoryStore).GetOrderByID",
        ]
    )
    result.stdout.no_fnmatch_line("*test_a_plain_failure_is_not_rerun: goroutine dump*")


INNER_TIMEOUT = """
from pathlib import Path

import pebble


class Stand_in:
    directory_url = "https://127.0.0.1:9/dir"

    def __init__(self) -> None:
        self.recovered = 0

    def responsive(self) -> bool:
        return True  # its database answers: only the request's timeout shows the hang

    def recover(self) -> Path:
        self.recovered += 1
        return Path("pebble-wedged-1.log")

    def wedge_summary(self, path: Path) -> str:
        return "  goroutine 9 [sync.RWMutex.Lock]: core.(*Order).Lock"


CA = Stand_in()
pebble.RUNNING.add(CA)
runs = []


def test_a_request_to_the_ca_timed_out():
    runs.append(1)
    if len(runs) == 1:
        assert False, "error: fetch the order at https://127.0.0.1:9/my-order/1: timed out"


def test_a_timeout_elsewhere_is_a_plain_failure():
    assert False, "error: fetch the CA directory at https://127.0.0.1:90/dir: timed out"


def test_counts():
    assert (len(runs), CA.recovered) == (2, 1)
"""


def test_a_request_to_pebble_that_timed_out_counts_as_wedged(pytester: pytest.Pytester) -> None:
    tests_dir = Path(__file__).parent
    pytester.makepyfile(test_inner=INNER_TIMEOUT)
    result = pytester.runpytest_subprocess(
        "-p", "pebblewatch", "-p", "no:cacheprovider", "-o", f"pythonpath={tests_dir}"
    )
    assert result.parseoutcomes() == {"passed": 2, "failed": 1, "rerun": 1}
    result.stdout.fnmatch_lines(["test_inner.py R.F.*"])
