"""The `list` use case: every certificate in the store with its state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from certctl.context import Context
from certctl.policy import glance
from certctl.policy.names import unicode_domain
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
    """Every certificate in the store with its state; damaged entries are listed, not fatal.

    Each row comes from the certificate's summary (policy/glance.py), which the store
    keeps in its index, so a large store is listed without parsing every record.
    """
    from certctl.errors import CertctlError, NotFound

    now = ctx.now()
    notice_days = ctx.settings.notice_days
    entries = []
    fleet = ctx.store.all_deployments()
    summarizer = glance.Summarizer(notice_days, now)
    for found in ctx.store.glances(summarizer):
        name, summary = found.name, found.summary()
        if summary is None or not glance.well_formed(summary):
            try:
                summary = summarizer.at_now(found.load())
            except NotFound:
                continue  # a first order interrupted before its metadata was written
            except CertctlError as e:
                entries.append(ListEntry(name, [], None, None, None, "-", "-", "damaged", str(e)))
                continue
        not_after = summary["not_after"]
        expires = None if not_after is None else datetime.fromisoformat(not_after)
        state, reason = glance.state_at(summary, now)
        entries.append(
            ListEntry(
                name=name,
                domains=summary["domains"],
                issuer=summary["issuer"],
                not_after=expires,
                days_left=None if expires is None else (expires - now).total_seconds() / 86400,
                method=summary["method"],
                source=summary["source"],
                state=state,
                reason=reason,
                profile=summary["profile"],
                live_version=summary["live_version"],
                deployments=fleet.get(name, []),
            )
        )
    return entries
