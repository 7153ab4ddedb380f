"""The `list` use case: every certificate in the store with its state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from certctl.context import Context
from certctl.models import SOURCE_UPLOAD, CertRecord
from certctl.policy.names import unicode_domain
from certctl.policy.timing import status_of
from certctl.store.contract import Deployment


@dataclass
class ListEntry:
    """One row of `certctl list`."""

    name: str
    domains: list[str]
    issuer: str | None
    not_after: datetime | None
    days_left: float | None
    method: str
    source: str
    state: str
    reason: str
    profile: str | None = None
    live_version: int | None = None
    deployments: list[Deployment] = field(default_factory=list)  # fleet: host → version

    @property
    def deployed(self) -> str:
        """The fleet column: hosts on the live version out of all that deployed it."""
        if not self.deployments:
            return "-"
        current = sum(1 for d in self.deployments if d.version == self.live_version)
        total = len(self.deployments)
        return f"{total} host(s)" if current == total else f"{current}/{total} current"

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of one `list --json` entry."""
        return {
            "name": self.name,
            "domains": self.domains,
            "unicode_domains": [unicode_domain(d) for d in self.domains],
            "issuer": self.issuer,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "days_left": None if self.days_left is None else round(self.days_left, 2),
            "renewal": self.method,
            "source": self.source,
            "profile": self.profile,
            "state": self.state,
            "reason": self.reason,
            "live_version": self.live_version,
            "deployments": [d.to_json() for d in self.deployments],
        }


def list_certificates(ctx: Context) -> list[ListEntry]:
    """Every certificate in the store with its state; damaged entries are listed, not fatal."""
    from certctl.errors import NotFound

    now = ctx.now()
    entries = []
    fleet = ctx.store.all_deployments()
    for name, record in ctx.store.records():
        if isinstance(record, NotFound):
            continue  # a first order interrupted before its metadata was written
        if not isinstance(record, CertRecord):
            entries.append(ListEntry(name, [], None, None, None, "-", "-", "damaged", str(record)))
            continue
        status = status_of(record, now, ctx.settings.notice_days)
        current = record.current
        method = "manual (upload)" if record.source == SOURCE_UPLOAD else record.validation.label
        entries.append(
            ListEntry(
                name=name,
                domains=record.domains,
                issuer=current.issuer if current else None,
                not_after=current.not_after if current else None,
                days_left=status.days_left,
                method=method,
                source=record.source,
                state=status.state,
                reason=status.reason,
                profile=record.profile,
                live_version=current.version if current else None,
                deployments=fleet.get(name, []),
            )
        )
    return entries
