"""Generated and documented things can't drift: help, README reference, completions, version.

Commands are found by walking the click tree, so a command added later (or a group such
as `account` with subcommands) is checked without touching this file.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from certctl import __version__
from certctl.cli import cli

from certfactory import make_leaf
from conftest import Certctl

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMPLETIONS = {
    "bash_source": ROOT / "completions" / "certctl.bash",
    "zsh_source": ROOT / "completions" / "_certctl",
    "fish_source": ROOT / "completions" / "certctl.fish",
}


def walk(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    """Every command path below `group` ("account register", ...), groups included."""
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from walk(command, path + " ")


COMMANDS = dict(walk(cli))


def reference_table() -> str:
    """The rows of the README's command reference table."""
    section = README.split("## Command reference", 1)[1]
    lines = section.strip().splitlines()
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append(line)
    return "\n".join(rows)


def test_walk_finds_the_commands() -> None:
    assert {"order", "verify", "issue", "list", "show", "remove", "export"} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_has_help_with_an_example(path: str) -> None:
    command = COMMANDS[path]
    assert (command.help or "").strip(), f"certctl {path} has no help text"
    assert "Example" in (command.help or ""), f"certctl {path}: help has no Example block"
    assert "\b" in (command.help or ""), f"certctl {path}: the example is not in a \\b block"
    result = CliRunner().invoke(cli, [*path.split(), "--help"], prog_name="certctl")
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_is_in_the_readme_reference(path: str) -> None:
    table = reference_table()
    assert re.search(rf"`certctl {re.escape(path)}[ `]", table), (
        f"`certctl {path}` is missing from the README's command reference table"
    )


def test_version_from_the_package(offline: Certctl) -> None:
    proc = offline.run("--version")  # the fast path: answered before click loads
    assert proc.returncode == 0
    assert proc.stdout == f"certctl, version {__version__}\n"
    result = CliRunner().invoke(cli, ["--version"], prog_name="certctl")
    assert result.exit_code == 0
    assert result.stdout == f"certctl, version {__version__}\n"


def test_debug_shows_a_traceback_otherwise_one_line(offline: Certctl) -> None:
    plain = offline.run("verify", "nosuch")
    assert plain.returncode == 2
    assert plain.stderr.count("\n") == 1 and plain.stderr.startswith("error: ")
    assert "Traceback" not in plain.stderr
    debug = offline.run("--debug", "verify", "nosuch")
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr
    assert debug.stderr.rstrip().endswith(plain.stderr.rstrip())


# ---- shell completions ---------------------------------------------------------


def generated(source: str) -> str:
    result = CliRunner().invoke(cli, [], prog_name="certctl", env={"_CERTCTL_COMPLETE": source})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("source", sorted(COMPLETIONS))
def test_completions_match_what_click_generates(source: str) -> None:
    path = COMPLETIONS[source]
    assert path.is_file(), f"{path} is missing: run scripts/gen-completions.sh"
    assert path.read_text() == generated(source), (
        f"{path.relative_to(ROOT)} is out of date: run scripts/gen-completions.sh"
    )


def complete(words: str, cword: int, store: Path | str | None = None) -> list[str]:
    """Run click's bash completion protocol in-process; the offered values."""
    env = {"COMP_WORDS": words, "COMP_CWORD": str(cword), "_CERTCTL_COMPLETE": "bash_complete"}
    if store is not None:
        env["CERTCTL_STORE"] = str(store)
    result = CliRunner().invoke(cli, [], prog_name="certctl", env=env)
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


@pytest.fixture
def stored_names(offline: Certctl, tmp_path: Path) -> str:
    """Three names in the store; its location (a directory, or a postgresql:// URL)."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(make_leaf("www.example.com").bundle_pem())
    for name in ("shop", "shop-eu", "blog"):
        assert offline.run("upload", name, "--bundle", str(bundle)).returncode == 0
    return offline.location


def test_completion_offers_subcommands_and_options() -> None:
    assert "show" in complete("certctl sh", 1)
    assert {"order", "obtain"} <= set(complete("certctl o", 1))
    assert "--dir" in complete("certctl export shop --", 3)


def test_completion_offers_stored_names(stored_names: str) -> None:
    assert complete("certctl show ", 2, stored_names) == ["blog", "shop", "shop-eu"]
    assert complete("certctl show sh", 2, stored_names) == ["shop", "shop-eu"]
    # every NAME argument, and --store given on the line, not only CERTCTL_STORE
    assert complete(f"certctl --store {stored_names} remove b", 4) == ["blog"]
    assert complete("certctl renew-due --force s", 3, stored_names) == ["shop", "shop-eu"]


def test_completion_never_fails(tmp_path: Path) -> None:
    assert complete("certctl show ", 2, tmp_path / "missing") == []
    (tmp_path / "afile").write_text("x")
    assert complete("certctl show ", 2, tmp_path / "afile") == []


def test_bash_script_completes_through_a_real_bash(stored_names: str, tmp_path: Path) -> None:
    """Source completions/certctl.bash in bash and run its completion function."""
    import sys

    shim = tmp_path / "bin" / "certctl"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m certctl "$@"\n')
    shim.chmod(0o755)
    script = (
        f"source {COMPLETIONS['bash_source']}\n"
        "COMP_WORDS=(certctl show s); COMP_CWORD=2\n"
        "_certctl_completion certctl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env={
            "PATH": f"{shim.parent}:/usr/bin:/bin",
            "CERTCTL_STORE": stored_names,
            # this tree's certctl; a database store's password from the libpq password file
            **{k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "PGPASSFILE")},
        },
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["shop", "shop-eu"]
