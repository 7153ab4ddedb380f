"""The command line: click commands, thin; one service call each.

The entry point stays light: `certctl --version` answers before click is
imported, and every command imports what it needs when it runs.
"""

from __future__ import annotations

import sys

from certctl import __version__


def main() -> None:
    """Console-script entry point."""
    open_closed_std_streams()
    if sys.argv[1:] == ["--version"]:
        from certctl.cli.output import OutputError, end_output, write_out

        try:
            write_out(f"certctl, version {__version__}\n", flush=True)
        except OutputError as e:
            sys.exit(end_output(e))
        return
    from certctl.cli.app import cli

    cli(prog_name="certctl")


def open_closed_std_streams() -> None:
    """Give a closed stdin, stdout or stderr /dev/null, as daemons do.

    Supervisors and cron wrappers may start certctl with fd 0, 1 or 2 closed
    (`<&-`, `>&-`). Python then has no sys.stdin (or stdout, stderr), and the next
    file certctl opens (a lock, a key's temp file) would get that number, where
    anything meant for that stream (a child's output) would land. Filling them
    first prevents both.
    """
    import os

    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if opened != fd:  # fds below are open (filled first), so this is rare
                os.dup2(opened, fd)
                os.close(opened)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115


def __getattr__(name: str) -> object:
    """`certctl.cli.cli` and `build_context` without importing click up front."""
    if name == "cli":
        from certctl.cli import app

        return app.cli
    if name == "build_context":
        from certctl.cli import runtime

        return runtime.build_context
    raise AttributeError(name)
