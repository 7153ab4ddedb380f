"""Contact e-mail addresses for ACME accounts, checked before the CA sees them.

The CA refuses a malformed contact (RFC 8555 §7.3: `invalidContact`) only after
the account key, the terms and a round trip; refusing it here costs nothing and
changes nothing (exit 2).
"""

from __future__ import annotations

import re

from certctl.errors import BadInput
from certctl.policy.names import ip_address_of, normalize_domain

# RFC 5322 §3.2.3 dot-atom: the local parts mail systems and CAs accept without quoting
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")


def check_email(value: str, where: str = "--email") -> str:
    """The address(es) in `value` (comma-separated), checked; BadInput naming `where`."""
    addresses = [part.strip() for part in value.split(",")]
    return ",".join(_check_one(address, value, where) for address in addresses)


def _check_one(address: str, given: str, where: str) -> str:
    local, at, domain = address.rpartition("@")
    problem = None
    if not address:
        problem = "it is empty"
    elif not at:
        problem = "it has no '@'"
    elif not _LOCAL.fullmatch(local) or len(local) > 64:
        problem = f"{local!r} before the '@' is not a plain mailbox name"
    elif "." not in domain.strip("."):
        problem = f"{domain!r} after the '@' is not a fully qualified domain"
    if problem is None:
        try:
            domain = normalize_domain(domain)
        except BadInput:
            problem = f"{domain!r} after the '@' is not a valid domain"
        else:
            if domain.startswith("*.") or ip_address_of(domain):
                problem = f"{domain!r} after the '@' is not a valid domain"
    if problem is not None:
        raise BadInput(
            f"invalid e-mail address {given[:80]!r} ({problem}): give an address such as"
            f" ops@example.com with {where}"
        )
    return f"{local}@{domain}"
