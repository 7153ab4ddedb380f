"""certctl issue."""

from __future__ import annotations

import click

from certctl.cli.globalopts import CertctlCommand
from certctl.cli.options import json_option, timeout_option


@click.command("issue", cls=CertctlCommand)
@click.argument("name")
@click.option("--force", is_flag=True, help="Re-issue even if the certificate is not due.")
@timeout_option(120)
@json_option
@click.pass_context
def issue_command(
    ctx: click.Context, name: str, force: bool, timeout: float, json_output: bool
) -> None:
    """Finalize the order and store the certificate; re-issue an existing one.

    With automatic validation (--standalone/--webroot/DNS provider) and no pending order,
    a certificate that is due is re-issued in one go (order, verify, issue); the previous
    version is kept. One that is valid and not due is kept (exit 0) unless --force.

    \b
    Example:
      certctl issue example.com
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import reuse
    from certctl.ops.names import resolve_name

    context = build_context(ctx, json_output=json_output)
    report = reuse.issue(context, resolve_name(context, name), timeout, force=force)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.issue_report(report)
    if report.hook_error:
        click.echo(f"error: {report.hook_error} (the new certificate is stored and live)", err=True)
        ctx.exit(1)


COMMANDS = [issue_command]
