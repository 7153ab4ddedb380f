"""Command notices: the user's program gets the notice as JSON on stdin."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

from certctl.config import SECONDS, Table, Text
from certctl.errors import BadInput, OperationFailed
from certctl.notify.channel import Notice

CONFIG = Table(
    {"command": Text("a shell command"), "timeout": SECONDS}, required=("command",), repeat=True
)


class CommandChannel:
    """Run a command with the notice in its environment and as JSON on stdin."""

    def __init__(self, table: dict[str, Any]) -> None:
        try:
            self.command = str(table["command"])
        except KeyError:
            raise BadInput("notify.command needs 'command'") from None
        self.timeout = float(table.get("timeout", 60))
        # the program's name only: never its arguments or `VAR=value` prefixes (tokens)
        words = [w for w in self.command.split() if not re.match(r"[A-Za-z_][A-Za-z0-9_]*=", w)]
        self.label = f"command {words[0] if words else ''}".rstrip()

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
