"""Fleets (issue 14): many hosts, one PostgreSQL store, a real Pebble.

Hosts are separate certctl processes, each with its own identity (CERTCTL_HOST_ID),
deploy directory and hook log. HTTP-01 goes through `serve-challenges` on each
host behind a round-robin TCP proxy written here, on Pebble's validation port, so
the CA reaches whichever host the proxy picks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from conftest import CERTCTL, Certctl, make_due, own_pebble, store_key, unique
from pebble import PebbleServer, free_port

pytestmark = pytest.mark.pebble


pebble = own_pebble()


class Host(Certctl):
    """One host of the fleet: the shared store, its own id, deploy directory and hook log."""

    def __init__(self, base: Path, index: int, pebble: PebbleServer, url: str, key: Path) -> None:
        super().__init__(base / f"host{index}", pebble, location=url, key_file=key)
        self.id = f"host{index}"
        self.deploy_dir = base / f"host{index}-tls"
        self.deploy_dir.mkdir(parents=True)
        self.hook_log = base / f"host{index}-hook.log"

    def env(self) -> dict[str, str]:
        env = super().env()
        env["CERTCTL_HOST_ID"] = self.id
        return env

    def popen(self, *args: str, **kw: object) -> subprocess.Popen[str]:
        env = {**os.environ, **self.env()}
        env.pop("CERTCTL_DEBUG", None)
        return subprocess.Popen(
            [*CERTCTL, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kw,  # type: ignore[call-overload]
        )

    def deploy(self, *names: str) -> subprocess.CompletedProcess[str]:
        args = [a for n in names for a in ("--name", n)]
        hook = f'echo "$CERTCTL_DEPLOYED" >> {self.hook_log}'
        return self.run("deploy", *args, "--dir", str(self.deploy_dir), "--hook", hook, "--json")


class RoundRobin:
    """A TCP proxy on `port` handing each connection to the next backend in turn."""

    def __init__(self, port: int, backends: list[int]) -> None:
        self.backends = backends
        self.hits = [0] * len(backends)
        self._next = 0
        self._sock = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RoundRobin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            index = self._next % len(self.backends)
            self._next += 1
            self.hits[index] += 1
            threading.Thread(target=self._pipe, args=(client, index), daemon=True).start()

    def _pipe(self, client: socket.socket, index: int) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.backends[index]), timeout=10)
        except OSError:
            client.close()
            return

        def copy(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        t = threading.Thread(target=copy, args=(upstream, client), daemon=True)
        t.start()
        copy(client, upstream)
        t.join(10)
        client.close()
        upstream.close()


@pytest.fixture
def fleet(tmp_path: Path, pebble: PebbleServer, pg_url: str) -> list[Host]:
    key = store_key(tmp_path)
    return [Host(tmp_path, i, pebble, pg_url, key) for i in range(10)]


@contextmanager
def responders(hosts: list[Host], pebble: PebbleServer) -> Iterator[RoundRobin]:
    """serve-challenges on each host, behind a round-robin proxy on Pebble's HTTP-01 port."""
    ports = [free_port() for _ in hosts]
    procs = [
        h.popen("serve-challenges", "--listen", f"127.0.0.1:{p}")
        for h, p in zip(hosts, ports, strict=True)
    ]
    try:
        for port, proc in zip(ports, procs, strict=True):
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert proc.poll() is None, proc.communicate()[1]
                    assert time.monotonic() < deadline, "serve-challenges did not start"
                    time.sleep(0.05)
        with RoundRobin(pebble.http_port, ports) as proxy:
            yield proxy
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        assert all(p.returncode == 0 for p in procs), [p.communicate()[1] for p in procs]


