"""The dns-persist-01 record (draft-ietf-acme-dns-persist §3): built and read, nothing else."""

from __future__ import annotations

PREFIX = "_validation-persist."


def persist_value(issuer: str, account_uri: str, wildcard: bool) -> str:
    """The TXT value at _validation-persist.<domain> (draft-ietf-acme-dns-persist §3)."""
    return f"{issuer}; accounturi={account_uri}" + ("; policy=wildcard" if wildcard else "")


def parse_persist(value: str) -> tuple[str, dict[str, str]]:
    """(issuer domain name, parameters) of a dns-persist-01 TXT value; keys lower-cased."""
    issuer, *rest = (part.strip() for part in value.split(";"))
    params = {}
    for part in rest:
        key, _, item = part.partition("=")
        if key:
            params[key.strip().lower()] = item.strip()
    return issuer.lower().rstrip("."), params
