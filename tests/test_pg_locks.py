"""Distributed locks on the PostgreSQL store (issue 13), with real processes on a real server.

Every holder is its own process (tests/pg_lock_worker.py, or certctl itself): one holder
at a time among two and ten; a holder paused (SIGSTOP) past its lease loses the lock and
its late write is refused by the fencing token; a holder that keeps working keeps its
lease (the heartbeat); a SIGKILLed holder's lock is free at once (its session is gone);
and the held-lock message names host and pid.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certctl.models import CertRecord
from certctl.store.opening import open_store

from conftest import (
    CERTCTL,
    Certctl,
    make_due_by_ari,
    own_pebble,
    standalone,
    store_key,
    unique,
    wait_stopped,
)
from pebble import PebbleServer

WORKER = str(Path(__file__).with_name("pg_lock_worker.py"))
NAME = "counter"
LEASE = 3.0  # seconds: short, so "past its lease" takes a few seconds


pebble = own_pebble()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return store_key(tmp_path)


@pytest.fixture
def record(pg_url: str, key_file: Path) -> Iterator[str]:
    """A certificate record NAME in the fresh database; yields the URL."""
    store = open_store(pg_url, key_file=key_file)
    with store.lock(NAME):
        store.write(CertRecord(name=NAME, domains=["counter.example.com"]))
    store.close()
    yield pg_url


def stored(url: str, key_file: Path) -> CertRecord:
    store = open_store(url, key_file=key_file)
    try:
        return store.read(NAME)
    finally:
        store.close()


def worker(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def line(proc: subprocess.Popen[str]) -> str:
    """The worker's next output line (it must come)."""
    assert proc.stdout is not None
    got = proc.stdout.readline().strip()
    assert got, proc.stderr.read() if proc.stderr else ""
    return got


def finish(proc: subprocess.Popen[str], stdin: str = "") -> tuple[str, str]:
    out, err = proc.communicate(stdin, timeout=60)
    assert proc.returncode == 0, err
    return out, err


@pytest.mark.parametrize("processes", [2, 10])
def test_one_holder_at_a_time(record: str, key_file: Path, processes: int) -> None:
    rounds = 40 if processes == 2 else 8
    procs = [worker("count", record, key_file, NAME, rounds) for _ in range(processes)]
    outputs = [finish(p)[0] for p in procs]
    assert not [o for o in outputs if "overlap" in o]  # nobody saw another's mark inside
    spans = sorted(
        (float(start), float(end))
        for out in outputs
        for _, start, end in (ln.split() for ln in out.splitlines())
    )
    assert len(spans) == processes * rounds
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start  # no two inside at once (one host: one monotonic clock)
    assert stored(record, key_file).renew_before_days == processes * rounds  # no lost update


def test_a_paused_holder_loses_the_lock_and_its_late_write_is_fenced(
    record: str, key_file: Path
) -> None:
    first = worker("hold", record, key_file, NAME, LEASE)
    try:
        assert line(first) == "locked"
        os.kill(first.pid, signal.SIGSTOP)  # a frozen VM: its session stays open
        refused_early = worker("take", record, key_file, NAME, LEASE, 0)
        assert line(refused_early).startswith("held: ")  # still within the lease
        finish(refused_early)
        time.sleep(LEASE + 1)
        second = worker("take", record, key_file, NAME, LEASE, 0, "keep")
        took = line(second)
        assert took.startswith("took "), took
        assert line(second) == "wrote"  # and it still holds the lock
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, _ = finish(first, "go\n")  # wakes up and writes what it was about to write
    assert out.startswith("refused: lost the lock on certificate 'counter'"), out
    assert f"taken over by host {socket.gethostname()} pid {second.pid}" in out
    assert stored(record, key_file).deploy_hook == f"written by {second.pid}"  # not overwritten
    finish(second, "done\n")
    assert stored(record, key_file).deploy_hook == f"written by {second.pid}"


def test_a_working_holder_keeps_its_lease_past_its_length(record: str, key_file: Path) -> None:
    """The heartbeat extends the lease while the holder works: nobody takes it over."""
    first = worker("busy", record, key_file, NAME, LEASE, 2.5 * LEASE)
    assert line(first) == "locked"
    time.sleep(1.5 * LEASE)  # past the lease's first length
    other = worker("take", record, key_file, NAME, LEASE, 0)
    held = line(other)
    finish(other)
    assert held.startswith(f"held: certificate 'counter' is locked by host {socket.gethostname()}")
    assert f"pid {first.pid}" in held
    out, _ = finish(first)
    assert out.strip() == "wrote"
    assert stored(record, key_file).deploy_hook == f"written by {first.pid}"


def test_a_killed_holders_lock_is_free_at_once(record: str, key_file: Path) -> None:
    first = worker("hold", record, key_file, NAME, 600)  # a lease far longer than the test
    assert line(first) == "locked"
    first.kill()
    first.wait()
    start = time.monotonic()
    second = worker("take", record, key_file, NAME, 600, 30)
    took = line(second)
    assert took.startswith("took "), took
    assert line(second) == "wrote"
    finish(second)
    assert time.monotonic() - start < 15  # the session ended: no waiting for the lease
    assert stored(record, key_file).deploy_hook == f"written by {second.pid}"


