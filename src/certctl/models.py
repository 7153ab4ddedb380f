"""Plain records that the store persists as TOML and the services pass around."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from functools import cache
from typing import Any, Literal

ChallengeType = Literal["http", "dns"]
SOURCE_ACME = "acme"
SOURCE_UPLOAD = "upload"

# How a challenge is published; "automatic" ones can run unattended (renew-due).
AUTOMATIC_METHODS = frozenset({"standalone", "webroot", "rfc2136", "hook"})


def _drop_none(value: Any) -> Any:
    """TOML has no null: drop None values recursively before writing."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value


@cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Keep only the keys `cls` declares, so newer metadata still loads."""
    if not isinstance(data, dict):
        raise TypeError(f"expected a table for {cls.__name__}")
    names = _field_names(cls)
    if data.keys() <= names:  # the usual case, checked in C
        return dict(data)
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Validation:
    """How the challenges of a certificate are published."""

    challenge: ChallengeType = "http"
    method: str = "manual"  # standalone | webroot | manual | rfc2136 | hook
    webroot: str | None = None
    http_port: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def automatic(self) -> bool:
        """True when the challenge can be answered without a human."""
        return self.method in AUTOMATIC_METHODS

    @property
    def label(self) -> str:
        """Short human form, e.g. ``http-01 webroot``."""
        return f"{self.challenge}-01 {self.method}"


@dataclass
class Challenge:
    """One authorization's chosen challenge, as the user must publish it."""

    domain: str
    authz_url: str
    url: str
    type: str  # "http-01" | "dns-01"
    token: str
    validation: str  # key authorization (http-01) or TXT value (dns-01)
    status: str = "pending"

    @property
    def record_name(self) -> str:
        """Where it is published: the TXT name or the HTTP path."""
        if self.type == "dns-01":
            return "_acme-challenge." + self.domain.removeprefix("*.")
        return f"/.well-known/acme-challenge/{self.token}"

    @property
    def location(self) -> str:
        """Where the value is published, as a person reads it: a TXT record or a URL."""
        if self.type == "dns-01":
            return f"TXT {self.record_name}."
        return f"http://{self.domain}{self.record_name}"


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
        """Build from stored TOML data."""
        data = _known(cls, data)
        data["challenges"] = [Challenge(**_known(Challenge, c)) for c in data.get("challenges", [])]
        return cls(**data)


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
        """Build from stored TOML data."""
        return cls(**_known(cls, data))


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

    def to_dict(self) -> dict[str, Any]:
        """Serialise for TOML."""
        result: dict[str, Any] = _drop_none(asdict(self))
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CertRecord:
        """Build from stored TOML data, tolerating unknown keys."""
        data = _known(cls, data)
        data["validation"] = Validation(**_known(Validation, data.get("validation", {})))
        if "current" in data:
            data["current"] = Current.from_dict(data["current"])
        if "order" in data:
            data["order"] = OrderState.from_dict(data["order"])
        return cls(**data)


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
        """Build from stored TOML data."""
        return cls(**_known(cls, data))
