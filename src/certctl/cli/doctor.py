"""certctl doctor."""

from __future__ import annotations

import click

from certctl.cli.globalopts import CertctlCommand
from certctl.cli.options import json_option


@click.command("doctor", cls=CertctlCommand)
@json_option
@click.pass_context
def doctor_command(ctx: click.Context, json_output: bool) -> None:
    """Check the store: every live pair complete and matching, metadata readable, modes.

    Exit 0 when healthy (warnings only), 1 when any error was found.

    \b
    Example:
      certctl doctor --json | jq '.findings[] | select(.severity == "error")'
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.store.doctor import check

    context = build_context(ctx, json_output=json_output)
    findings = check(context.store)
    errors = [f for f in findings if f.severity == "error"]
    if json_output:
        render.print_json(
            {
                "store": context.store.location,
                "healthy": not errors,
                "findings": [f.to_json() for f in findings],
            }
        )
    else:
        for finding in findings:
            where = f"{finding.name}: " if finding.name else ""
            render.say(f"{finding.severity}: {where}{finding.path}: {finding.problem}")
        if not findings:
            render.say(f"store {context.store.location}: healthy")
    ctx.exit(1 if errors else 0)


COMMANDS = [doctor_command]
