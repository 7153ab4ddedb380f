"""certctl account register|update|show|deactivate|rollover, and certctl revoke."""

from __future__ import annotations

import click

from certctl.cli.globalopts import CertctlCommand, CertctlSubGroup
from certctl.cli.options import confirm_tos_for, json_option

KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")
REASONS = (
    "unspecified",
    "keyCompromise",
    "superseded",
    "cessationOfOperation",
    "affiliationChanged",
)


@click.group("account", cls=CertctlSubGroup)
def account_group() -> None:
    """Manage the ACME account at the CA chosen with --server.

    certctl keeps one account per CA directory URL; `order` creates it on first use.
    Register it yourself for External Account Binding (ZeroSSL and other CAs).

    \b
    Examples:
      certctl account register --email ops@example.com --agree-tos
      certctl --server https://acme.zerossl.com/v2/DV90 account register --agree-tos \\
        --eab-kid KID --eab-hmac-key-env ZEROSSL_EAB_HMAC_KEY
      certctl account update --email new-ops@example.com
      certctl account show
    """


@account_group.command("register")
@click.option("--email", envvar="CERTCTL_EMAIL", help="Contact e-mail for the account.")
@click.option("--agree-tos", is_flag=True, help="Accept the CA's terms of service.")
@click.option("--eab-kid", metavar="KID", help="External Account Binding key identifier.")
@click.option(
    "--eab-hmac-key-env", metavar="VAR", help="Environment variable holding the EAB HMAC key."
)
@click.option(
    "--eab-hmac-key-file",
    type=click.Path(dir_okay=False),
    help="File holding the EAB HMAC key (base64url).",
)
@click.option(
    "--key-type",
    type=click.Choice(KEY_TYPES),
    default="ec256",
    show_default=True,
    help="Account key type.",
)
@json_option
@click.pass_context
def register_command(
    ctx: click.Context,
    email: str | None,
    agree_tos: bool,
    eab_kid: str | None,
    eab_hmac_key_env: str | None,
    eab_hmac_key_file: str | None,
    key_type: str,
    json_output: bool,
) -> None:
    """Create the account at the CA (or show the one that exists).

    On an existing account a different --email is refused (exit 2, nothing
    changed): change the contact with 'certctl account update --email ADDR'.

    The EAB HMAC key is read from a variable or a file, never from an argument,
    and is neither printed nor stored.

    \b
    Examples:
      certctl account register --email ops@example.com --agree-tos
      certctl account register --agree-tos --eab-kid kid-1 --eab-hmac-key-file /etc/certctl/eab
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import accounts

    eab = accounts.load_eab(eab_kid, eab_hmac_key_env, eab_hmac_key_file)
    context = build_context(ctx, json_output=json_output)
    request = accounts.RegisterRequest(email=email, agree_tos=agree_tos, eab=eab, key_type=key_type)
    report = accounts.register(context, request, confirm_tos_for(context.interactive))
    if json_output:
        render.print_json(report.to_json())
    else:
        render.account_report(report, "register")


@account_group.command("update")
@click.option("--email", required=True, metavar="ADDR", help="The new contact e-mail address.")
@json_option
@click.pass_context
def update_command(ctx: click.Context, email: str, json_output: bool) -> None:
    """Change the account's contact e-mail at the CA (RFC 8555 §7.3.2).

    The CA replaces the account's contact with the new address; the store
    records it too. The account, its key and its certificates stay as they are.

    \b
    Examples:
      certctl account update --email new-ops@example.com
      certctl --server letsencrypt-staging account update --email ops@example.com --json
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import accounts

    report = accounts.update(build_context(ctx, json_output=json_output), email)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.account_report(report, "update")


