"""Which stored certificate a NAME argument means: its name, or a domain only it covers.

Every command that takes the NAME of an existing certificate resolves it here, so
`certctl show '*.example.com'`, `certctl show bücher.de` and `certctl show
wildcard.example.com` mean the same certificate wherever a name is asked.
"""

from __future__ import annotations

from certctl.context import Context
from certctl.errors import BadInput, NotFound
from certctl.models import CertRecord
from certctl.policy.names import default_cert_name, is_cert_name, lookup_domain, refuse_cert_name


def resolve_name(ctx: Context, given: str) -> str:
    """The stored name `given` stands for; BadInput (exit 2) when none or several match.

    The exact name wins, then the name certctl gives the domain `given`
    (`*.example.com` → `wildcard.example.com`, `bücher.de` → `xn--bcher-kva.de`);
    otherwise that domain (a wildcard, any case, a U-label form) picks the one
    certificate whose domains include it.
    """
    names = ctx.store.names()
    if is_cert_name(given) and given in names:
        return given
    domain = lookup_domain(given)
    if domain is None:
        if is_cert_name(given):
            raise _not_found(ctx, given)
        raise refuse_cert_name(given)
    named = default_cert_name(domain)  # the name order or upload gives that domain
    if named in names:
        return named
    matches = sorted(
        name
        for name, record in ctx.store.records()
        if isinstance(record, CertRecord) and domain in record.domains
    )
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise BadInput(
            f"{given!r} is a domain of {len(matches)} certificates ({', '.join(matches)}):"
            " give one of these names"
        )
    raise _not_found(ctx, given)


def resolve_names(ctx: Context, given: list[str] | tuple[str, ...]) -> list[str]:
    """resolve_name for each of several NAMEs (e.g. `renew-due --force`), in order."""
    return [resolve_name(ctx, name) for name in given]


def _not_found(ctx: Context, given: str) -> NotFound:
    return NotFound(
        f"no certificate named {given!r}, nor one for that domain, in {ctx.store.location}:"
        " see 'certctl list'"
    )
