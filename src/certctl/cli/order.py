"""certctl order / obtain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from certctl.cli.globalopts import CertctlCommand
from certctl.cli.options import (
    confirm_drop_for,
    confirm_tos_for,
    json_option,
    lexicon_provider_completion,
    timeout_option,
)

if TYPE_CHECKING:
    from certctl.ops.request import OrderRequest

KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")


def _order_options(fn: click.decorators.FC) -> click.decorators.FC:
    decorators = [
        click.option(
            "-d",
            "--domain",
            "domains",
            multiple=True,
            required=True,
            help="Domain to include (repeatable); the first names the certificate.",
        ),
        click.option("--name", help="Certificate name (default: the first domain)."),
        click.option(
            "--challenge",
            type=click.Choice(["http", "dns", "tls-alpn", "dns-persist"]),
            help="Validation: HTTP-01, DNS-01 (required for wildcards), TLS-ALPN-01 (certctl's"
            " own TLS responder, for hosts without port 80) or dns-persist-01 (one TXT record"
            " published once; renewals need no DNS change). Default: the certificate's"
            " current method, else http.",
        ),
        click.option(
            "--webroot",
            type=click.Path(file_okay=False),
            help="HTTP-01: write the challenge into DIR/.well-known/acme-challenge/.",
        ),
        click.option(
            "--standalone", is_flag=True, help="HTTP-01: serve it from certctl's own server."
        ),
        click.option(
            "--http-fleet",
            is_flag=True,
            help="HTTP-01 behind a load balancer: publish it in the shared store, where"
            " 'certctl serve-challenges' on every host answers it.",
        ),
        click.option(
            "--manual",
            is_flag=True,
            help="Publish the challenge by hand (the default for a new certificate).",
        ),
        click.option(
            "--http-port",
            type=click.IntRange(1, 65535),
            help="Port for --standalone (default 80).",
        ),
        click.option(
            "--tls-port",
            type=click.IntRange(1, 65535),
            help="TLS-ALPN-01: port certctl's TLS responder listens on (default 443; the CA"
            " connects to 443, so forward it when another port is used).",
        ),
        click.option(
            "--key-type",
            type=click.Choice(KEY_TYPES),
            default="ec256",
            show_default=True,
            help="Private key type.",
        ),
        click.option("--profile", help="ACME profile, e.g. shortlived (if the CA offers it)."),
        click.option("--email", envvar="CERTCTL_EMAIL", help="Contact e-mail for a new account."),
        click.option("--agree-tos", is_flag=True, help="Accept the CA's terms for a new account."),
        click.option("--deploy-hook", help="Command run after the certificate changes."),
        click.option(
            "--drop-names",
            is_flag=True,
            help="Allow leaving out names the live certificate has (asked on a terminal).",
        ),
        # -- DNS-01 automation (README: "DNS-01 automation") --
        click.option(
            "--dns-provider",
            type=click.Choice(["manual", "rfc2136", "hook", "lexicon"]),
            help="DNS-01: publish by hand (default), by RFC 2136 update, by --dns-hook, or"
            " through a DNS host's API (lexicon, with --lexicon-provider).",
        ),
        click.option("--dns-server", metavar="IP[:PORT]", help="rfc2136: the primary to update."),
        click.option("--tsig-key", metavar="NAME", help="rfc2136: TSIG key name."),
        click.option(
            "--tsig-algorithm",
            metavar="ALG",
            help="rfc2136: TSIG algorithm (default hmac-sha256; hmac-sha512, hmac-sha1, ...).",
        ),
        click.option(
            "--tsig-secret-file",
            type=click.Path(dir_okay=False),
            help="rfc2136: file with the base64 secret (or a BIND key clause).",
        ),
        click.option(
            "--tsig-secret-env", metavar="VAR", help="rfc2136: variable holding the secret."
        ),
        click.option(
            "--dns-zone",
            help="rfc2136, lexicon: the zone to update (default: found by SOA, or the"
            " longest zone the provider hosts).",
        ),
        click.option("--dns-hook", metavar="CMD", help="hook: command that adds/removes TXT."),
        click.option(
            "--lexicon-provider",
            metavar="NAME",
            shell_complete=lexicon_provider_completion,
            help="lexicon: the DNS host, e.g. cloudflare ('certctl dns providers' lists them).",
        ),
        click.option(
            "--dns-credentials",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help="lexicon: 0600 file with the provider's options (TOML, or VAR=value lines);"
            " default: its LEXICON_<PROVIDER>_<OPTION> variables.",
        ),
        click.option(
            "--dns-nameserver",
            "dns_nameservers",
            metavar="IP[:PORT]",
            multiple=True,
            help="Servers that must serve the TXT before the CA is asked (default: the NS set).",
        ),
        click.option(
            "--propagation-timeout",
            type=click.FloatRange(1, 3600),
            help="Seconds to wait for every name server to serve the TXT (default 120).",
        ),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


@dataclass(frozen=True)
class OrderOptions:
    """The options order and obtain share, as click parses them (one field per option)."""

    domains: tuple[str, ...]
    name: str | None
    challenge: str | None
    webroot: str | None
    standalone: bool
    http_fleet: bool
    manual: bool
    http_port: int | None
    tls_port: int | None
    key_type: str
    profile: str | None
    email: str | None
    agree_tos: bool
    deploy_hook: str | None
    drop_names: bool
    dns_provider: str | None
    dns_server: str | None
    tsig_key: str | None
    tsig_algorithm: str | None
    tsig_secret_file: str | None
    tsig_secret_env: str | None
    dns_zone: str | None
    dns_hook: str | None
    lexicon_provider: str | None
    dns_credentials: str | None
    dns_nameservers: tuple[str, ...]
    propagation_timeout: float | None


def _both_manual(options: OrderOptions) -> bool:
    """--manual --dns-provider manual say the same thing twice: allowed."""
    return options.manual and options.dns_provider == "manual"


def _request(options: OrderOptions) -> OrderRequest:
    from certctl.errors import BadInput
    from certctl.ops.request import OrderRequest

    chosen = [
        flag
        for flag, given in (
            ("--webroot", options.webroot),
            ("--standalone", options.standalone),
            ("--http-fleet", options.http_fleet),
            ("--manual", options.manual),
            ("--dns-provider", bool(options.dns_provider) and not _both_manual(options)),
        )
        if given
    ]
    if len(chosen) > 1:
        raise BadInput(f"{chosen[0]} and {chosen[1]} exclude each other: choose one")
    if options.http_port and (not options.standalone or options.challenge == "tls-alpn"):
        raise BadInput("--http-port is for HTTP-01 --standalone (TLS-ALPN-01: --tls-port)")
    if options.tls_port and options.challenge != "tls-alpn":
        raise BadInput("--tls-port needs --challenge tls-alpn")
    # None: no method named, so an existing certificate keeps its own (ops/request.with_method)
    method = (
        "webroot"
        if options.webroot
        else "standalone"
        if options.standalone
        else "fleet"
        if options.http_fleet
        else "manual"
        if options.manual
        else None
    )
    if options.dns_provider:
        if options.challenge != "dns":
            raise BadInput("--dns-provider needs --challenge dns")
        method = options.dns_provider
    dns_settings: dict[str, object] = {
        "server": options.dns_server,
        "tsig_key": options.tsig_key,
        "tsig_algorithm": options.tsig_algorithm,
        "tsig_secret_file": options.tsig_secret_file,
        "tsig_secret_env": options.tsig_secret_env,
        "zone": options.dns_zone,
        "hook": options.dns_hook,
        "lexicon_provider": options.lexicon_provider,
        "credentials_file": options.dns_credentials,
        "nameservers": list(options.dns_nameservers),
        "propagation_timeout": options.propagation_timeout,
    }
    return OrderRequest(
        domains=list(options.domains),
        name=options.name,
        challenge=options.challenge,
        method=method,
        webroot=options.webroot,
        http_port=options.http_port,
        tls_port=options.tls_port,
        key_type=options.key_type,
        profile=options.profile,
        email=options.email,
        agree_tos=options.agree_tos,
        deploy_hook=options.deploy_hook,
        drop_names=options.drop_names,
        dns_settings={k: v for k, v in dns_settings.items() if v not in (None, [])},
    )


@click.command("order", cls=CertctlCommand)
@_order_options
@json_option
@click.pass_context
def order_command(ctx: click.Context, /, json_output: bool, **options: Any) -> None:
    """Place an order and print what must be published to prove control.

    \b
    Examples:
      certctl order -d example.com -d www.example.com --webroot /var/www/html --agree-tos
      certctl order -d '*.example.com' -d example.com --challenge dns
      certctl order -d example.com --challenge tls-alpn --agree-tos
      certctl order -d 192.0.2.10 --standalone --profile shortlived --agree-tos
      certctl order -d '*.example.com' -d example.com --challenge dns \\
        --dns-provider rfc2136 --dns-server 192.0.2.53 --tsig-key certctl \\
        --tsig-secret-file /etc/certctl/tsig.key
      certctl order -d '*.example.com' -d example.com --challenge dns \\
        --dns-provider lexicon --lexicon-provider cloudflare \\
        --dns-credentials /etc/certctl/cloudflare.toml
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import obtain

    context = build_context(ctx, json_output=json_output)
    report = obtain.order(
        context,
        _request(OrderOptions(**options)),
        confirm_tos_for(context.interactive),
        confirm_drop_for(context.interactive),
    )
    if json_output:
        render.print_json(report.to_json())
    else:
        render.order_report(report)


