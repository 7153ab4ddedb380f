"""Typed settings: the config file, overridden by options and CERTCTL_* variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certctl.errors import BadInput

CA_ALIASES = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
DEFAULT_SERVER = "letsencrypt"


def resolve_server(server: str) -> str:
    """Map a CA alias to its directory URL; accept any https (or http) URL."""
    url = CA_ALIASES.get(server, server)
    if not url.startswith(("https://", "http://")):
        raise BadInput(
            f"unknown CA {server!r}: use letsencrypt, letsencrypt-staging or a directory URL"
        )
    return url


def parse_host_port(value: str, default_port: int) -> tuple[str, int]:
    """Parse IP[:PORT] or [IPv6]:PORT for resolvers."""
    import ipaddress

    host, port = value, default_port
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], value)
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = _port(port_text, value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise BadInput(
            f"invalid resolver {value!r}: expected IP[:PORT], e.g. 192.0.2.53:53"
        ) from None
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BadInput(f"invalid port in {whole!r}: expected 1-65535")
    return int(text)


@dataclass
class Settings:
    """Everything configurable, after merging file, environment and options."""

    server: str = DEFAULT_SERVER
    ca_bundle: str | None = None
    email: str | None = None
    resolvers: list[str] = field(default_factory=list)
    check_http_port: int = 80
    timeout: float = 30.0
    notice_days: float = 14.0
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def server_url(self) -> str:
        """The CA directory URL."""
        return resolve_server(self.server)

    def resolver_addresses(self) -> list[tuple[str, int]]:
        """Configured resolvers as (ip, port)."""
        return [parse_host_port(r, 53) for r in self.resolvers]


def load_settings(path: Path | None, explicit: bool) -> Settings:
    """Read the config file (a missing default file is fine, a missing explicit one is not)."""
    settings = Settings()
    if path is None:
        return settings
    import tomllib

    try:
        text = path.read_text("utf-8")
        data = tomllib.loads(text) if text.strip() else {}
    except FileNotFoundError:
        if explicit:
            raise BadInput(
                f"config file {path} does not exist: create it or drop --config"
            ) from None
        return settings
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"config file {path} is not valid TOML: {e}") from None
    settings.raw = data
    try:
        if "server" in data:
            settings.server = str(data["server"])
        if "ca_bundle" in data:
            settings.ca_bundle = str(data["ca_bundle"])
        if "email" in data:
            settings.email = str(data["email"])
        checks = data.get("checks", {})
        if "resolvers" in checks:
            if not isinstance(checks["resolvers"], list):
                raise ValueError('checks.resolvers must be a list such as ["192.0.2.53"]')
            settings.resolvers = [str(r) for r in checks["resolvers"]]
        if "http_port" in checks:
            settings.check_http_port = int(checks["http_port"])
            if not 0 < settings.check_http_port < 65536:
                raise ValueError("checks.http_port must be 1-65535")
        if "timeout" in data:
            settings.timeout = float(data["timeout"])
        if "notice_days" in data:
            settings.notice_days = float(data["notice_days"])
    except (TypeError, ValueError, AttributeError) as e:
        raise BadInput(f"config file {path}: invalid value ({e})") from None
    try:
        for resolver in settings.resolvers:
            parse_host_port(resolver, 53)
    except BadInput as e:
        raise BadInput(f"config file {path}: {e}") from None
    return settings
