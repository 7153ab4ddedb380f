"""Plain records that the store persists as TOML and the services pass around.

Records read back from the store (meta.toml, the index cache, account.toml) are
checked field by field in `from_dict`: a wrong type or value raises RecordError
naming the field, so a hand-edited or damaged file is reported, never trusted.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from datetime import datetime
from functools import cache
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

ChallengeType = Literal["http", "dns", "tls-alpn", "dns-persist"]
SOURCE_ACME = "acme"
SOURCE_UPLOAD = "upload"
SOURCES = (SOURCE_ACME, SOURCE_UPLOAD)

# How a challenge is published; "automatic" ones can run unattended (renew-due).
AUTOMATIC_METHODS = frozenset(
    {"standalone", "webroot", "fleet", "rfc2136", "hook", "lexicon", "persist"}
)


def _drop_none(value: Any) -> Any:
    """TOML has no null: drop None values recursively before writing."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value


# ---- checking what is read back -------------------------------------------------------


class RecordError(TypeError, ValueError):
    """Stored metadata has a wrong type or value; names the field, never echoes the value."""

    def __init__(self, problem: str, path: str = "") -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.problem = problem
        self.path = path

    def under(self, key: str) -> RecordError:
        """The same problem, one level further out (``current`` + ``not_after``)."""
        if not self.path:
            return RecordError(self.problem, key)
        joiner = "" if self.path.startswith("[") else "."
        return RecordError(self.problem, f"{key}{joiner}{self.path}")


Check = Callable[[Any], Any]

_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "true/false"),
    (str, "a string"),
    (int, "an integer"),
    (float, "a number"),
    (datetime, "a date-time"),
    (list, "an array"),
    (dict, "a table"),
)


def _kind(value: Any) -> str:
    for kind, words in _KINDS:
        if isinstance(value, kind):
            return words
    return type(value).__name__


def _wrong(wanted: str, value: Any) -> RecordError:
    return RecordError(f"expected {wanted}, got {_kind(value)}")


def _check_any(value: Any) -> Any:
    return value


def _check_str(value: Any) -> Any:
    if type(value) is not str:
        raise _wrong("a string", value)
    return value


def _check_bool(value: Any) -> Any:
    if type(value) is not bool:
        raise _wrong("true or false", value)
    return value


def _check_int(value: Any) -> Any:
    if type(value) is not int:
        raise _wrong("an integer", value)
    return value


def _check_float(value: Any) -> Any:
    if type(value) is float:
        return value
    if type(value) is not int:
        raise _wrong("a number", value)
    return float(value)


def _check_datetime(value: Any) -> Any:
    if not isinstance(value, datetime):
        raise _wrong("a date-time", value)
    if value.tzinfo is None:
        raise RecordError("expected a date-time with a time zone (e.g. ...+00:00), got a local one")
    return value


def _list_of(item: Check) -> Check:
    kind = _FAST.get(item)

    def check(value: Any) -> Any:
        if type(value) is not list:
            raise _wrong("an array", value)
        if item is _check_any:
            return value
        if kind is not None and kind is not datetime and set(map(type, value)) <= {kind}:
            return list(value)  # the usual case, checked in C
        result = []
        for index, entry in enumerate(value):
            try:
                result.append(item(entry))
            except RecordError as e:
                raise e.under(f"[{index}]") from None
        return result

    return check


# Checks that accept a value of exactly this type unchanged (the fast path).
_FAST: dict[Check, type] = {
    _check_str: str,
    _check_bool: bool,
    _check_int: int,
    _check_float: float,
    _check_datetime: datetime,
}


def _table_of(known: dict[str, Check], other: Check = _check_any) -> Check:
    """A table whose `known` keys are checked; the others (newer metadata) by `other`."""

    fast = {key: _FAST[c] for key, c in known.items() if c in _FAST}
    other_kind = _FAST.get(other)

    def check(value: Any) -> Any:
        if type(value) is not dict:
            raise _wrong("a table", value)
        result = {}
        for key, entry in value.items():
            kind, actual = fast.get(key, other_kind), type(entry)
            if actual is kind and (actual is not datetime or entry.tzinfo is not None):
                result[key] = entry  # the usual case: the exact type, nothing to convert
                continue
            if type(key) is not str:
                raise RecordError("expected string keys")
            try:
                result[key] = known.get(key, other)(entry)
            except RecordError as e:
                raise e.under(key) from None
        return result

    return check


_SIMPLE: dict[Any, Check] = {
    Any: _check_any,
    str: _check_str,
    bool: _check_bool,
    int: _check_int,
    float: _check_float,
    datetime: _check_datetime,
}