@click.command("obtain", cls=CertctlCommand)
@_order_options
@click.option("--force", is_flag=True, help="Issue even if the current certificate is not due.")
@timeout_option(120)
@json_option
@click.pass_context
def obtain_command(
    ctx: click.Context, /, json_output: bool, timeout: float, force: bool, **options: Any
) -> None:
    """Order, verify and issue in one go (automatic validation only).

    Automatic: --standalone, --webroot, or --challenge dns with --dns-provider rfc2136, hook
    or lexicon;
    an existing certificate keeps its method unless another is given. A certificate
    with the same names that is valid and not due is kept (exit 0) unless --force.

    \b
    Examples:
      certctl obtain -d example.com --standalone --agree-tos
      certctl obtain -d '*.example.com' --challenge dns --dns-provider hook \\
        --dns-hook /usr/local/bin/dns-hook --agree-tos
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import reuse

    request = _request(OrderOptions(**options))
    context = build_context(ctx, json_output=json_output)
    report = reuse.obtain(
        context,
        request,
        timeout,
        force=force,
        confirm_tos=confirm_tos_for(context.interactive),
        confirm_drop=confirm_drop_for(context.interactive),
    )
    if json_output:
        render.print_json(report.to_json())
    else:
        render.issue_report(report)


COMMANDS = [order_command, obtain_command]
