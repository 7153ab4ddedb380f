"""Webhook notices: a JSON POST, one retry, headers from the config."""

from __future__ import annotations

import json
import time
from typing import Any

from certctl.config import SECONDS, URL, Headers, Table
from certctl.errors import BadInput, OperationFailed
from certctl.notify.channel import Notice

CONFIG = Table(
    {"url": URL, "timeout": SECONDS, "headers": Headers()}, required=("url",), repeat=True
)


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
