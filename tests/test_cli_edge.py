"""The command line's edge: closed or failing standard streams, a store that cannot be
written, a directory that is not a store, global options after the subcommand, the
remove prompt, a fresh account and empty environment variables."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from certctl.cli import cli
from certctl.errors import BadInput
from certctl.store import Store
from certctl.store.integrity import check_store
from test_show_remove_export import run_on_terminal

import storeview
from certfactory import make_leaf
from conftest import CERTCTL, Certctl, unique
from pebble import PebbleServer

DEAD_CA = ["--server", "http://127.0.0.1:9/directory"]


@pytest.fixture(autouse=True)
def _fresh_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """render.console() caches a Console per stream id; CliRunner swaps streams per run."""
    from certctl.cli import render

    monkeypatch.setattr(render, "_consoles", {}, raising=False)


def tree(root: Path) -> dict[str, Any]:
    """Every name, type, mode and content below `root` (and root's own mode)."""
    result: dict[str, Any] = {".": stat.S_IMODE(root.lstat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in sorted(dirnames + filenames):
            path = Path(dirpath) / entry
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                result[str(path.relative_to(root))] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                result[str(path.relative_to(root))] = ("dir", stat.S_IMODE(info.st_mode))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                result[str(path.relative_to(root))] = ("file", stat.S_IMODE(info.st_mode), digest)
    return result


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.pem"
    path.write_bytes(make_leaf("www.example.com").bundle_pem())
    return path


@pytest.fixture
def uploaded(offline: Certctl, bundle: Path) -> str:
    """One uploaded certificate named 'shop' in the offline store."""
    proc = offline.run("upload", "shop", "--bundle", str(bundle))
    assert proc.returncode == 0, proc.stderr
    return "shop"


def env_for(certctl: Certctl, **extra: str) -> dict[str, str]:
    env = {**os.environ, **certctl.env(), **extra}
    env.pop("CERTCTL_DEBUG", None)
    return env


def run_with_closed(
    certctl: Certctl, fds: tuple[int, ...], *args: str, **extra_env: str
) -> subprocess.CompletedProcess[bytes]:
    """Run certctl with the given standard file descriptors closed (as `<&- >&- 2>&-` do).

    The streams that stay open are captured (stdin: /dev/null).
    """

    def close() -> None:
        for fd in fds:
            os.close(fd)

    return subprocess.run(
        [*CERTCTL, *args],
        env=env_for(certctl, **extra_env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        preexec_fn=close,  # runs in the child: closes only the child's fds
        timeout=60,
    )


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "internal error" not in lines[0] and "Traceback" not in stderr, stderr
    return lines[0]


# ---- 1. stdin, stdout or stderr closed ------------------------------------------


COMMANDS_OFF_A_TERMINAL = [
    ("list",),
    ("list", "--json"),
    ("renew-due",),
    ("renew-due", "--json"),
    ("doctor",),
    ("show", "shop"),
    ("show", "shop", "--pem"),
    ("set", "shop", "--renew-before", "20"),
]


@pytest.mark.parametrize(
    "fds", [(0,), (1,), (2,), (0, 1, 2)], ids=["stdin", "stdout", "stderr", "all"]
)
@pytest.mark.parametrize("args", COMMANDS_OFF_A_TERMINAL, ids=" ".join)
def test_commands_work_with_a_standard_stream_closed(
    offline: Certctl, uploaded: str, fds: tuple[int, ...], args: tuple[str, ...]
) -> None:
    proc = run_with_closed(offline, fds, *args)
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert "error" not in stderr and "Traceback" not in stderr
    if 1 not in fds and args != ("renew-due",):  # renew-due is silent with nothing to do
        assert proc.stdout
    if 2 not in fds and 1 not in fds and args[0] in ("list", "show"):
        assert uploaded.encode() in proc.stdout or b"BEGIN CERTIFICATE" in proc.stdout


@pytest.mark.parametrize(
    "fds", [(0,), (1,), (2,), (0, 1, 2)], ids=["stdin", "stdout", "stderr", "all"]
)
def test_remove_and_upload_work_with_a_standard_stream_closed(
    offline: Certctl, uploaded: str, bundle: Path, fds: tuple[int, ...]
) -> None:
    proc = run_with_closed(offline, fds, "remove", uploaded, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert storeview.names(offline) == []
    proc = run_with_closed(offline, fds, "upload", "again", "--bundle", str(bundle))
    assert proc.returncode == 0, proc.stderr
    assert storeview.names(offline) == ["again"]


def test_remove_without_yes_and_stdin_closed_refuses(offline: Certctl, uploaded: str) -> None:
    proc = run_with_closed(offline, (0,), "remove", uploaded)
    assert proc.returncode == 2
    assert "add --yes" in one_error_line(proc.stderr.decode())
    assert storeview.names(offline) == [uploaded]


def test_a_store_written_with_the_streams_closed_is_healthy(offline: Certctl, bundle: Path) -> None:
    """Files certctl opens while fds 0-2 are closed don't take their numbers."""
    proc = run_with_closed(offline, (0, 1, 2), "upload", "shop", "--bundle", str(bundle))
    assert proc.returncode == 0
    proc = run_with_closed(
        offline, (0, 1, 2), "upload", "shop", "--bundle", str(bundle), "--replace"
    )
    assert proc.returncode == 0
    assert storeview.findings(offline) == []
    assert storeview.versions(offline, "shop") == [1, 2]


# ---- 2. a closed pipe ------------------------------------------------------------


def run_into_closed_pipe(
    certctl: Certctl, *args: str, **extra_env: str
) -> subprocess.CompletedProcess[bytes]:
    """stdout is a pipe whose reader has gone (`certctl ... | head -1` once head is done)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*CERTCTL, *args],
            env=env_for(certctl, **extra_env),
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("list", "--json"),
        ("show", "shop"),
        ("show", "shop", "--json"),
        ("show", "shop", "--pem"),
        ("doctor",),
        ("--help",),
        ("list", "--help"),
        ("--version",),
    ],
    ids=" ".join,
)
def test_closed_pipe_ends_quietly_with_141(
    offline: Certctl, uploaded: str, args: tuple[str, ...]
) -> None:
    proc = run_into_closed_pipe(offline, *args)
    assert proc.stderr == b""
    assert proc.returncode == 141


def test_list_of_many_certificates_into_head(offline: Certctl, bundle: Path) -> None:
    storeview.ensure(offline)
    for n in range(300):
        assert offline.invoke("upload", f"site-{n:03}", "--bundle", str(bundle)).exit_code == 0
    proc = subprocess.run(
        f"{' '.join(CERTCTL)} list | head -1; echo ${{PIPESTATUS[0]}} >&2",
        shell=True,
        executable="/bin/bash",
        env=env_for(offline),
        capture_output=True,
        timeout=120,
    )
    assert proc.stdout.split()[0] == b"NAME"
    assert proc.stderr.strip() in (b"0", b"141")  # 0 only if everything fit before head left
    assert b"error" not in proc.stderr


@pytest.mark.pebble
def test_account_show_into_a_closed_pipe(certctl: Certctl) -> None:
    proc = certctl.run("account", "register", "--agree-tos")
    assert proc.returncode == 0, proc.stderr
    proc = run_into_closed_pipe(certctl, "account", "show")
    assert (proc.returncode, proc.stderr) == (141, b"")


# ---- 3. output to a full disk, a read-only store ----------------------------------


@pytest.mark.parametrize(
    "args",
    [("list",), ("list", "--json"), ("show", "shop"), ("show", "shop", "--pem"), ("--help",)],
    ids=" ".join,
)
def test_output_to_a_full_disk_is_one_error_line(
    offline: Certctl, uploaded: str, args: tuple[str, ...]
) -> None:
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [*CERTCTL, *args],
            env=env_for(offline),
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    line = one_error_line(proc.stderr.decode())
    assert line == (f"error: cannot write the output to /dev/full: {os.strerror(errno.ENOSPC)}"), (
        line
    )
    assert proc.returncode == 1


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[str]:
    """Make `directory` unwritable for certctl; yields the strerror certctl will meet.

    As root (CI): a read-only bind mount (EROFS, root is not exempt). Otherwise the
    directories lose their write permission (EACCES).
    """
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "--bind", str(directory), str(directory)])
        if mounted.returncode == 0:
            remount = subprocess.run(
                ["mount", "-o", "remount,ro,bind", str(directory)], capture_output=True
            )
            try:
                assert remount.returncode == 0, remount.stderr
                yield os.strerror(errno.EROFS)
            finally:
                subprocess.run(["umount", str(directory)], check=True)
            return
        if os.environ.get("CI") == "true":
            pytest.fail("cannot make a read-only bind mount as root under CI=true")
        pytest.skip("a read-only store needs a bind mount (root) or a non-root user")
    dirs = [directory, *(p for p in directory.rglob("*") if p.is_dir() and not p.is_symlink())]
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in dirs}
    for p in dirs:
        os.chmod(p, 0o500)
    try:
        yield os.strerror(errno.EACCES)
    finally:
        for p, m in modes.items():
            os.chmod(p, m)


@pytest.mark.parametrize(
    "args",
    [
        ("upload", "other", "--bundle", "{bundle}"),
        ("upload", "shop", "--bundle", "{bundle}", "--replace"),
        ("remove", "shop", "--yes"),
        ("set", "shop", "--renew-before", "20"),
        ("order", "-d", "ro.example.com", "--agree-tos", *DEAD_CA),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_read_only_store_is_one_line_naming_the_path(
    offline: Certctl,
    uploaded: str,
    bundle: Path,
    args: tuple[str, ...],
    request: pytest.FixtureRequest,
) -> None:
    before = storeview.snapshot(offline)
    argv = [a.replace("{bundle}", str(bundle)) for a in args]
    with storeview.read_only(offline, request, read_only) as cause:
        proc = offline.run(*argv)
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc.stderr)
    assert offline.location in line and cause in line, line
    assert storeview.snapshot(offline) == before


def test_reading_commands_work_on_a_read_only_store(
    offline: Certctl, uploaded: str, request: pytest.FixtureRequest
) -> None:
    with storeview.read_only(offline, request, read_only):
        for args in (("list",), ("show", "shop"), ("doctor",), ("renew-due", "--dry-run")):
            proc = offline.run(*args)
            assert proc.returncode == 0, (args, proc.stderr)
            assert "error" not in proc.stderr


@pytest.mark.pebble
def test_obtain_on_a_read_only_store(
    certctl: Certctl, pebble: PebbleServer, bundle: Path, request: pytest.FixtureRequest
) -> None:
    proc = certctl.run("upload", "shop", "--bundle", str(bundle))
    assert proc.returncode == 0, proc.stderr
    before = storeview.snapshot(certctl)
    args = ["obtain", "-d", unique("ro"), "--standalone", "--http-port", str(pebble.http_port)]
    with storeview.read_only(certctl, request, read_only) as cause:
        proc = certctl.run(*args, "--agree-tos")
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc.stderr)
    assert certctl.location in line and cause in line, line
    assert storeview.snapshot(certctl) == before


def test_store_root_whose_parent_is_read_only(
    offline: Certctl, tmp_path: Path, bundle: Path
) -> None:
    parent = tmp_path / "ro-parent"
    parent.mkdir()
    store = parent / "store"
    with read_only(parent) as cause:
        proc = Certctl(store, None).run("upload", "shop", "--bundle", str(bundle))
    assert proc.returncode == 1
    line = one_error_line(proc.stderr)
    assert str(store) in line and cause in line, line
    assert not store.exists()


def test_an_os_error_no_handler_expected_is_still_one_line(
    offline: Certctl, tmp_path: Path
) -> None:
    """An OSError the specific handlers miss never reaches the "internal error" path."""
    afile = tmp_path / "afile"
    afile.write_text("")
    proc = offline.run("list", "--config", str(afile / "config.toml"))
    assert proc.returncode in (1, 2)
    line = one_error_line(proc.stderr)
    assert str(afile / "config.toml") in line and os.strerror(errno.ENOTDIR) in line, line


def test_a_store_below_a_file_is_refused(offline: Certctl, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    for args in (("list",), ("doctor",), ("show", "x")):
        proc = Certctl(afile / "store", None).run(*args)
        assert proc.returncode == 2, proc.stderr
        assert f"{afile} is not a directory" in one_error_line(proc.stderr)
    assert afile.read_text() == ""


# ---- 4. bare certctl -----------------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("account",)], ids=["certctl", "certctl account"])
def test_bare_group_prints_its_help_not_an_error(offline: Certctl, args: tuple[str, ...]) -> None:
    proc = offline.run(*args)
    assert proc.returncode == 2  # as click does: no command is a usage error
    assert "error:" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.startswith(f"Usage: certctl {' '.join(args)}".rstrip() + " [OPTIONS]")
    assert "Commands:" in proc.stderr
    assert not storeview.exists(offline)


# ---- 5. global options after the subcommand -----------------------------------------


def test_store_after_the_subcommand(offline: Certctl, uploaded: str, tmp_path: Path) -> None:
    other = tmp_path / "other"
    env = {"CERTCTL_STORE": str(other)}
    proc = offline.run("list", "--store", offline.location, "--json", extra_env=env)
    assert proc.returncode == 0, proc.stderr
    assert '"shop"' in proc.stdout
    # the value given last wins, wherever it is
    proc = offline.run(
        "--store", str(other), "list", "--store", offline.location, "--json", extra_env=env
    )
    assert '"shop"' in proc.stdout
    proc = offline.run(
        "--store", offline.location, "list", "--store", str(other), "--json", extra_env=env
    )
    assert proc.returncode == 0 and '"shop"' not in proc.stdout
    # the subcommand's copy reads no environment: CERTCTL_STORE does not beat --store
    proc = offline.run("--store", offline.location, "list", "--json", extra_env=env)
    assert '"shop"' in proc.stdout


def test_every_global_option_after_the_subcommand(offline: Certctl, uploaded: str) -> None:
    proc = offline.run("show", "nosuch", "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    proc = offline.run("verify", "nosuch", "--resolver", "127.0.0.1:5353")
    assert proc.returncode == 2 and "no certificate named 'nosuch'" in proc.stderr
    proc = offline.run("verify", "nosuch", "--resolver", "not-an-ip")
    assert proc.returncode == 2 and "not-an-ip" in proc.stderr
    proc = offline.run("show", "shop", "--config", "/nonexistent/config.toml")
    assert proc.returncode == 2 and "/nonexistent/config.toml" in proc.stderr
    proc = offline.run("list", "--ca-bundle", "/nonexistent/ca.pem")
    assert proc.returncode == 2 and "/nonexistent/ca.pem" in proc.stderr
    proc = offline.run("list", "--check-http-port", "0")
    assert proc.returncode == 2 and "--check-http-port" in proc.stderr
    proc = offline.run("account", "show", "--offline", "--server", "http://127.0.0.1:9/x")
    assert "No such option" not in proc.stderr
    proc = offline.run("account", "--server", "http://127.0.0.1:9/x", "show", "--offline")
    assert "No such option" not in proc.stderr


def test_global_options_in_subcommand_help(offline: Certctl) -> None:
    result = CliRunner().invoke(cli, ["list", "--help"])
    assert result.exit_code == 0
    options, _, globals_ = result.stdout.partition("Global options:")
    assert "--json" in options and "--store" not in options
    for option in ("--store", "--config", "--server", "--ca-bundle", "--resolver", "--debug"):
        assert option in globals_
    assert "--check-http-port" in globals_
    top = CliRunner().invoke(cli, ["--help"]).stdout
    assert "Global options:" not in top and "--store" in top


def complete(words: str, cword: int, store: Path | None = None) -> list[str]:
    env = {"COMP_WORDS": words, "COMP_CWORD": str(cword), "_CERTCTL_COMPLETE": "bash_complete"}
    if store is not None:
        env["CERTCTL_STORE"] = str(store)
    result = CliRunner().invoke(cli, [], prog_name="certctl", env=env)
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


def test_global_options_complete_after_the_subcommand(offline: Certctl, uploaded: str) -> None:
    assert "--store" in complete("certctl list --st", 2)
    assert "--debug" in complete("certctl account show --de", 3)
    at = offline.location
    assert complete(f"certctl remove --store {at} s", 4) == ["shop"]
    assert complete(f"certctl --store /nonexistent remove --store {at} s", 6) == ["shop"]


# ---- 6. "n" at the remove prompt ----------------------------------------------------


def test_answering_no_leaves_it_and_exits_0(offline: Certctl, uploaded: str) -> None:
    before = storeview.snapshot(offline)
    code, output = run_on_terminal(offline, ["remove", uploaded], "n")
    assert code == 0, output
    assert f"{uploaded!r} was not removed: left as it was" in output
    assert "error" not in output
    assert storeview.snapshot(offline) == before


def test_declining_deactivate_exits_0(offline: Certctl) -> None:
    code, output = run_on_terminal(offline, [*DEAD_CA, "account", "deactivate"], "n")
    assert code == 0, output
    assert "left as it was" in output and "error" not in output


# ---- 7. a directory that is not a certctl store -------------------------------------


@pytest.fixture
def webroot(tmp_path: Path) -> Path:
    directory = tmp_path / "html"
    directory.mkdir()
    (directory / "index.html").write_text("<h1>hello</h1>")
    os.chmod(directory, 0o755)
    return directory


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("list", "--json"),
        ("doctor",),
        ("doctor", "--json"),
        ("show", "shop"),
        ("renew-due",),
        ("remove", "shop", "--yes"),
        ("set", "shop", "--renew-before", "20"),
        ("upload", "shop", "--bundle", "{bundle}"),
        ("export", "shop", "--dir", "{out}"),
        ("order", "-d", "x.example.com", "--agree-tos", *DEAD_CA),
        ("account", "show", "--offline"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_directory_that_is_not_a_store_is_refused_untouched(
    webroot: Path, bundle: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before = tree(webroot)
    argv = [a.replace("{bundle}", str(bundle)).replace("{out}", str(out)) for a in args]
    proc = Certctl(webroot, None).run(*argv)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    assert f"{webroot} is not a certctl store" in line, line
    assert proc.stdout == ""
    assert tree(webroot) == before
    assert list(out.iterdir()) == []


def test_store_api_refuses_a_foreign_directory(webroot: Path) -> None:
    before = tree(webroot)
    with pytest.raises(BadInput, match="not a certctl store"):
        Store(webroot).check()
    with pytest.raises(BadInput, match="not a certctl store"):
        Store(webroot).ensure()
    findings = check_store(Store(webroot))
    assert [(f.severity, f.path) for f in findings] == [("error", str(webroot))]
    assert "not a certctl store" in findings[0].problem
    assert tree(webroot) == before


def test_an_empty_directory_becomes_a_store(tmp_path: Path, bundle: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    os.chmod(empty, 0o755)
    proc = Certctl(empty, None).run("list")
    assert proc.returncode == 0, proc.stderr
    assert list(empty.iterdir()) == [] and stat.S_IMODE(empty.stat().st_mode) == 0o755
    proc = Certctl(empty, None).run("upload", "shop", "--bundle", str(bundle))
    assert proc.returncode == 0, proc.stderr
    assert (empty / "certctl-store.toml").is_file()
    assert stat.S_IMODE(empty.stat().st_mode) == 0o700


def test_an_interrupted_store_creation_is_still_a_store(tmp_path: Path, bundle: Path) -> None:
    """A crash while the marker was being written leaves only certctl's own leftovers."""
    root = tmp_path / "store"
    root.mkdir(mode=0o700)
    (root / ".certctl-store.toml.tmp-0badf00d").write_text("")
    proc = Certctl(root, None).run("upload", "shop", "--bundle", str(bundle))
    assert proc.returncode == 0, proc.stderr
    assert Store(root).names() == ["shop"]


# ---- 8. a fresh account; empty environment variables --------------------------------


def test_first_run_creates_the_missing_parents(tmp_path: Path, bundle: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CERTCTL_", "XDG_"))}
    env.update(HOME=str(home), CERTCTL_CONFIG=os.devnull, NO_COLOR="1")
    proc = subprocess.run(
        [*CERTCTL, "upload", "shop", "--bundle", str(bundle)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    store = home / ".local" / "share" / "certctl"
    assert Store(store).names() == ["shop"]
    assert stat.S_IMODE(store.stat().st_mode) == 0o700


@pytest.mark.parametrize("variable", ["CERTCTL_STORE", "CERTCTL_CONFIG", "CERTCTL_CA_BUNDLE"])
def test_an_empty_path_variable_is_refused(offline: Certctl, tmp_path: Path, variable: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proc = offline.run("list", extra_env={variable: "", "HOME": str(home)})
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    assert f"{variable} is set but empty" in line and "unset it" in line, line
    assert list(home.iterdir()) == []
    assert not storeview.exists(offline)


def test_an_empty_variable_is_fine_when_the_option_is_given(
    offline: Certctl, uploaded: str
) -> None:
    proc = offline.run("list", "--store", offline.location, extra_env={"CERTCTL_STORE": ""})
    assert proc.returncode == 0, proc.stderr
    assert "shop" in proc.stdout


def test_subprocess_baseline_sanity() -> None:
    """The interpreter the tests start is the one with this tree on its path."""
    assert Path(sys.executable).exists()
