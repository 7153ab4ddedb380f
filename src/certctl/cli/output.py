"""Writing to stdout and stderr, and what happens when they fail (no click, no rich).

stdout carries the result, so failing to write it ends the run: a reader that
went away (`certctl list | head -1`) ends it quietly with 141, as it ends any
Unix tool killed by SIGPIPE; any other failure (a full disk) is one error line
and exit 1. stderr carries diagnostics only: failing to write them never stops
an operation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from typing import IO

CLOSED_PIPE = 141  # 128 + SIGPIPE: what the shell reports for a tool whose reader left


class OutputError(Exception):
    """stdout could not be written; the edge ends the run on it."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))
        self.error = error

    @property
    def closed_pipe(self) -> bool:
        """True when the reader has gone (EPIPE): not worth a message."""
        return self.error.errno == errno.EPIPE


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Turn an OSError while writing stdout into OutputError."""
    try:
        yield
    except OSError as e:
        raise OutputError(e) from e


def write_out(text: str, flush: bool = False) -> None:
    """Text on stdout."""
    with writing():
        sys.stdout.write(text)
        if flush:
            sys.stdout.flush()


def write_out_bytes(data: bytes) -> None:
    """Bytes on stdout, exactly (PEM as stored)."""
    with writing():
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def flush_out() -> None:
    """Flush stdout now, where a failure can still be reported (not at interpreter exit)."""
    with writing():
        sys.stdout.flush()


def write_err(text: str) -> None:
    """Diagnostics on stderr, best effort: a broken stderr never stops an operation."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(text)
        sys.stderr.flush()


def is_terminal(stream: IO[str] | None) -> bool:
    """stream.isatty(), False for a missing or closed stream."""
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):
        return False


def end_output(error: OutputError) -> int:
    """Report a failed stdout (unless the reader just left); the exit code to end with.

    What is still buffered for stdout goes to /dev/null, so the interpreter's own
    final flush neither fails again nor prints a traceback.
    """
    where = "standard output"
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        fd = -1
    if fd >= 0:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("/"):  # not "pipe:[...]" or "socket:[...]"
                where = target
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
    if error.closed_pipe:
        return CLOSED_PIPE
    write_err(f"error: cannot write the output to {where}: {error}\n")
    return 1
