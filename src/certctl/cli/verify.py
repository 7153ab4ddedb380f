"""certctl verify."""

from __future__ import annotations

import click

from certctl.cli.globalopts import CertctlCommand
from certctl.cli.options import json_option, timeout_option


@click.command("verify", cls=CertctlCommand)
@click.argument("name")
@timeout_option(120)
@json_option
@click.pass_context
def verify_command(ctx: click.Context, name: str, timeout: float, json_output: bool) -> None:
    """Check the challenges are visible, then ask the CA to validate them.

    Exits 3 (retry later) when the self-check fails; the CA is not contacted then.
    With --json the self-check results are printed whatever the outcome.

    \b
    Example:
      certctl verify example.com
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import obtain
    from certctl.ops.names import resolve_name

    context = build_context(ctx, json_output=json_output)
    try:
        report = obtain.verify(context, resolve_name(context, name), timeout)
    except obtain.VerifyFailed as e:
        if json_output:
            render.print_json(e.report.to_json())
        raise  # the error line on stderr and the exit code, at the edge
    if json_output:
        render.print_json(report.to_json())
    else:
        render.verify_report(report)


COMMANDS = [verify_command]
