"""The `list` use case: every certificate in the store with its state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certctl.context import Context
from certctl.models import SOURCE_UPLOAD, CertRecord
from certctl.policy.names import unicode_domain
from certctl.policy.timing import status_of


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
        }


def list_certificates(ctx: Context) -> list[ListEntry]:
    """Every certificate in the store with its state; damaged entries are listed, not fatal."""
    from certctl.errors import NotFound

    now = ctx.now()
    entries = []
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
            )
        )
    return entries
