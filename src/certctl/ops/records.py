"""DNS records that bind a domain to this CA and account: dns-persist-01 and CAA (RFC 8657).

Both are printed for the user to publish; nothing here changes the store or the CA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from certctl.context import Context
from certctl.errors import BadInput
from certctl.policy.names import ip_address_of, normalize_domain
from certctl.policy.persist import PREFIX, persist_value


@dataclass(frozen=True)
class PersistRecord:
    """The one TXT record dns-persist-01 needs for a domain (and its wildcard)."""

    domain: str
    name: str
    value: str
    issuer: str
    account_uri: str

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `account persist-record --json`."""
        return {
            "domain": self.domain,
            "record": self.name,
            "record_type": "TXT",
            "value": self.value,
            "issuer": self.issuer,
            "account": self.account_uri,
        }

    @property
    def zone_line(self) -> str:
        """The record as a zone-file line."""
        return f'{self.name} IN TXT "{self.value}"'


def _domain(given: str) -> tuple[str, bool]:
    """The base domain and whether `*.` was given; IP addresses refused (DNS records)."""
    domain = normalize_domain(given)
    if ip_address_of(domain):
        raise BadInput(f"{domain} is an IP address: DNS records cannot be published for it")
    return domain.removeprefix("*."), domain.startswith("*.")


def _account_uri(ctx: Context, server: str) -> str:
    """The URI of the stored account for `server` (the one orders use)."""
    from certctl.ops.accounts import _stored

    return _stored(ctx, server)[0].uri


def issuers(ctx: Context, server: str) -> list[str]:
    """The CA's issuer domain names; refused when it names none."""
    found = ctx.acme(server).caa_identities()
    if not found:
        raise BadInput(
            f"the CA at {server} names no issuer domain (no caaIdentities in its directory):"
            " it cannot be bound by a DNS record; use --challenge dns for DNS validation"
        )
    return found


def persist_record(ctx: Context, given: str, wildcard: bool = False) -> PersistRecord:
    """The dns-persist-01 record for `given` and the current account (no order placed)."""
    domain, star = _domain(given)
    server = ctx.settings.server_url
    account = _account_uri(ctx, server)
    issuer = issuers(ctx, server)[0]
    value = persist_value(issuer, account, wildcard or star)
    return PersistRecord(domain, f"{PREFIX}{domain}.", value, issuer, account)


@dataclass(frozen=True)
class CaaRecords:
    """CAA records restricting a domain to this CA, account and methods (RFC 8657)."""

    domain: str
    lines: list[str]
    methods: list[str]
    account_uri: str

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `account caa --json`."""
        return {
            "domain": self.domain,
            "records": self.lines,
            "validationmethods": self.methods,
            "account": self.account_uri,
        }


def caa_records(ctx: Context, given: str) -> CaaRecords:
    """The CAA lines for `given`: this CA, this account, the methods its certificates use."""
    from certctl.policy.caa import METHOD_OF, record_lines

    domain, star = _domain(given)
    server = ctx.settings.server_url
    account = _account_uri(ctx, server)
    issuer = issuers(ctx, server)[0]
    methods: dict[str, None] = {}
    wildcard = star
    for _, record in ctx.store.records() if ctx.store.exists() else []:
        if isinstance(record, Exception) or record.source != "acme":
            continue
        covered = [d for d in record.domains if d.removeprefix("*.") == domain]
        if covered:
            methods.setdefault(METHOD_OF[record.validation.challenge], None)
            wildcard = wildcard or any(d.startswith("*.") for d in covered)
    lines = record_lines(domain, issuer, account, sorted(methods), wildcard)
    return CaaRecords(domain, lines, sorted(methods), account)
