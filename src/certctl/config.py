"""Typed settings: the config file, overridden by options and CERTCTL_* variables.

Every key of the file is checked against a schema when it is loaded (types, ranges,
unknown keys with a suggestion), so a typo or an out-of-range value stops the run
with exit 2 before anything is written, instead of misbehaving at 3 a.m.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certctl.errors import BadInput
from certctl.policy.contact import check_email

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


# ---- the schema: what each key accepts ------------------------------------------------------


class Invalid(ValueError):
    """A value outside what its key accepts; the message says what is accepted."""


@dataclass(frozen=True)
class Number:
    """A finite number (or integer) in a range; the value may be echoed in messages."""

    low: float
    high: float
    unit: str = ""
    low_inclusive: bool = False
    integer: bool = False

    def accepted(self) -> str:
        kind = "an integer" if self.integer else "a number"
        unit = f" {self.unit}" if self.unit else ""
        low = "at least" if self.low_inclusive else "greater than"
        return f"{kind}{unit} {low} {self.low:g} and at most {self.high:g}"

    def check(self, value: Any) -> Any:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (self.integer and not isinstance(value, int)):
            raise Invalid(f"must be {self.accepted()}")
        too_low = value < self.low if self.low_inclusive else value <= self.low
        if not math.isfinite(value) or too_low or value > self.high:
            raise Invalid(f"must be {self.accepted()} (got {value!r})")
        return value


@dataclass(frozen=True)
class Text:
    """One line of text; never echoed (it may be a URL with a token in it)."""

    what: str = "a string"
    choices: tuple[str, ...] = ()
    check_text: Callable[[str], None] | None = None  # raises Invalid

    def check(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise Invalid(f"must be {self.what}")
        if any(c in value for c in "\r\n\0"):
            raise Invalid(f"must be {self.what} on one line (no CR, LF or NUL)")
        if self.choices and value not in self.choices:
            raise Invalid(f"must be {', '.join(self.choices[:-1])} or {self.choices[-1]}")
        if self.check_text is not None:
            self.check_text(value)
        return value


@dataclass(frozen=True)
class Secret:
    """A key that must never hold a secret itself: always refused, the value never shown."""

    message: str

    def check(self, value: Any) -> Any:
        raise Invalid(self.message)


@dataclass(frozen=True)
class ListOf:
    """A list of items (or, with `single`, one item alone)."""

    item: Text
    single: bool = False
    example: str = ""

    def check(self, value: Any) -> Any:
        items = [value] if self.single and isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            one = f"{self.item.what} or " if self.single else ""
            raise Invalid(f"must be {one}a non-empty list of them{self.example}")
        return [self.item.check(item) for item in items]


@dataclass(frozen=True)
class Headers:
    """HTTP header names (RFC 9110 §5.1 tokens) and one-line values; values never shown."""

    def check(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise Invalid('must be a table such as { Authorization = "Bearer ..." }')
        for name, item in value.items():
            if not _TOKEN.fullmatch(name):
                raise Invalid(
                    f"must have HTTP field names as keys (letters, digits and"
                    f" !#$%&'*+-.^_`|~): {name!r} is not one"
                )
            if not isinstance(item, str) or any(c in item for c in "\r\n\0"):
                raise Invalid(f"must have one-line string values: the value of {name!r} is not")
        return value


@dataclass(frozen=True)
class Table:
    """A TOML table with known keys; `repeat` also accepts an array of such tables."""

    keys: Mapping[str, Any]  # key → Number | Text | Secret | ListOf | Headers | Table
    required: tuple[str, ...] = ()
    repeat: bool = False
    noun: str = ""  # "notify channel": unknown keys are reported as such


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _server_text(value: str) -> None:
    try:
        resolve_server(value)
    except BadInput:
        raise Invalid("must be letsencrypt, letsencrypt-staging or a directory URL") from None


def _email_text(value: str) -> None:
    try:
        check_email(value)
    except BadInput:
        raise Invalid("must be an e-mail address such as ops@example.com") from None


def _resolver_text(value: str) -> None:
    try:
        parse_host_port(value, 53)
    except BadInput as e:
        raise Invalid(f"must be IP[:PORT] ({e})") from None


def _url_text(value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise Invalid("must be an http:// or https:// URL")


SECONDS = Number(0, 3600, unit="of seconds")
PORT = Number(1, 65535, low_inclusive=True, integer=True)
EMAIL = Text("an e-mail address", check_text=_email_text)
URL = Text("an http:// or https:// URL", check_text=_url_text)

SCHEMA = Table(
    {
        "server": Text("a CA alias or directory URL", check_text=_server_text),
        "ca_bundle": Text("the path of a PEM file"),
        "email": EMAIL,
        "timeout": SECONDS,
        "notice_days": Number(0, 365, unit="of days", low_inclusive=True),
        "store": Table(
            {
                "url": Text("a store directory or a postgresql:// URL"),
                "key_file": Text("the path of the store key file"),
                "lease": Number(5, 3600, unit="of seconds", low_inclusive=True),
            }
        ),
        "deploy": Table(
            {
                "dir": Text("a directory"),
                "names": ListOf(Text("a certificate name or glob"), single=True),
                "hook": Text("a command"),
                "host_id": Text("a host name"),
                "owner": Text("USER[:GROUP]"),
            }
        ),
        "checks": Table(
            {
                "http_port": PORT,
                "tls_port": PORT,
                "resolvers": ListOf(
                    Text("an IP[:PORT]", check_text=_resolver_text),
                    example=' such as ["192.0.2.53"]',
                ),
            }
        ),
    }
)


def check_config(data: Mapping[str, Any], schema: Table, where: str = "") -> None:
    """Check every key and value of `data` against `schema`; BadInput names the first bad one."""
    for key, value in data.items():
        dotted = f"{where}.{key}" if where else key
        rule = schema.keys.get(key)
        if rule is None:
            what = f"{schema.noun} {key!r}" if schema.noun else f"key {dotted!r}"
            raise BadInput(f"unknown {what}{_suggestion(key, schema.keys)}")
        if isinstance(rule, Table):
            _check_table(value, rule, dotted)
            continue
        try:
            rule.check(value)
        except Invalid as e:
            raise BadInput(f"invalid value: {dotted} {e}") from None
    missing = [k for k in schema.required if k not in data]
    if missing:
        raise BadInput(f"[{where}] needs {missing[0]!r}")


def _check_table(value: Any, rule: Table, dotted: str) -> None:
    tables = value if rule.repeat and isinstance(value, list) else [value]
    for table in tables:
        if not isinstance(table, dict):
            raise BadInput(f"[{dotted}] must be a table")
        check_config(table, rule, dotted)


def _suggestion(key: str, known: Mapping[str, Any]) -> str:
    import difflib  # only for a mistyped key: every command reads the config

    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known keys: {', '.join(known)})"


@dataclass
class Settings:
    """Everything configurable, after merging file, environment and options."""

    server: str = DEFAULT_SERVER
    ca_bundle: str | None = None
    email: str | None = None
    resolvers: list[str] = field(default_factory=list)
    check_http_port: int = 80
    check_tls_port: int = 443
    timeout: float = 30.0
    notice_days: float = 14.0
    store_url: str | None = None
    store_key_file: str | None = None
    store_lease: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def server_url(self) -> str:
        """The CA directory URL."""
        return resolve_server(self.server)

    def resolver_addresses(self) -> list[tuple[str, int]]:
        """Configured resolvers as (ip, port)."""
        return [parse_host_port(r, 53) for r in self.resolvers]


def load_settings(
    path: Path | None,
    explicit: bool,
    tables: Mapping[str, Callable[[], Table]] | None = None,
) -> Settings:
    """Read and check the config file (a missing default file is fine, an explicit one is not).

    `tables` give the schemas of tables that higher layers own (the [notify] channels),
    asked for only when the file has such a table: most runs never import their modules.
    """
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
    owned = {k: make() if k in data else Table({}) for k, make in (tables or {}).items()}
    schema = Table({**SCHEMA.keys, **owned})
    try:
        check_config(data, schema)
    except BadInput as e:
        raise BadInput(f"config file {path}: {e}") from None
    settings.raw = data
    settings.server = str(data.get("server", settings.server))
    settings.ca_bundle = data.get("ca_bundle", settings.ca_bundle)
    settings.email = data.get("email", settings.email)
    settings.timeout = float(data.get("timeout", settings.timeout))
    settings.notice_days = float(data.get("notice_days", settings.notice_days))
    store = data.get("store", {})
    settings.store_url = store.get("url")
    settings.store_key_file = store.get("key_file")
    settings.store_lease = float(store["lease"]) if "lease" in store else None
    checks = data.get("checks", {})
    settings.resolvers = list(checks.get("resolvers", settings.resolvers))
    settings.check_http_port = int(checks.get("http_port", settings.check_http_port))
    settings.check_tls_port = int(checks.get("tls_port", settings.check_tls_port))
    return settings
