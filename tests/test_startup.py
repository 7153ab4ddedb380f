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
