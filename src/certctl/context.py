"""Everything with side effects, built once by the CLI and replaced by tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from certctl.config import Settings
from certctl.reporting import QuietReporter, Reporter
from certctl.store.contract import CertStore

if TYPE_CHECKING:
    from certctl.acme.session import AcmeSession


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


@dataclass
class Context:
    """The run's store, settings, clock, reporter and ACME session factory."""

    store: CertStore
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
