"""One error root carrying its exit code; mapped to a one-line message at the CLI edge."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes shared by every command (README: "Exit codes")."""

    OK = 0
    FAILED = 1  # the operation failed: CA refused, network, hook failed
    USAGE = 2  # bad usage or bad input; nothing was changed
    NOT_YET = 3  # retry later: challenge not visible yet, lock held


class CertctlError(Exception):
    """Root of every error certctl reports to the user."""

    exit_code: ExitCode = ExitCode.FAILED


class BadInput(CertctlError):
    """The user gave something unusable; nothing was changed."""

    exit_code = ExitCode.USAGE


class Declined(CertctlError):
    """The user answered "no" at a prompt: nothing was done, and nothing failed."""

    exit_code = ExitCode.OK


class NotFound(BadInput):
    """A named certificate or order does not exist."""


class NotYet(CertctlError):
    """Nothing is wrong, but the step cannot complete now: retry later."""

    exit_code = ExitCode.NOT_YET


class LockHeld(NotYet):
    """Another certctl holds the lock this run needs."""


class OperationFailed(CertctlError):
    """The CA, the network, a hook or the file system failed the operation."""

    exit_code = ExitCode.FAILED


class AcmeError(OperationFailed):
    """The ACME CA refused or failed a request; carries the CA's own detail."""


class StoreError(OperationFailed):
    """The store on disk is damaged or could not be written."""


class StoreUnavailable(NotYet):
    """The shared store's server is down, unreachable or dropped the connection: retry later."""
