"""`certctl export`: a server reading DIR at any instant gets a certificate and its own key.

Two uploaded certificates with different keys, `a` and `b`, are exported in turn into
one directory. Every rename, link and unlink certctl makes is watched (and, one at a
time, made to fail); certctl is SIGKILLed at every named step; a reader thread reads
while exports run in a loop. At every instant DIR/cert.pem and DIR/fullchain.pem must
hold the certificate whose key is in DIR/privkey.pem.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certctl.pki.certinfo import key_matches

from certfactory import Issued, make_leaf, private_key
from conftest import Certctl

SERVED = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")
LEAVES = {
    "a": make_leaf("a.example.com", key=private_key("ec256", 1)),
    "b": make_leaf("b.example.com", key=private_key("ec256", 2)),
}
# every named step of an export (CERTCTL_TEST_FAULT), in order
EXPORT_POINTS = [
    "export-cert.pem",
    "export-chain.pem",
    "export-fullchain.pem",
    "export-privkey.pem",
    "export-set-after",
    "export-live-before",
    "export-live-after",
]
# and of the first export over files written by an older certctl (regular files)
ADOPT_POINTS = [
    "export-adopt-before",
    "export-adopt-after",
    "export-link-cert.pem",
    "export-link-chain.pem",
    "export-link-fullchain.pem",
    "export-link-privkey.pem",
]


@pytest.fixture(autouse=True)
def _fresh_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """render.console() caches a Console per stream id; CliRunner swaps streams per run."""
    from certctl.cli import render

    monkeypatch.setattr(render, "_consoles", {}, raising=False)


@pytest.fixture
def two(offline: Certctl, tmp_path: Path) -> Certctl:
    for name, leaf in LEAVES.items():
        bundle = tmp_path / f"{name}.pem"
        bundle.write_bytes(leaf.bundle_pem())
        proc = offline.run("upload", name, "--bundle", str(bundle))
        assert proc.returncode == 0, proc.stderr
    return offline


def served(directory: Path) -> str:
    """Which certificate DIR serves; AssertionError unless every file belongs to it."""
    files = {f: (directory / f).read_bytes() for f in SERVED}
    cert = x509.load_pem_x509_certificate(files["cert.pem"])
    leaf = x509.load_pem_x509_certificates(files["fullchain.pem"])[0]
    key = serialization.load_pem_private_key(files["privkey.pem"], None)
    assert key_matches(cert, key), "cert.pem does not match privkey.pem"
    assert key_matches(leaf, key), "fullchain.pem does not match privkey.pem"
    assert files["fullchain.pem"] == files["cert.pem"] + files["chain.pem"]
    (which,) = [n for n, issued in LEAVES.items() if issued.cert == cert]
    return which


def write_old_layout(directory: Path, leaf: Issued) -> None:
    """DIR as an older certctl export left it: four regular files."""
    for filename, data in {
        "cert.pem": leaf.cert_pem(),
        "chain.pem": leaf.chain_pem(),
        "fullchain.pem": leaf.fullchain_pem(),
        "privkey.pem": leaf.key_pem(),
    }.items():
        (directory / filename).write_bytes(data)
    (directory / "privkey.pem").chmod(0o600)


def leftovers(directory: Path) -> list[str]:
    """Anything but the four names, .live, and the current (and previous) set."""
    found = [e for e in os.listdir(directory) if e not in (*SERVED, ".live", ".versions")]
    sets = directory / ".versions"
    found += [f".versions/{e}" for e in os.listdir(sets) if not e.isdigit() and e != ".lock"]
    return found


def start(two: Certctl, directory: Path, layout: str) -> None:
    """DIR serving `a`: from a previous export, or as an older certctl left it."""
    directory.mkdir()
    if layout == "old files":
        write_old_layout(directory, LEAVES["a"])
    else:
        assert two.run("export", "a", "--dir", str(directory)).returncode == 0
    assert served(directory) == "a"


class Watch:
    """Wraps every call that creates or changes a directory entry: checks DIR after each
    one, and makes the `fail_at`-th of them under DIR fail with EIO."""

    CALLS = ("open", "replace", "rename", "symlink", "link", "unlink", "rmdir", "mkdir")

    def __init__(self, directory: Path, fail_at: int | None) -> None:
        self.directory = directory
        self.fail_at = fail_at
        self.calls = 0
        self.injected: str | None = None
        self.problems: list[str] = []

    def wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kw: Any) -> Any:
            if args and str(args[0]).startswith(str(self.directory)):
                self.calls += 1
            if self.calls == self.fail_at and self.injected is None:
                self.injected = f"{name}{args}"
                raise OSError(errno.EIO, "injected failure")
            result = real(*args, **kw)
            try:
                served(self.directory)
            except (AssertionError, OSError, ValueError) as e:
                self.problems.append(f"after {name}{args}: {type(e).__name__}: {e}")
            return result

        return wrapper


@contextmanager
def watched(
    monkeypatch: pytest.MonkeyPatch, directory: Path, fail_at: int | None = None
) -> Iterator[Watch]:
    watch = Watch(directory, fail_at)
    with monkeypatch.context() as m:
        for name in Watch.CALLS:
            m.setattr(os, name, watch.wrap(name, getattr(os, name)))
        yield watch


@pytest.mark.faults
@pytest.mark.parametrize("layout", ["links", "old files"])
def test_every_step_of_an_export_leaves_a_matching_pair(
    two: Certctl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """Each file-system call of `export b` fails in turn; DIR always serves a or b whole."""
    fail_at = 1
    while True:
        target = tmp_path / f"tls-{fail_at}"
        start(two, target, layout)
        with watched(monkeypatch, target, fail_at) as watch:
            result = two.invoke("export", "b", "--dir", str(target))
        assert watch.problems == [], (fail_at, watch.injected)
        assert served(target) in ("a", "b")
        if watch.injected is None:
            assert result.exit_code == 0, result.stderr
            assert served(target) == "b" and leftovers(target) == []
            break
        if result.exit_code != 0:
            assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
            assert "injected failure" in result.stderr
        again = two.invoke("export", "b", "--dir", str(target))
        assert again.exit_code == 0, again.stderr
        assert served(target) == "b" and leftovers(target) == [], watch.injected
        fail_at += 1
    assert fail_at > 10  # each of the export's calls was made to fail once


@pytest.mark.faults
@pytest.mark.parametrize(
    ("layout", "point"),
    [("links", p) for p in EXPORT_POINTS] + [("old files", p) for p in ADOPT_POINTS],
)
def test_export_killed_at_each_step_leaves_a_matching_pair(
    two: Certctl, tmp_path: Path, layout: str, point: str
) -> None:
    target = tmp_path / "tls"
    start(two, target, layout)
    proc = two.run("export", "b", "--dir", str(target), extra_env={"CERTCTL_TEST_FAULT": point})
    assert proc.returncode == -9, (point, proc.returncode, proc.stderr)
    assert served(target) == ("b" if point == "export-live-after" else "a")
    rerun = two.run("export", "b", "--dir", str(target))
    assert rerun.returncode == 0, rerun.stderr
    assert served(target) == "b" and leftovers(target) == []


@pytest.mark.faults
def test_a_reader_never_sees_a_mismatch_while_exports_run(two: Certctl, tmp_path: Path) -> None:
    target = tmp_path / "tls"
    start(two, target, "links")
    keys = {issued.cert_pem(): issued.key_pem() for issued in LEAVES.values()}
    chains = {issued.cert_pem(): issued.chain_pem() for issued in LEAVES.values()}
    stop = threading.Event()
    problems: list[str] = []
    judged = [0]

    def reader() -> None:
        while not stop.is_set():
            try:
                first = (target / "cert.pem").read_bytes()
                key = (target / "privkey.pem").read_bytes()
                full = (target / "fullchain.pem").read_bytes()
                again = (target / "cert.pem").read_bytes()
            except OSError as e:
                problems.append(f"{type(e).__name__}: {e}")
                continue
            if first != again:
                continue  # the set switched between two reads of cert.pem: no verdict
            judged[0] += 1
            if keys.get(first) != key or full != first + chains.get(first, b"?"):
                problems.append(f"mismatch after {judged[0]} reads")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(60):
            name = "ab"[round_ % 2]
            result = two.invoke("export", name, "--dir", str(target))
            assert result.exit_code == 0, result.stderr
    finally:
        stop.set()
        thread.join()
    assert problems == []
    assert judged[0] > 100
    assert served(target) == "b"


def test_layout_is_four_links_into_one_switched_set(two: Certctl, tmp_path: Path) -> None:
    """The README's promise: DIR/<file> -> .live/<file>, .live -> .versions/<n>."""
    target = tmp_path / "tls"
    target.mkdir()
    for round_, name in enumerate("abab", start=1):
        proc = two.run("export", name, "--dir", str(target), "--key-mode", "0640")
        assert proc.returncode == 0, proc.stderr
        assert served(target) == name
        for filename in SERVED:
            assert os.readlink(target / filename) == f".live/{filename}"
        assert os.readlink(target / ".live") == f".versions/{round_}"
        kept = sorted(e for e in os.listdir(target / ".versions") if e != ".lock")
        assert kept == [str(n) for n in range(max(1, round_ - 1), round_ + 1)]
        current = target / ".versions" / str(round_)
        assert stat.S_IMODE((current / "privkey.pem").stat().st_mode) == 0o640
        assert stat.S_IMODE((current / "cert.pem").stat().st_mode) == 0o644
        assert stat.S_IMODE(current.stat().st_mode) == 0o755
    assert sorted(e for e in os.listdir(target) if not e.startswith(".")) == sorted(SERVED)


def test_old_export_is_taken_over_without_a_mixed_instant(
    two: Certctl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "tls"
    start(two, target, "old files")
    inode = (target / "privkey.pem").stat().st_ino
    with watched(monkeypatch, target) as watch:
        result = two.invoke("export", "b", "--dir", str(target))
    assert result.exit_code == 0, result.stderr
    assert watch.problems == []
    assert served(target) == "b" and leftovers(target) == []
    previous = target / ".versions" / "1" / "privkey.pem"
    assert previous.stat().st_ino == inode  # the old files were kept as they were


def test_symlinked_versions_directory_is_refused(two: Certctl, tmp_path: Path) -> None:
    target = tmp_path / "tls"
    target.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (target / ".versions").symlink_to(elsewhere)
    proc = two.run("export", "a", "--dir", str(target))
    assert proc.returncode == 2 and ".versions" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert os.listdir(elsewhere) == [] and sorted(os.listdir(target)) == [".versions"]