def obtain(host: Host, domain: str) -> None:
    proc = host.run("obtain", "-d", domain, "--http-fleet", "--agree-tos", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["name"] == domain


def test_http01_through_any_host_behind_the_balancer(
    fleet: list[Host], pebble: PebbleServer
) -> None:
    hosts = fleet[:3]
    with responders(hosts, pebble) as proxy:
        for i in range(6):  # each issuance from another host; the CA reaches whichever
            obtain(hosts[i % 3], unique("lb"))
        store = hosts[0].open()
        try:  # only the three responders are connected now: one or two connections each
            open_now = store.run(
                "n", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'certctl'"
            ).fetchone()[0]
        finally:
            store.close()
        assert open_now <= 3 * 2 + 1, open_now  # not one per request served
    assert sum(proxy.hits) >= 6
    assert all(hits > 0 for hits in proxy.hits), proxy.hits  # every host answered some
    store = hosts[0].open()
    try:
        assert store.names() and all(store.challenge_response("x" * 43) is None for _ in (1,))
        assert store.run("n", "SELECT count(*) FROM certctl_challenges").fetchone() == (0,)
    finally:
        store.close()


def test_ten_hosts_renew_twenty_certificates_exactly_once(
    fleet: list[Host], pebble: PebbleServer
) -> None:
    names = [unique("fleet") for _ in range(20)]
    with responders(fleet[:3], pebble):
        for i, name in enumerate(names):
            obtain(fleet[i % 10], name)
        for name in names:
            make_due(fleet[0], name)
        runs = [host.popen("renew-due", "--json") for host in fleet]  # all at once
        results = [(p.communicate(timeout=300), p.returncode) for p in runs]
    assert [code for _, code in results] == [0] * 10, [err for (_, err), _ in results]
    renewed: list[str] = []
    for (out, _), _ in results:
        entries = json.loads(out)["certificates"]
        renewed += [c["name"] for c in entries if c["action"] == "renewed"]
        # the others found the work taken (or already done): nothing else to say
        assert {c["action"] for c in entries} <= {"renewed", "taken"}, entries
    assert sorted(renewed) == sorted(names)  # each by exactly one host
    store = fleet[0].open()
    try:
        assert all(store.versions(n) == [1, 2] and store.live_version(n) == 2 for n in names)
        assert all(store.pending_key_ids(n) == [] for n in names)
    finally:
        store.close()


def test_a_host_killed_mid_renewal_is_finished_by_another(
    fleet: list[Host], pebble: PebbleServer
) -> None:
    name = unique("killed")
    with responders(fleet[:2], pebble):
        obtain(fleet[0], name)
        make_due(fleet[0], name)
        killed = fleet[1].run("renew-due", extra_env={"CERTCTL_TEST_FAULT": "finalize-after"})
        assert killed.returncode == -signal.SIGKILL
        finished = fleet[2].run("renew-due", "--json")
    assert finished.returncode == 0, finished.stderr
    [entry] = json.loads(finished.stdout)["certificates"]
    assert entry["name"] == name and entry["action"] == "renewed"
    store = fleet[0].open()
    try:
        assert store.versions(name) == [1, 2]  # no duplicate
        assert store.live_version(name) == 2
        assert store.pending_key_ids(name) == []  # no orphan key
    finally:
        store.close()


def test_deploy_on_three_hosts_writes_the_new_pair_and_runs_each_hook_once(
    fleet: list[Host], pebble: PebbleServer
) -> None:
    name = unique("dep")
    hosts = fleet[:3]
    with responders(hosts, pebble):
        obtain(hosts[0], name)
        for host in hosts:
            first = host.deploy(name)
            assert first.returncode == 0, first.stderr
        make_due(hosts[0], name)
        renewed = hosts[1].run("renew-due")
        assert renewed.returncode == 0, renewed.stderr
    live = hosts[0].live(name)
    for host in hosts:
        report = host.deploy(name)
        assert report.returncode == 0, report.stderr
        data = json.loads(report.stdout)
        assert data["changed"] == [name] and data["hook_ran"] is True
        assert data["certificates"][0]["previous_version"] == 1
        assert (host.deploy_dir / name / "cert.pem").read_bytes() == live["cert.pem"]
        assert (host.deploy_dir / name / "privkey.pem").read_bytes() == live["privkey.pem"]
        assert (host.deploy_dir / name / ".live" / "privkey.pem").stat().st_mode & 0o777 == 0o600
        again = host.deploy(name)  # nothing changed: no hook, no output but the JSON
        assert json.loads(again.stdout)["hook_ran"] is False
        assert host.hook_log.read_text().split() == [name, name]  # first deploy, the renewal
    listed = {e["name"]: e for e in hosts[0].json("list")["certificates"]}[name]
    assert listed["live_version"] == 2
    assert {(d["host"], d["version"]) for d in listed["deployments"]} == {
        ("host0", 2),
        ("host1", 2),
        ("host2", 2),
    }
    table = hosts[0].run("list").stdout
    assert "DEPLOYED" in table and "3 host(s)" in table


def test_deploy_is_silent_when_nothing_changed_and_says_what_it_wrote(
    fleet: list[Host], pebble: PebbleServer
) -> None:
    name = unique("quiet")
    host = fleet[0]
    with responders(fleet[:1], pebble):
        obtain(host, name)
    hook = f"echo ran >> {host.hook_log}"
    first = host.run("deploy", "--name", name, "--dir", str(host.deploy_dir), "--hook", hook)
    assert first.returncode == 0, first.stderr
    assert f"{name}: deployed version 1 to {host.deploy_dir / name}" in first.stdout
    second = host.run("deploy", "--name", name, "--dir", str(host.deploy_dir), "--hook", hook)
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    assert host.hook_log.read_text() == "ran\n"
    nothing = host.run("deploy", "--name", "no-such-*", "--dir", str(host.deploy_dir))
    assert nothing.returncode == 2 and "matches" in nothing.stderr
    failing = host.run(
        "deploy", "--name", name, "--dir", str(fleet[1].deploy_dir), "--hook", "exit 7"
    )
    assert failing.returncode == 1 and "exited 7" in failing.stdout


def test_a_lagging_host_is_a_warning_in_renew_due(fleet: list[Host], pebble: PebbleServer) -> None:
    from datetime import UTC, datetime, timedelta

    name = unique("lag")
    with responders(fleet[:1], pebble):
        obtain(fleet[0], name)
    store = fleet[0].open()
    try:
        store.record_deployment(name, "old-host", 0, datetime.now(UTC) - timedelta(days=3))
        record = store.read(name)
        assert record.current is not None
        record.current.not_before = datetime.now(UTC) - timedelta(days=2)
        store.write(record)
    finally:
        store.close()
    run = fleet[1].run("renew-due", "--json")
    assert run.returncode == 0, run.stderr
    [entry] = [c for c in json.loads(run.stdout)["certificates"] if c["name"] == name]
    assert entry["action"] == "lagging" and "old-host (version 0)" in entry["detail"]
