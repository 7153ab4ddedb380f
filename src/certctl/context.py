"""Everything with side effects, built once by the CLI and replaced by tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from certctl.config import Settings
from certctl.store import Store

if TYPE_CHECKING:
    from certctl.acme.session import AcmeSession


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


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


@dataclass
class Context:
    """The run's store, settings, clock, reporter and ACME session factory."""

    store: Store
    settings: Settings
    reporter: Reporter = field(default_factory=QuietReporter)
    clock: Callable[[], datetime] = utc_now
    interactive: bool = False
    _local: threading.local = field(default_factory=threading.local)

    def now(self) -> datetime:
        """The current time from the injected clock."""
        return self.clock()

    def acme(self, server: str | None = None) -> AcmeSession:
        """An ACME session for `server` (default: the configured CA), created lazily."""
        from certctl.acme.session import AcmeSession

        url = server or self.settings.server_url
        sessions: dict[str, AcmeSession] = self._local.__dict__.setdefault("sessions", {})
        if url not in sessions:  # one per thread: requests sessions and nonces aren't shared
            sessions[url] = AcmeSession(
                url, ca_bundle=self.settings.ca_bundle, timeout=self.settings.timeout
            )
        return sessions[url]
