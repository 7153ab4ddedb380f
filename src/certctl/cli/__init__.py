"""The command line: click commands, thin; one service call each.

The entry point stays light: `certctl --version` answers before click is
imported, and every command imports what it needs when it runs.
"""

from __future__ import annotations

import sys

from certctl import __version__


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:] == ["--version"]:
        sys.stdout.write(f"certctl, version {__version__}\n")
        return
    from certctl.cli.app import cli

    cli(prog_name="certctl")


def __getattr__(name: str) -> object:
    """`certctl.cli.cli` and `build_context` without importing click up front."""
    if name == "cli":
        from certctl.cli import app

        return app.cli
    if name == "build_context":
        from certctl.cli import runtime

        return runtime.build_context
    raise AttributeError(name)
