"""certctl show / remove / export."""

from __future__ import annotations

import click

from certctl.cli.globalopts import CertctlCommand
from certctl.cli.options import complete_cert_names, json_option


@click.command("show", cls=CertctlCommand)
@click.argument("name", shell_complete=complete_cert_names)
@click.option("--pem", is_flag=True, help="Print the live full chain as PEM (never the key).")
@json_option
@click.pass_context
def show_command(ctx: click.Context, name: str, pem: bool, json_output: bool) -> None:
    """Show everything known about one certificate.

    Names, key, issuer, serial, fingerprint, validity, chain, validation (secrets
    redacted), renewal policy and next due time, notices, versions, live paths
    and any pending order.

    \b
    Examples:
      certctl show example.com
      certctl show example.com --json | jq .renewal.due_at
      certctl show example.com --pem | openssl x509 -noout -text
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.errors import BadInput
    from certctl.ops import inspect
    from certctl.ops.names import resolve_name

    if pem and json_output:
        raise BadInput("--pem and --json exclude each other: choose one")
    context = build_context(ctx, json_output=json_output)
    name = resolve_name(context, name)
    if pem:
        render.write_pem(inspect.live_fullchain(context, name))
        return
    report = inspect.show(context, name)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.show_report(report)


@click.command("remove", cls=CertctlCommand)
@click.argument("name", shell_complete=complete_cert_names)
@click.option(
    "-y", "--yes", is_flag=True, help="Do not ask (required when stdin is not a terminal)."
)
@json_option
@click.pass_context
def remove_command(ctx: click.Context, name: str, yes: bool, json_output: bool) -> None:
    """Delete a certificate with all its versions and its pending order.

    The entry disappears in one step; exits 3 when another certctl holds its lock.
    ACME cannot cancel an order: a pending one is dropped here and expires at the CA.

    \b
    Examples:
      certctl remove old.example.com
      certctl remove old.example.com --yes     # from a script
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.errors import BadInput
    from certctl.ops import inspect
    from certctl.ops.names import resolve_name

    context = build_context(ctx, json_output=json_output)
    name = resolve_name(context, name)

    def confirm(question: str) -> bool:
        if not context.interactive:
            raise BadInput(
                f"refusing to remove {name!r} without confirmation (stdin is not a terminal):"
                " add --yes"
            )
        return click.confirm(question, err=True)

    report = inspect.remove(context, name, None if yes else confirm)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.remove_report(report)


@click.command("export", cls=CertctlCommand)
@click.argument("name", shell_complete=complete_cert_names)
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory to publish cert.pem, chain.pem, fullchain.pem and privkey.pem in.",
)
@click.option(
    "--owner", metavar="USER[:GROUP]", help="Give the files to USER (and GROUP); needs root."
)
@click.option(
    "--key-mode",
    metavar="MODE",
    default="0600",
    show_default=True,
    help="Octal mode of privkey.pem (e.g. 0640 with --owner root:nginx).",
)
@json_option
@click.pass_context
def export_command(
    ctx: click.Context,
    name: str,
    directory: str,
    owner: str | None,
    key_mode: str,
    json_output: bool,
) -> None:
    """Publish the live files in a directory, switched in all at once, with the right modes.

    For servers that cannot read the store. DIR/cert.pem, chain.pem, fullchain.pem
    and privkey.pem lead (by symlink) to one complete set in DIR/.versions, and a
    single rename switches them all: a server never sees a certificate beside
    another's key. Certificates are 0644, the key 0600 (--key-mode); a symlink
    planted at a name is replaced, never followed. Works as a deploy hook, so every
    renewal refreshes the copy.

    \b
    Examples:
      certctl export example.com --dir /etc/nginx/tls
      certctl set example.com \\
        --deploy-hook 'certctl export $CERTCTL_NAME --dir /etc/nginx/tls && systemctl reload nginx'
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import inspect
    from certctl.ops.names import resolve_name

    mode = inspect.parse_mode(key_mode)
    context = build_context(ctx, json_output=json_output)
    report = inspect.export(
        context, resolve_name(context, name), directory, owner=owner, key_mode=mode
    )
    if json_output:
        render.print_json(report.to_json())
    else:
        render.export_report(report)


COMMANDS = [show_command, remove_command, export_command]
