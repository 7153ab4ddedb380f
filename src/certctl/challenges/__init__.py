"""Challenge solvers: one small interface (present/cleanup, as lego's) and a dict of them."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Protocol

from certctl.errors import BadInput
from certctl.models import Challenge, Validation
from certctl.reporting import Reporter
from certctl.store.contract import CertStore


class Solver(Protocol):
    """Publishes challenge responses and removes them afterwards.

    A solver may also have `check()` (refuse before an order is placed) and
    `waits_for_propagation = True` (present() returns only once every authoritative
    server serves the records, so verify's own DNS self-check is skipped).
    """

    def present(self, challenges: list[Challenge]) -> None:
        """Make the responses visible to the CA."""

    def cleanup(self, challenges: list[Challenge]) -> None:
        """Remove what present() published; must be safe to call after a partial present()."""


def make_solver(
    validation: Validation, reporter: Reporter, store: CertStore | None = None
) -> Solver:
    """The solver for a certificate's validation settings."""

    def http() -> ModuleType:
        from certctl.challenges import http

        return http

    def rfc2136() -> ModuleType:  # imported only when used: it loads the DNS update stack
        from certctl.challenges.dns import rfc2136

        return rfc2136

    def hook() -> ModuleType:
        from certctl.challenges.dns import hook

        return hook

    def providers() -> ModuleType:  # imported only when used: dns-lexicon, the `dns` extra
        from certctl.challenges.dns import providers

        return providers

    def tlsalpn() -> ModuleType:  # imported only when used: it loads ssl and cryptography
        from certctl.challenges import tlsalpn

        return tlsalpn

    def persist() -> ModuleType:
        from certctl.challenges.dns import persist

        return persist

    factories: dict[tuple[str, str], Callable[[], Solver]] = {
        ("dns-persist", "persist"): lambda: persist().PersistSolver(),
        ("tls-alpn", "standalone"): lambda: tlsalpn().TlsAlpnSolver(
            validation.tls_port or 443, store=store
        ),
        ("http", "standalone"): lambda: http().StandaloneSolver(
            validation.http_port or 80, store=store
        ),
        ("http", "webroot"): lambda: http().WebrootSolver(validation.webroot or ""),
        ("http", "fleet"): lambda: FleetSolver(store),
        ("http", "manual"): lambda: ManualSolver(),
        ("dns", "manual"): lambda: ManualSolver(),
        ("dns", "rfc2136"): lambda: rfc2136().Rfc2136Solver(validation.settings, reporter),
        ("dns", "hook"): lambda: hook().HookSolver(validation.settings, reporter),
        ("dns", "lexicon"): lambda: providers().ProviderSolver(validation.settings, reporter),
    }
    factory = factories.get((validation.challenge, validation.method))
    if factory is None:
        raise BadInput(f"unsupported validation method {validation.label!r}")
    solver: Solver = factory()
    return solver


class ManualSolver:
    """The user publishes the responses; nothing to do here."""

    def present(self, challenges: list[Challenge]) -> None:
        """Nothing: the user published them."""

    def cleanup(self, challenges: list[Challenge]) -> None:
        """Nothing: the user removes them."""


class FleetSolver:
    """HTTP-01 behind a load balancer: the responses go into the shared store.

    `certctl serve-challenges` on every host behind the balancer answers them from
    there (challenges/responder.py), so the CA may reach any host.
    """

    def __init__(self, store: CertStore | None) -> None:
        if store is None:
            raise BadInput("--http-fleet needs the store")
        self.store = store

    def present(self, challenges: list[Challenge]) -> None:
        """Publish every response in the store."""
        for challenge in challenges:
            self.store.publish_challenge(challenge.token, challenge.validation.encode())

    def cleanup(self, challenges: list[Challenge]) -> None:
        """Withdraw them (each on its own: one failure doesn't keep the others)."""
        import contextlib

        from certctl.errors import CertctlError

        for challenge in challenges:
            with contextlib.suppress(CertctlError):
                self.store.withdraw_challenge(challenge.token)