def _checker(hint: Any) -> Check:
    """The check for one annotated type (the few kinds records use)."""
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        check = _checker(inner)
        return lambda value: None if value is None else check(value)
    if origin is Literal:
        allowed = ", ".join(str(a) for a in args)

        def literal(value: Any) -> Any:
            if type(value) is not str or value not in args:
                raise RecordError(f"expected one of {allowed}")
            return value

        return literal
    if origin is list:
        return _list_of(_checker(args[0]))
    if origin is dict:
        return _table_of({}, _checker(args[1]))
    if isinstance(hint, type) and is_dataclass(hint):
        build: Check = getattr(hint, "from_dict")  # noqa: B009 (classes defined below)
        return build
    raise AssertionError(f"no record check for {hint!r}")


# Tables of free-form state whose known keys still have a type.
_RENEWAL_STATE = _table_of(
    {
        "failures": _check_int,
        "last_attempt": _check_datetime,
        "last_error": _check_str,
        "not_before_retry": _check_datetime,
        "ari_start": _check_datetime,
        "ari_end": _check_datetime,
        "ari_pick": _check_datetime,
        "ari_next_check": _check_datetime,
        "last_renewed": _check_datetime,
        "last_failed": _check_datetime,
    }
)
_NOTICE_STATE = _table_of(
    {
        "last_sent": _check_datetime,
        "last_reason": _check_str,
        "channels": _list_of(_check_str),
        "delivered": _table_of({}, _check_datetime),
    }
)


def _fast_kind(hint: Any) -> type | None:
    """The exact type a field's value usually has (``str`` for ``str | None``), if simple."""
    if get_origin(hint) in (Union, types.UnionType):
        inner = [a for a in get_args(hint) if a is not type(None)]
        hint = inner[0] if len(inner) == 1 else None
    return hint if hint in (str, int, bool, float, datetime) else None


@cache
def _spec(cls: type) -> tuple[dict[str, type], dict[str, Check], frozenset[str]]:
    """Each field's usual exact type, its check, and the fields without a default."""
    hints = get_type_hints(cls)
    overrides: dict[str, Check] = getattr(cls, "_CHECKS", {})
    checks = {f.name: overrides.get(f.name) or _checker(hints[f.name]) for f in fields(cls)}
    fast = {
        name: kind
        for name in checks
        if name not in overrides and (kind := _fast_kind(hints[name])) is not None
    }
    required = frozenset(
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    )
    return fast, checks, required