def test_held_lock_message_names_host_and_pid(record: str, key_file: Path, tmp_path: Path) -> None:
    first = worker("hold", record, key_file, NAME, 600)
    try:
        assert line(first) == "locked"
        runner = Certctl(tmp_path / "unused", None, location=record, key_file=key_file)
        proc = runner.run("set", NAME, "--deploy-hook", "systemctl reload nginx")
        assert proc.returncode == 3, proc.stderr
        (message,) = proc.stderr.strip().splitlines()
        assert f"is locked by host {socket.gethostname()} pid {first.pid}" in message
        assert "retry later" in message
    finally:
        finish(first, "go\n")
    assert stored(record, key_file).deploy_hook == f"written by {first.pid}"  # set wrote nothing


def test_ten_renew_due_on_one_due_certificate_renew_it_once(
    pg_url: str, key_file: Path, pebble: PebbleServer, tmp_path: Path
) -> None:
    runner = Certctl(tmp_path / "unused", pebble, location=pg_url, key_file=key_file)
    domain = unique("ten")
    runner.json("obtain", "-d", domain, *standalone(pebble))
    assert runner.run("renew-due").returncode == 0  # ARI fetched: not due by itself
    make_due_by_ari(runner, domain)  # once renewed, the new certificate is not due: no second one
    env = {**os.environ, **runner.env()}
    procs = [
        subprocess.Popen(
            [*CERTCTL, "renew-due", "--json"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(10)
    ]
    results = [(p.communicate(timeout=180), p.returncode) for p in procs]
    renewed, locked, quiet = [], [], []
    for (out, err), code in results:
        entries = json.loads(out)["certificates"]
        actions = [e["action"] for e in entries]
        if actions == ["renewed"]:
            assert code == 0, err
            renewed.append(out)
        elif actions == ["taken"]:
            # a shared store: another host holds the lock and does the work → silent, exit 0
            # (the JSON still names the holder)
            assert code == 0, err
            assert f"host {socket.gethostname()} pid " in entries[0]["detail"]
            locked.append(out)
        else:
            assert (code, actions) == (0, []), (out, err)  # it came after: not due any more
            quiet.append(out)
    assert len(renewed) == 1, results
    assert len(renewed) + len(locked) + len(quiet) == 10
    store = runner.open()
    try:
        assert store.versions(domain) == [1, 2]  # renewed once, not twice
        assert store.live_version(domain) == 2
    finally:
        store.close()


def test_a_paused_renew_due_is_fenced_and_the_other_host_renews(
    pg_url: str, key_file: Path, pebble: PebbleServer, tmp_path: Path
) -> None:
    """certctl itself, `[store] lease = 5`: paused after finalize past its lease, then woken."""
    config = tmp_path / "config.toml"
    config.write_text("[store]\nlease = 5\n")
    runner = Certctl(tmp_path / "unused", pebble, location=pg_url, key_file=key_file)
    domain = unique("fence")
    runner.json("obtain", "-d", domain, *standalone(pebble))
    assert runner.run("renew-due").returncode == 0  # ARI fetched: not due by itself
    make_due_by_ari(runner, domain)
    planned = runner.json("renew-due", "--dry-run")["certificates"]  # why, if it isn't
    assert [(c["name"], c["action"]) for c in planned] == [(domain, "would-renew")], planned
    env = {**os.environ, **runner.env(), "CERTCTL_CONFIG": str(config)}
    paused = subprocess.Popen(
        [*CERTCTL, "renew-due", "--json"],
        env={**env, "CERTCTL_TEST_FAULT": "pause:finalize-after"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_stopped(paused)  # holds the lock, the new certificate in hand, not stored
        early = runner.run("renew-due", "--json", extra_env={"CERTCTL_CONFIG": str(config)})
        assert early.returncode == 0, early.stderr  # the lease is still running: taken
        assert [e["action"] for e in json.loads(early.stdout)["certificates"]] == ["taken"]
        quiet = runner.run("renew-due", extra_env={"CERTCTL_CONFIG": str(config)})
        assert (quiet.returncode, quiet.stdout) == (0, "")  # a fleet's cron mails nothing
        time.sleep(6)
        other = runner.run("renew-due", "--json", extra_env={"CERTCTL_CONFIG": str(config)})
        assert other.returncode == 0, other.stderr
        assert [e["action"] for e in json.loads(other.stdout)["certificates"]] == ["renewed"]
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    out, err = paused.communicate(timeout=120)
    assert paused.returncode == 1, err
    (entry,) = json.loads(out)["certificates"]
    assert entry["action"] == "failed" and "lost the lock" in entry["detail"], entry
    store = runner.open()
    try:
        assert store.versions(domain) == [1, 2]  # the late writer stored nothing
        assert store.live_version(domain) == 2
        record = store.read(domain)
        assert record.current is not None and record.current.version == 2
    finally:
        store.close()
