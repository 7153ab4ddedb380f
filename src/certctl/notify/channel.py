"""What every notice channel shares: the notice, the Channel interface, secrets from env or file."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from certctl.errors import BadInput

SCHEMA = "certctl.notice/1"
STALE = "stale"  # the state of a notice about a renewed certificate an endpoint does not serve


@dataclass(frozen=True)
class Notice:
    """One warning about one certificate."""

    name: str
    domains: list[str]
    not_after: datetime | None
    days_left: float | None
    state: str
    reason: str
    action: str
    host: str = field(default_factory=lambda: os.uname().nodename)

    @property
    def subject(self) -> str:
        """A one-line summary (the e-mail subject)."""
        if self.state == STALE:
            return f"[certctl] {self.name} is renewed but not served ({', '.join(self.domains)})"
        when = f"{self.days_left:.1f} days" if self.days_left is not None else "unknown"
        if self.days_left is not None and self.days_left <= 0:
            return f"[certctl] {self.name} has EXPIRED ({', '.join(self.domains)})"
        return f"[certctl] {self.name} expires in {when} ({', '.join(self.domains)})"

    def body(self) -> str:
        """The human-readable text."""
        expiry = self.not_after.strftime("%Y-%m-%d %H:%M UTC") if self.not_after else "unknown"
        return (
            f"Certificate: {self.name}\n"
            f"Names:       {', '.join(self.domains)}\n"
            f"Expires:     {expiry}\n"
            f"State:       {self.state}\n"
            f"Why:         {self.reason}\n"
            f"What to do:  {self.action}\n"
            f"Host:        {self.host}\n"
        )

    def to_json(self) -> dict[str, Any]:
        """The documented webhook/command JSON body."""
        data = asdict(self)
        data["not_after"] = self.not_after.isoformat() if self.not_after else None
        data["days_left"] = None if self.days_left is None else round(self.days_left, 2)
        return {"schema": SCHEMA, "subject": self.subject, **data}


class Channel(Protocol):
    """Delivers a notice somewhere; raises OperationFailed when it cannot."""

    label: str

    def send(self, notice: Notice) -> None:
        """Deliver one notice."""


def secret_from(table: dict[str, Any], what: str) -> str | None:
    """Read a secret from `<what>_env` or `<what>_file`; never from the config itself."""
    if what in table:
        raise BadInput(
            f"notify: put the {what} in an environment variable ({what}_env) or a file"
            f" ({what}_file), not in the config file"
        )
    if f"{what}_env" in table:
        value = os.environ.get(str(table[f"{what}_env"]))
        if value is None:
            raise BadInput(f"notify: environment variable {table[f'{what}_env']} is not set")
        return value
    if f"{what}_file" in table:
        try:
            return Path(str(table[f"{what}_file"])).read_text().strip()
        except OSError as e:
            raise BadInput(
                f"notify: cannot read {what} file {table[f'{what}_file']}: {e.strerror}"
            ) from None
    return None
