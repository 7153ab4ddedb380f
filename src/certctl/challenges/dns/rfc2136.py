"""DNS-01 by RFC 2136 dynamic update, signed with TSIG (RFC 8945)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dns.name

from certctl.challenges.dns import protocol
from certctl.challenges.dns.protocol import Server, TsigKey, show
from certctl.challenges.dns.publisher import GIVEN, Publisher, Record
from certctl.models import Challenge
from certctl.reporting import Reporter


class Rfc2136Solver(Publisher):
    """Publish through TSIG-signed dynamic updates (RFC 2136, RFC 8945) to one primary server."""

    def __init__(self, settings: Mapping[str, Any], reporter: Reporter) -> None:
        super().__init__(settings, "rfc2136", reporter)
        self.server = protocol.parse_server(self.settings["server"], "--dns-server")
        self.zone = self.settings.get("zone")
        self._zones: dict[dns.name.Name, list[Server]] = {}

    def check(self) -> None:
        """Before an order is placed: the secret must still be readable."""
        self._key()

    def _key(self) -> TsigKey:
        secret = protocol.read_secret(
            self.settings.get("tsig_secret_file"), self.settings.get("tsig_secret_env")
        )
        return TsigKey(self.settings["tsig_key"], self.settings["tsig_algorithm"], secret)

    def _publish(self, challenges: list[Challenge]) -> None:
        key = self._key()
        located: dict[str, tuple[dns.name.Name, dns.name.Name]] = {}
        records = []
        for challenge in challenges:
            if challenge.record_name not in located:
                name = protocol.follow_cname(challenge.record_name, self.server)
                zone = dns.name.from_text(self.zone) if self.zone else None
                located[challenge.record_name] = (
                    name,
                    zone or protocol.find_zone(self.server, name),
                )
            name, zone = located[challenge.record_name]
            records.append(Record(challenge.domain, name, challenge.validation, zone))
        for zone in dict.fromkeys(r.zone for r in records):
            assert zone is not None
            batch = [r for r in records if r.zone == zone]
            try:
                protocol.update_txt(self.server, zone, key, [(r.name, r.value) for r in batch])
            except protocol.Unreachable:
                self._added += batch  # no answer: it may have been applied; remove it too
                raise
            self._added += batch
            names = ", ".join(sorted({show(r.name) for r in batch}))
            self.reporter.info(f"added TXT {names} in zone {show(zone)} at {self.server}")

    def _unpublish(self, records: list[Record]) -> None:
        key = self._key()
        for zone in dict.fromkeys(r.zone for r in records):
            assert zone is not None
            batch = [(r.name, r.value) for r in records if r.zone == zone]
            protocol.update_txt(self.server, zone, key, batch, delete=True)

    def _servers_of(self, record: Record) -> tuple[str, list[Server], str]:
        assert record.zone is not None
        if self.nameservers:
            return show(record.zone), self.nameservers, GIVEN
        if record.zone not in self._zones:
            self._zones[record.zone] = protocol.zone_nameservers(self.server, record.zone)
        why = (
            f"the NS records of zone {show(record.zone)} at the update server {self.server},"
            " at port 53"
        )
        return show(record.zone), self._zones[record.zone], why
