"""The order request: what `order`/`obtain` were asked, settled against the stored record
and checked before anything is created."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from certctl.errors import BadInput
from certctl.models import CertRecord, Validation
from certctl.pki.keys import KEY_TYPES
from certctl.policy import hints

if TYPE_CHECKING:
    from certctl.context import Context

__all__ = ["OrderRequest", "ip_profile", "validation_for", "with_method"]


@dataclass
class OrderRequest:
    """What `certctl order` was asked to do."""

    domains: list[str]
    name: str | None = None
    challenge: str | None = None  # None: the certificate's current one, else http
    # standalone | webroot | fleet | manual | rfc2136 | hook | lexicon; None: keep
    method: str | None = None
    webroot: str | None = None
    http_port: int | None = None
    tls_port: int | None = None  # tls-alpn: where certctl's TLS responder listens
    key_type: str = "ec256"
    profile: str | None = None
    email: str | None = None
    agree_tos: bool = False
    deploy_hook: str | None = None
    # DNS provider settings (solvers.dns.OPTIONS keys); secrets only by file path or env name
    dns_settings: dict[str, Any] = field(default_factory=dict)
    drop_names: bool = False  # allow leaving out names of the live certificate


def with_method(request: OrderRequest, existing: CertRecord | None) -> OrderRequest:
    """The request with its validation method settled: the one named, else the stored one."""
    from dataclasses import replace

    from certctl.policy.replacing import previous_validation, settle

    old = previous_validation(existing)
    chosen = settle(
        request.challenge,
        request.method,
        request.webroot,
        request.http_port,
        request.dns_settings,
        old,
        request.tls_port,
    )
    return replace(request, **vars(chosen))


def _check_identifiers(request: OrderRequest, domains: list[str]) -> None:
    """Wildcards need DNS-01 (RFC 8555 §7.1.3, RFC 8737 §3); IP addresses must not use it."""
    from certctl.policy.names import ip_address_of

    wildcards = [d for d in domains if d.startswith("*.")]
    if wildcards and request.challenge not in ("dns", "dns-persist"):
        raise BadInput(
            f"{wildcards[0]} is a wildcard: wildcards need DNS validation; use --challenge dns"
        )
    addresses = [d for d in domains if ip_address_of(d)]
    if addresses and request.challenge in ("dns", "dns-persist"):
        raise BadInput(
            f"{addresses[0]} is an IP address: DNS-01 cannot prove control of an IP address"
            " (RFC 8738 §7); use --challenge http or --challenge tls-alpn"
        )


def validation_for(request: OrderRequest, domains: list[str]) -> Validation:
    assert request.method is not None
    if request.challenge not in ("http", "dns", "tls-alpn", "dns-persist"):
        raise BadInput(
            f"unknown challenge {request.challenge!r}: use http, dns, tls-alpn or dns-persist"
        )
    if request.key_type not in KEY_TYPES:
        raise BadInput(
            f"unknown key type {request.key_type!r}: choose one of {', '.join(KEY_TYPES)}"
        )
    _check_identifiers(request, domains)
    if request.challenge == "tls-alpn":
        if request.method != "standalone":
            raise BadInput(
                f"--{request.method} is not for TLS-ALPN-01: certctl answers it with its own"
                " TLS responder (--tls-port); drop it or use --challenge http"
            )
    elif request.challenge == "dns-persist":
        if request.method != "persist":
            raise BadInput(
                f"--{request.method} is not for dns-persist-01: the record is published once"
                f" by you ({hints.persist_record(domains[0].removeprefix('*.'))} prints it);"
                " drop it"
            )
    elif request.challenge == "dns" and request.method in ("standalone", "webroot", "fleet"):
        raise BadInput(
            f"--{request.method} is for HTTP validation; drop it or use --challenge http"
        )
    if request.method in ("rfc2136", "hook", "lexicon") and request.challenge != "dns":
        raise BadInput(f"--dns-provider {request.method} needs --challenge dns")
    from certctl.challenges.dns.settings import settings_for

    settings = settings_for(request.method, request.dns_settings)
    if request.method == "webroot":
        if not request.webroot:
            raise BadInput("--webroot needs a directory")
        from pathlib import Path

        if not Path(request.webroot).is_dir():
            raise BadInput(f"webroot {request.webroot} is not a directory: check --webroot")
    if request.http_port is not None and not 0 < request.http_port < 65536:
        raise BadInput(f"invalid --http-port {request.http_port}: expected 1-65535")
    if request.tls_port is not None and not 0 < request.tls_port < 65536:
        raise BadInput(f"invalid --tls-port {request.tls_port}: expected 1-65535")
    tls = request.challenge == "tls-alpn"
    return Validation(
        challenge=request.challenge,  # type: ignore[arg-type]
        method=request.method,
        webroot=str(Path(request.webroot).resolve()) if request.webroot else None,
        http_port=request.http_port if request.method == "standalone" and not tls else None,
        tls_port=request.tls_port if tls else None,
        settings=settings,
    )


def ip_profile(
    ctx: Context, server: str, request: OrderRequest, before: CertRecord | None
) -> OrderRequest:
    """An IP-address order without --profile: the stored one, else the one the CA requires.

    Let's Encrypt issues IP-address certificates (RFC 8738) only from `shortlived`:
    when the CA's directory advertises it, it is chosen, and the user is told.
    """
    from dataclasses import replace

    if before is not None and before.profile:
        return replace(request, profile=before.profile)
    from certctl.policy.names import profile_for_ip

    chosen = profile_for_ip(ctx.acme(server).profiles())
    if chosen is None:
        return request
    ctx.reporter.warn(
        f"IP-address certificate: using the CA's {chosen!r} profile (it issues IP addresses"
        " only from that one); give --profile to choose another"
    )
    return replace(request, profile=chosen)
