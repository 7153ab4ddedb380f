"""certctl list."""

from __future__ import annotations

import click

from certctl.cli.globalopts import CertctlCommand
from certctl.cli.options import json_option


@click.command("list", cls=CertctlCommand)
@json_option
@click.pass_context
def list_command(ctx: click.Context, json_output: bool) -> None:
    """List every certificate with its expiry, renewal method and state.

    \b
    Examples:
      certctl list
      certctl list --json | jq '.certificates[] | select(.state != "valid")'
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import listing

    entries = listing.list_certificates(build_context(ctx, json_output=json_output))
    if json_output:
        render.print_json({"certificates": [e.to_json() for e in entries]})
    else:
        render.list_table(entries)


COMMANDS = [list_command]