def _checked(cls: type, data: Any) -> dict[str, Any]:
    """The declared fields of `data`, each checked; unknown keys (newer metadata) dropped."""
    if type(data) is not dict:
        raise _wrong("a table", data)
    fast, checks, required = _spec(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        kind, actual = fast.get(key), type(value)
        if actual is kind and (actual is not datetime or value.tzinfo is not None):
            values[key] = value  # the usual case: the exact type, nothing to convert
            continue
        check = checks.get(key)
        if check is None:
            continue
        try:
            values[key] = check(value)
        except RecordError as e:
            raise e.under(key) from None
    for key in required:
        if key not in values:
            raise RecordError("missing", key)
    return values


@dataclass
class Validation:
    """How the challenges of a certificate are published."""

    challenge: ChallengeType = "http"
    method: str = "manual"  # standalone | webroot | fleet | manual | rfc2136 | hook | lexicon
    webroot: str | None = None
    http_port: int | None = None
    tls_port: int | None = None  # tls-alpn standalone: where certctl's TLS responder listens
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def automatic(self) -> bool:
        """True when the challenge can be answered without a human."""
        return self.method in AUTOMATIC_METHODS

    @property
    def label(self) -> str:
        """Short human form, e.g. ``http-01 webroot``, ``dns-01 lexicon (cloudflare)``."""
        provider = self.settings.get("lexicon_provider") if self.method == "lexicon" else None
        return f"{self.challenge}-01 {self.method}" + (f" ({provider})" if provider else "")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Validation:
        """Build from stored TOML data, checked."""
        values = _checked(cls, data)
        for key in ("http_port", "tls_port"):
            port = values.get(key)
            if port is not None and not 0 < port < 65536:
                raise RecordError("expected a port number (1-65535)", key)
        return cls(**values)


@dataclass
class Challenge:
    """One authorization's chosen challenge, as the user must publish it."""

    domain: str
    authz_url: str
    url: str
    type: str  # "http-01" | "dns-01" | "tls-alpn-01"
    token: str
    validation: str  # key authorization (http-01, tls-alpn-01) or TXT value (dns-01)
    status: str = "pending"

    @property
    def record_name(self) -> str:
        """Where it is published: the TXT name or the HTTP path."""
        if self.type == "dns-01":
            return "_acme-challenge." + self.domain.removeprefix("*.")
        if self.type == "dns-persist-01":
            return "_validation-persist." + self.domain.removeprefix("*.")
        if self.type == "tls-alpn-01":
            return "TLS port 443, ALPN acme-tls/1"
        return f"/.well-known/acme-challenge/{self.token}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Challenge:
        """Build from stored TOML data, checked."""
        return cls(**_checked(cls, data))

    @property
    def location(self) -> str:
        """Where the value is published, as a person reads it: a TXT record or a URL."""
        if self.type in ("dns-01", "dns-persist-01"):
            return f"TXT {self.record_name}."
        if self.type == "tls-alpn-01":
            return f"the acme-tls/1 certificate at {self.host}:443"
        return f"http://{self.host}{self.record_name}"

    @property
    def host(self) -> str:
        """The identifier as it goes into a URL: an IPv6 address in brackets (RFC 3986)."""
        return f"[{self.domain}]" if ":" in self.domain else self.domain


@dataclass
class OrderState:
    """An ACME order in progress (RFC 8555 §7.1.3), enough to resume it anywhere."""

    url: str
    status: str
    finalize_url: str
    expires: datetime | None = None
    challenges: list[Challenge] = field(default_factory=list)
    certificate_url: str | None = None
    error: str | None = None
    created: datetime | None = None
    profile: str | None = None
    key_id: str | None = None  # names the order's pending key (None: pending.key, before 0.2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrderState:
        """Build from stored TOML data, checked."""
        return cls(**_checked(cls, data))


@dataclass
class Current:
    """Facts about the live version, cached so `list` needs no PEM parsing."""

    version: int
    serial: str
    not_before: datetime
    not_after: datetime
    issuer: str
    fingerprint: str
    names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Serialise for TOML."""
        result: dict[str, Any] = _drop_none(asdict(self))
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Current:
        """Build from stored TOML data, checked."""
        current = cls(**_checked(cls, data))
        if current.version < 1:
            raise RecordError("expected a version number (1 or more)", "version")
        return current


STARTTLS = ("smtp", "imap", "ftp")


@dataclass
class Endpoint:
    """Where a certificate must be served: host and port, the SNI name, optional STARTTLS."""

    host: str
    port: int = 443
    sni: str | None = None  # None: the host itself (an IP address: no SNI)
    starttls: str | None = None  # smtp | imap | ftp

    @property
    def label(self) -> str:
        """``host:port``, ``[v6]:port``, with ``(sni NAME)`` / ``(starttls smtp)`` when set."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{host}:{self.port}"
        if self.sni:
            text += f" (sni {self.sni})"
        if self.starttls:
            text += f" (starttls {self.starttls})"
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Endpoint:
        """Build from stored TOML data, checked."""
        endpoint = cls(**_checked(cls, data))
        if not endpoint.host:
            raise RecordError("expected a host name or address", "host")
        if not 0 < endpoint.port < 65536:
            raise RecordError("expected a port number (1-65535)", "port")
        if endpoint.starttls is not None and endpoint.starttls not in STARTTLS:
            raise RecordError(f"expected one of {', '.join(STARTTLS)}", "starttls")
        return endpoint


@dataclass
class CertRecord:
    """Everything certctl knows about one named certificate (its meta.toml)."""

    name: str
    domains: list[str]
    source: str = SOURCE_ACME
    key_type: str = "ec256"
    server: str | None = None
    profile: str | None = None
    validation: Validation = field(default_factory=Validation)
    deploy_hook: str | None = None
    renew_before_days: float | None = None
    created: datetime | None = None
    current: Current | None = None
    order: OrderState | None = None
    revoked: bool = False
    renewal: dict[str, Any] = field(default_factory=dict)
    notices: dict[str, Any] = field(default_factory=dict)
    endpoints: list[Endpoint] = field(default_factory=list)

    _CHECKS: ClassVar[dict[str, Check]] = {"renewal": _RENEWAL_STATE, "notices": _NOTICE_STATE}

    def to_dict(self) -> dict[str, Any]:
        """Serialise for TOML."""
        result: dict[str, Any] = _drop_none(asdict(self))
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CertRecord:
        """Build from stored TOML data, checked, tolerating unknown keys (newer metadata)."""
        record = cls(**_checked(cls, data))
        if not record.name:
            raise RecordError("expected a certificate name, got an empty string", "name")
        if not record.domains or not all(record.domains):
            raise RecordError("expected one or more names", "domains")
        if record.source not in SOURCES:
            raise RecordError(f"expected one of {', '.join(SOURCES)}", "source")
        if record.renew_before_days is not None and not record.renew_before_days > 0:
            raise RecordError("expected a positive number of days", "renew_before_days")
        if record.renewal.get("failures", 0) < 0:
            raise RecordError("expected 0 or more", "renewal.failures")
        return record


@dataclass
class AccountRecord:
    """An ACME account at one CA directory."""

    server: str
    uri: str
    key_type: str = "ec256"
    email: str | None = None
    created: datetime | None = None
    eab_kid: str | None = None
    status: str = "valid"

    def to_dict(self) -> dict[str, Any]:
        """Serialise for TOML."""
        result: dict[str, Any] = _drop_none(asdict(self))
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountRecord:
        """Build from stored TOML data, checked."""
        return cls(**_checked(cls, data))
