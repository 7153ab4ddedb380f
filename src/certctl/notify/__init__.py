"""Notification channels (e-mail, webhook, command) behind one small interface.

Configured in the config file's `[notify.*]` tables (README "Notifications").
Secrets (the SMTP password) come from an environment variable or a file and
never appear in messages or errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from certctl.errors import BadInput, OperationFailed

SCHEMA = "certctl.notice/1"


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


def _secret(table: dict[str, Any], what: str) -> str | None:
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


class EmailChannel:
    """E-mail over SMTP: STARTTLS (default), implicit TLS or plain (local relays)."""

    def __init__(self, table: dict[str, Any]) -> None:
        try:
            self.host = str(table["host"])
            self.to = (
                [str(a) for a in table["to"]]
                if isinstance(table["to"], list)
                else [str(table["to"])]
            )
        except KeyError as e:
            raise BadInput(f"notify.email needs {e.args[0]!r}") from None
        self.port = int(table.get("port", 587))
        self.security = str(table.get("security", "starttls"))
        if self.security not in ("starttls", "tls", "none"):
            raise BadInput("notify.email.security must be starttls, tls or none")
        self.sender = str(table.get("from", f"certctl@{os.uname().nodename}"))
        self.username = table.get("username")
        self.password = _secret(table, "password")
        self.timeout = float(table.get("timeout", 20))
        self.ca_bundle = table.get("ca_bundle")
        self.label = f"e-mail to {', '.join(self.to)}"

    def send(self, notice: Notice) -> None:
        """Send one message."""
        import smtplib
        import ssl
        from email.message import EmailMessage

        message = EmailMessage()
        message["Subject"] = notice.subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message.set_content(notice.body())
        context = ssl.create_default_context(cafile=self.ca_bundle)
        try:
            smtp: smtplib.SMTP
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=context)
                if self.username:
                    smtp.login(str(self.username), self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError:
            raise OperationFailed(
                f"e-mail via {self.host}:{self.port}: login refused for {self.username}"
            ) from None
        except (smtplib.SMTPException, OSError) as e:
            if isinstance(e, TimeoutError | smtplib.SMTPServerDisconnected):
                detail = f"timed out after {self.timeout:g}s waiting for the server"
            elif isinstance(e, smtplib.SMTPResponseException):
                detail = f"the server said {e.smtp_code}"
            else:
                detail = (
                    e.strerror or type(e).__name__ if isinstance(e, OSError) else type(e).__name__
                )
            raise OperationFailed(f"e-mail via {self.host}:{self.port} failed: {detail}") from None


class WebhookChannel:
    """HTTP POST of the notice's JSON body; a timeout and one retry."""

    def __init__(self, table: dict[str, Any]) -> None:
        try:
            self.url = str(table["url"])
        except KeyError:
            raise BadInput("notify.webhook needs 'url'") from None
        if not self.url.startswith(("http://", "https://")):
            raise BadInput("notify.webhook.url must be an http:// or https:// URL")
        self.timeout = float(table.get("timeout", 10))
        self.headers = {str(k): str(v) for k, v in dict(table.get("headers", {})).items()}
        self.label = f"webhook {self.url.split('?')[0]}"

    def send(self, notice: Notice) -> None:
        """POST the JSON body, retrying once after a second."""
        import urllib.error
        import urllib.request

        body = json.dumps(notice.to_json()).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "certctl", **self.headers}
        error = ""
        for attempt in range(2):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    if 200 <= response.status < 300:
                        return
                    error = f"HTTP {response.status}"
            except urllib.error.HTTPError as e:
                error = f"HTTP {e.code}"
            except (urllib.error.URLError, OSError) as e:
                error = str(getattr(e, "reason", e))
            if attempt == 0:
                time.sleep(1)
        raise OperationFailed(f"{self.label} failed twice: {error}")


class CommandChannel:
    """Run a command with the notice in its environment and as JSON on stdin."""

    def __init__(self, table: dict[str, Any]) -> None:
        try:
            self.command = str(table["command"])
        except KeyError:
            raise BadInput("notify.command needs 'command'") from None
        self.timeout = float(table.get("timeout", 60))
        self.label = f"command {self.command.split()[0] if self.command.split() else ''}"

    def send(self, notice: Notice) -> None:
        """Run the command once."""
        env = {
            **os.environ,
            "CERTCTL_NAME": notice.name,
            "CERTCTL_DOMAINS": " ".join(notice.domains),
            "CERTCTL_STATE": notice.state,
            "CERTCTL_SUBJECT": notice.subject,
            "CERTCTL_NOT_AFTER": notice.not_after.isoformat() if notice.not_after else "",
        }
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", self.command],
                input=json.dumps(notice.to_json()),
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
            )
        except subprocess.TimeoutExpired:
            raise OperationFailed(f"{self.label} timed out after {self.timeout:g}s") from None
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            raise OperationFailed(f"{self.label} exited {proc.returncode}: {tail[0][:200]}")


CHANNELS: dict[str, type[EmailChannel] | type[WebhookChannel] | type[CommandChannel]] = {
    "email": EmailChannel,
    "webhook": WebhookChannel,
    "command": CommandChannel,
}


def channels_from_config(raw: dict[str, Any]) -> list[Channel]:
    """Build the configured channels from the config file's [notify] table."""
    table = raw.get("notify", {})
    if not isinstance(table, dict):
        raise BadInput("config: [notify] must be a table")
    result: list[Channel] = []
    for key, settings in table.items():
        if key not in CHANNELS:
            raise BadInput(f"config: unknown notify channel {key!r} (use email, webhook, command)")
        for entry in settings if isinstance(settings, list) else [settings]:
            if not isinstance(entry, dict):
                raise BadInput(f"config: [notify.{key}] must be a table")
            try:
                result.append(CHANNELS[key](entry))
            except (TypeError, ValueError) as e:
                raise BadInput(f"config: [notify.{key}] has an invalid value ({e})") from None
    return result
