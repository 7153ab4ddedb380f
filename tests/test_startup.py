"""Commands that don't talk to a CA must not load the ACME stack (fast start-up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("acme", "josepy", "requests", "urllib3", "dns.resolver", "rich.table")

PROBE = """
import json, sys
from certctl.cli import main
sys.argv = ["certctl", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nMODULES=" + json.dumps(sorted(sys.modules)) + "\\n")
"""


def loaded_modules(store: Path, *args: str) -> set[str]:
    """The modules a fresh certctl process imported to run `args`."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={
            "CERTCTL_STORE": str(store),
            "CERTCTL_CONFIG": "/dev/null",
            "PATH": "/usr/bin",
            # the certctl under test (a worktree's src/), not whichever the venv installed
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        },
        timeout=60,
    )
    marker = proc.stderr.rsplit("MODULES=", 1)
    assert len(marker) == 2, proc.stderr
    return set(json.loads(marker[1]))


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("--help",),
        ("list",),
        ("list", "--json"),
        ("doctor",),
        ("set", "-h"),
        ("store", "--help"),
        ("store", "init-key", "-h"),
    ],
)
def test_no_acme_stack_without_a_ca(tmp_path: Path, args: tuple[str, ...]) -> None:
    modules = loaded_modules(tmp_path / "store", *args)
    assert "certctl" in modules
    assert not [m for m in HEAVY if m in modules], sorted(m for m in HEAVY if m in modules)


def test_version_does_not_even_load_click(tmp_path: Path) -> None:
    assert "click" not in loaded_modules(tmp_path / "store", "--version")


LEXICON = ("lexicon", "tldextract")


@pytest.mark.parametrize(
    "args",
    [("--help",), ("list",), ("order", "--help"), ("obtain", "--help"), ("dns", "--help")],
)
def test_dns_lexicon_not_loaded_by_other_commands(tmp_path: Path, args: tuple[str, ...]) -> None:
    modules = loaded_modules(tmp_path / "store", *args)
    assert "certctl" in modules
    assert not [m for m in LEXICON if m in modules]


def test_dns_lexicon_loaded_only_by_its_own_method(tmp_path: Path) -> None:
    """Every other solver is built without lexicon; `dns providers` does load it (control)."""
    assert "lexicon" in loaded_modules(tmp_path / "store", "dns", "providers")
    hook = tmp_path / "hook"
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)
    secret = tmp_path / "tsig.key"
    secret.write_text("c2VjcmV0\n")
    probe = f"""
import json, sys
from certctl.challenges import make_solver
from certctl.models import Validation
from certctl.reporting import QuietReporter
cases = [
    Validation("http", "standalone", http_port=8080),
    Validation("http", "webroot", webroot="{tmp_path}"),
    Validation("http", "manual"),
    Validation("dns", "manual"),
    Validation("dns", "hook", settings={{"hook": "{hook}"}}),
    Validation("dns", "rfc2136", settings={{"server": "127.0.0.1", "tsig_key": "k",
                                           "tsig_secret_file": "{secret}"}}),
]
for validation in cases:
    make_solver(validation, QuietReporter())
print(json.dumps(sorted(sys.modules)))
"""
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout))
    assert "certctl.challenges.dns.rfc2136" in modules  # the probe did build the solvers
    assert not [m for m in LEXICON if m in modules]
