"""CAA (RFC 8659) with account and method binding (RFC 8657): would this CA issue to us?

Pure decisions: the records of the relevant CAA set in, the reason for refusal out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from certctl.policy.persist import parse_persist

# RFC 8657 §4: validationmethods names the ACME challenge types
METHOD_OF = {
    "http": "http-01",
    "dns": "dns-01",
    "tls-alpn": "tls-alpn-01",
    "dns-persist": "dns-persist-01",
}


@dataclass(frozen=True)
class CaaRecord:
    """One CAA record: flags, tag (lower case) and value, as presentation text."""

    flags: int
    tag: str
    value: str

    def __str__(self) -> str:
        return f'{self.flags} {self.tag} "{self.value}"'


def parse(text: str) -> CaaRecord | None:
    """A CAA record from its presentation form (`0 issue "ca.example; accounturi=..."`)."""
    parts = text.split(None, 2)
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    value = parts[2].strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return CaaRecord(int(parts[0]), parts[1].lower(), value)


def refusal(
    records: Sequence[CaaRecord],
    issuers: Sequence[str],
    account_uri: str,
    method: str,
    wildcard: bool,
) -> list[CaaRecord]:
    """The records that keep this CA from issuing to this account by `method`; [] when allowed.

    RFC 8659 §4.2-4.3: for a wildcard the issuewild records decide when there are any,
    else the issue records; no such records means no restriction. RFC 8657 §3-4: an
    `accounturi` or `validationmethods` parameter limits a record to that account or
    those methods.
    """
    tag = "issuewild" if wildcard and any(r.tag == "issuewild" for r in records) else "issue"
    relevant = [r for r in records if r.tag == tag]
    if not relevant:
        return []
    for record in relevant:
        issuer, params = parse_persist(record.value)
        if issuer not in issuers:
            continue
        if params.get("accounturi", account_uri) != account_uri:
            continue
        methods = params.get("validationmethods")
        if methods is not None and method not in [m.strip() for m in methods.split(",")]:
            continue
        return []
    return relevant


def record_lines(
    domain: str, issuer: str, account_uri: str, methods: Sequence[str], wildcard: bool
) -> list[str]:
    """Zone-file lines restricting `domain` to this CA, account and methods (RFC 8657)."""
    value = f"{issuer}; accounturi={account_uri}"
    if methods:
        value += f"; validationmethods={','.join(methods)}"
    lines = [f'{domain}. IN CAA 0 issue "{value}"']
    if wildcard:
        lines.append(f'{domain}. IN CAA 0 issuewild "{value}"')
    return lines
