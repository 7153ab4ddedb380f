"""What both DNS-01 publishers share: publish, wait until served, remove exactly what was added.

They publish `_acme-challenge` TXT records (at a CNAME's target when the name is
delegated), wait until every authoritative server serves them, and remove
exactly the values they added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dns.name

from certctl.challenges.dns import protocol
from certctl.challenges.dns.protocol import Expectation, Server, show
from certctl.challenges.dns.settings import settings_for
from certctl.errors import CertctlError
from certctl.models import Challenge
from certctl.reporting import Reporter

GIVEN = "given with --dns-nameserver"


@dataclass(frozen=True)
class Record:
    """One TXT value certctl publishes: where, in which zone, for which domain."""

    domain: str
    name: dns.name.Name
    value: str
    zone: dns.name.Name | None = None


def dns_challenges(challenges: list[Challenge]) -> list[Challenge]:
    return [c for c in challenges if c.type == "dns-01"]


class Publisher:
    """Shared flow: publish, wait for every authoritative server, remove exactly what was added."""

    waits_for_propagation = True  # present() polls every authoritative server

    def __init__(self, settings: Mapping[str, Any], method: str, reporter: Reporter) -> None:
        self.settings = settings_for(method, settings)
        self.reporter = reporter
        self.nameservers = [
            protocol.parse_server(s, "--dns-nameserver")
            for s in self.settings.get("nameservers", [])
        ]
        self.timeout = float(self.settings["propagation_timeout"])
        self._added: list[Record] = []

    def present(self, challenges: list[Challenge]) -> None:
        """Publish every dns-01 value, then wait until all authoritative servers serve them."""
        todo = dns_challenges(challenges)
        if not todo:
            return
        try:
            self._publish(todo)
            expectations = self._expectations()
            count = len({e.server for e in expectations})
            names = ", ".join(sorted({show(e.name) for e in expectations}))
            self.reporter.info(
                f"waiting up to {self.timeout:g}s until TXT {names} is served by"
                f" {protocol.describe_servers(expectations)}"
            )
            with self.reporter.status(
                f"waiting until {count} name server(s) serve the TXT records"
                f" (up to {self.timeout:g}s)"
            ):
                protocol.wait_until_served(expectations, self.timeout)
        except CertctlError as e:
            problems = self._remove()
            if problems:
                raise type(e)(f"{e}; also {'; '.join(problems)}") from e
            raise

    def cleanup(self, challenges: list[Challenge]) -> None:
        """Remove what present() added; a failure is a warning, the certificate is fine."""
        for problem in self._remove():
            self.reporter.warn(problem)

    def _publish(self, challenges: list[Challenge]) -> None:
        raise NotImplementedError

    def _unpublish(self, records: list[Record]) -> None:
        raise NotImplementedError

    def _servers_of(self, record: Record) -> tuple[str, list[Server], str]:
        """The zone's name, the servers that must serve `record`, and why those."""
        raise NotImplementedError

    def _expectations(self) -> list[Expectation]:
        """Each (server, name) with the values it must serve."""
        wanted: dict[tuple[Server, dns.name.Name], Expectation] = {}
        for record in self._added:
            zone, servers, source = self._servers_of(record)
            for server in servers:
                key = (server, record.name)
                if key not in wanted:
                    wanted[key] = Expectation(server, zone, record.name, set(), source=source)
                wanted[key].values.add(record.value)
        return list(wanted.values())

    def _remove(self) -> list[str]:
        """Delete every value added so far; return what could not be removed."""
        records, self._added = self._added, []
        if not records:
            return []
        try:
            self._unpublish(records)
        except CertctlError as e:
            names = ", ".join(sorted({show(r.name) for r in records}))
            return [f"could not remove TXT {names} ({e}): remove it by hand"]
        return []
