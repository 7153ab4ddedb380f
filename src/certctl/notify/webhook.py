"""Webhook notices: a JSON POST, one retry, headers from the config; redirects not followed."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from certctl.config import SECONDS, URL, Headers, Table
from certctl.errors import BadInput, OperationFailed
from certctl.notify.channel import Notice

CONFIG = Table(
    {"url": URL, "timeout": SECONDS, "headers": Headers()}, required=("url",), repeat=True
)


def safe_url_label(url: str) -> str:
    """The URL without what may be a secret: scheme and host only, the path as "…".

    Slack-style webhooks carry their secret in the path, others in the query or
    in user:password@; none of that may reach metadata, output or errors.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    path = "/…" if parts.path.strip("/") or parts.query else "/"
    return f"{parts.scheme}://{netloc}{path}"


class WebhookChannel:
    """HTTP POST of the notice's JSON body; a timeout and one retry."""

    def __init__(self, table: dict[str, Any]) -> None:
        try:
            self.url = str(table["url"])
        except KeyError:
            raise BadInput("notify.webhook needs 'url'") from None
        if not self.url.startswith(("http://", "https://")):
            raise BadInput("notify.webhook.url must be an http:// or https:// URL")
        if "@" in urllib.parse.urlsplit(self.url).netloc:
            raise BadInput(
                "notify.webhook.url must not carry user:password@: put the credentials in"
                " notify.webhook.headers (Authorization)"
            )
        self.timeout = float(table.get("timeout", 10))
        self.headers = {str(k): str(v) for k, v in dict(table.get("headers", {})).items()}
        self.label = f"webhook {safe_url_label(self.url)}"

    def send(self, notice: Notice) -> None:
        """POST the JSON body, retrying once after a second; a redirect is a failure."""
        import urllib.error
        import urllib.request
        from http.client import HTTPException

        body = json.dumps(notice.to_json()).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "certctl", **self.headers}
        # urllib would follow a redirect to any host with our headers (Authorization
        # included) and turn the POST into a GET: follow none, say so.
        opener = urllib.request.build_opener(_no_redirects())
        error = ""
        for attempt in range(2):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
            try:
                with opener.open(request, timeout=self.timeout) as response:
                    if 200 <= response.status < 300:
                        return
                    error = f"HTTP {response.status}"
            except urllib.error.HTTPError as e:
                if 300 <= e.code < 400:
                    raise OperationFailed(
                        f"{self.label} answered HTTP {e.code} (a redirect): certctl does not"
                        " follow webhook redirects; set notify.webhook.url to the final address"
                    ) from None
                error = f"HTTP {e.code}"
            except (urllib.error.URLError, OSError) as e:
                error = str(getattr(e, "reason", e))
            except (ValueError, HTTPException) as e:  # their text may quote the URL: not shown
                raise OperationFailed(f"{self.label} failed: {type(e).__name__}") from None
            if attempt == 0:
                time.sleep(1)
        raise OperationFailed(f"{self.label} failed twice: {error}")


def _no_redirects() -> Any:
    """A urllib handler that refuses every redirect: the 3xx becomes an HTTPError."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return NoRedirect()