@account_group.command("show")
@click.option("--offline", is_flag=True, help="Show what the store knows; ask the CA nothing.")
@json_option
@click.pass_context
def show_command(ctx: click.Context, offline: bool, json_output: bool) -> None:
    """Show the account: URI, contact and status as the CA has them, key type.

    \b
    Examples:
      certctl account show
      certctl --server letsencrypt-staging account show --json
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import accounts

    report = accounts.show(build_context(ctx, json_output=json_output), offline=offline)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.account_report(report, "show")


@account_group.command("persist-record")
@click.option(
    "-d", "--domain", required=True, help="The domain to bind (its wildcard: --wildcard)."
)
@click.option(
    "--wildcard", is_flag=True, help="Let the record cover *.DOMAIN too (policy=wildcard)."
)
@json_option
@click.pass_context
def persist_record_command(
    ctx: click.Context, domain: str, wildcard: bool, json_output: bool
) -> None:
    """Print the dns-persist-01 TXT record binding DOMAIN to this CA and account.

    Publish it once; then 'order --challenge dns-persist' and every renewal
    validate with it, with no DNS change. No order is placed.

    \b
    Examples:
      certctl account persist-record -d example.com --wildcard
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import records

    record = records.persist_record(build_context(ctx, json_output=json_output), domain, wildcard)
    if json_output:
        render.print_json(record.to_json())
    else:
        click.echo(record.zone_line)


@account_group.command("caa")
@click.option("-d", "--domain", required=True, help="The domain the CAA records are for.")
@json_option
@click.pass_context
def caa_command(ctx: click.Context, domain: str, json_output: bool) -> None:
    """Print CAA records limiting DOMAIN to this CA, this account and its methods.

    RFC 8657: `accounturi` names this account, `validationmethods` the methods
    of the stored certificates for DOMAIN; paste the lines into the zone file.

    \b
    Examples:
      certctl account caa -d example.com
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import records

    found = records.caa_records(build_context(ctx, json_output=json_output), domain)
    if json_output:
        render.print_json(found.to_json())
    else:
        for line in found.lines:
            click.echo(line)


@account_group.command("deactivate")
@click.option(
    "-y", "--yes", is_flag=True, help="Do not ask (required when stdin is not a terminal)."
)
@json_option
@click.pass_context
def deactivate_command(ctx: click.Context, yes: bool, json_output: bool) -> None:
    """Deactivate the account for good (RFC 8555 §7.3.6).

    The CA refuses it from then on: orders need a new account ('account register').
    Certificates already issued stay valid.

    \b
    Example:
      certctl account deactivate --yes
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.errors import BadInput, Declined
    from certctl.ops import accounts

    context = build_context(ctx, json_output=json_output)
    if not yes:
        if not context.interactive:
            raise BadInput(
                "refusing to deactivate the account without confirmation (stdin is not a"
                " terminal): add --yes"
            )
        question = f"Deactivate the ACME account at {context.settings.server_url} for good?"
        if not click.confirm(question, err=True):
            raise Declined("not deactivated: the account was left as it was")
    report = accounts.deactivate(context)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.account_report(report, "deactivate")


@account_group.command("rollover")
@click.option(
    "--key-type",
    type=click.Choice(KEY_TYPES),
    help="Type of the new key (default: the current key's type).",
)
@json_option
@click.pass_context
def rollover_command(ctx: click.Context, key_type: str | None, json_output: bool) -> None:
    """Replace the account key with a new one (RFC 8555 §7.3.5 key change).

    Both keys are kept until the CA has confirmed; an interrupted rollover is
    settled by the next command that uses the account.

    \b
    Examples:
      certctl account rollover
      certctl account rollover --key-type ec384 --json
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import accounts

    report = accounts.rollover(build_context(ctx, json_output=json_output), key_type)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.rollover_report(report)


@click.command("revoke", cls=CertctlCommand)
@click.argument("name")
@click.option(
    "--reason",
    type=click.Choice(REASONS),
    default="unspecified",
    show_default=True,
    help="Revocation reason; keyCompromise signs with the certificate's own key.",
)
@json_option
@click.pass_context
def revoke_command(ctx: click.Context, name: str, reason: str, json_output: bool) -> None:
    """Revoke the live certificate at its CA and mark it revoked.

    Signed by the account that obtained it, or with --reason keyCompromise by the
    certificate's own key. renew-due then replaces it (automatic validation) or
    sends a notice. An uploaded certificate can be revoked only for keyCompromise.

    \b
    Examples:
      certctl revoke example.com --reason superseded
      certctl revoke example.com --reason keyCompromise --json
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import revoke
    from certctl.ops.names import resolve_name

    context = build_context(ctx, json_output=json_output)
    report = revoke.revoke(context, resolve_name(context, name), reason)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.revoke_report(report)


COMMANDS = [account_group, revoke_command]
