"""Notification channels (e-mail, webhook, command) behind one small interface.

Configured in the config file's `[notify.*]` tables (README "Notifications").
Secrets (the SMTP password) come from an environment variable or a file and
never appear in messages or errors.
"""

from __future__ import annotations

from typing import Any

from certctl.config import Table, check_config
from certctl.errors import BadInput
from certctl.notify import command, email, webhook
from certctl.notify.channel import SCHEMA, Channel, Notice
from certctl.notify.command import CommandChannel
from certctl.notify.email import EmailChannel
from certctl.notify.webhook import WebhookChannel

__all__ = [
    "CHANNELS",
    "CONFIG",
    "SCHEMA",
    "Channel",
    "CommandChannel",
    "EmailChannel",
    "Notice",
    "WebhookChannel",
    "channels_from_config",
]


CHANNELS: dict[str, type[EmailChannel] | type[WebhookChannel] | type[CommandChannel]] = {
    "email": EmailChannel,
    "webhook": WebhookChannel,
    "command": CommandChannel,
}


# The [notify] table's schema, checked when the config file is loaded (cli/runtime.py).
CONFIG = Table(
    {"email": email.CONFIG, "webhook": webhook.CONFIG, "command": command.CONFIG},
    noun="notify channel",
)


def channels_from_config(raw: dict[str, Any]) -> list[Channel]:
    """Build the configured channels from the config file's [notify] table."""
    table = raw.get("notify", {})
    if not isinstance(table, dict):
        raise BadInput("config: [notify] must be a table")
    try:
        check_config(table, CONFIG, "notify")
    except BadInput as e:
        raise BadInput(f"config: {e}") from None
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
    _distinct_labels(result)
    return result


def _distinct_labels(channels: list[Channel]) -> None:
    """Give each channel its own label: what it was sent is recorded under it.

    Labels leave out secrets (a webhook's path), so two channels can look alike;
    the second becomes "... #2" in the config file's order.
    """
    seen: dict[str, int] = {}
    for channel in channels:
        count = seen[channel.label] = seen.get(channel.label, 0) + 1
        if count > 1:
            channel.label = f"{channel.label} #{count}"
