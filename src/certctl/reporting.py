"""How use cases and solvers talk to the user: warnings, progress and waiting, injected."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Reporter(Protocol):
    """Where services send warnings and progress (the CLI renders them on stderr)."""

    def warn(self, message: str) -> None:
        """A warning the user should read."""

    def info(self, message: str) -> None:
        """A progress line."""

    def status(self, message: str) -> AbstractContextManager[None]:
        """A spinner or progress indicator while waiting."""


class QuietReporter:
    """A reporter that records messages instead of printing them (tests, JSON)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def warn(self, message: str) -> None:
        """Record a warning."""
        self.messages.append(message)

    def info(self, message: str) -> None:
        """Record progress."""
        self.messages.append(message)

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        """Record the waiting message."""
        self.messages.append(message)
        yield
