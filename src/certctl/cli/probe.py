"""certctl probe: what each endpoint serves, against the live version."""

from __future__ import annotations

import click

from certctl.cli.globalopts import CertctlCommand
from certctl.cli.options import json_option, probe_timeout_option


@click.command("probe", cls=CertctlCommand)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@probe_timeout_option
@json_option
@click.pass_context
def probe_command(
    ctx: click.Context, names: tuple[str, ...], timeout: float, json_output: bool
) -> None:
    """Check that each endpoint serves the live version (a TLS handshake, no HTTP).

    Probes the endpoints recorded with `certctl set NAME --endpoint HOST[:PORT]`,
    of NAME or of every certificate. Exit 0 when all serve the live version, 1
    when one serves anything else (an older version, an unknown or expired
    certificate, other names, an incomplete chain), else 3 when one was
    unreachable.

    \b
    Examples:
      certctl probe
      certctl probe example.com --json
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops.names import resolve_names
    from certctl.ops.probe import probe

    context = build_context(ctx, json_output=json_output)
    report = probe(context, resolve_names(context, names), timeout=timeout)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.probe_table(report)
    ctx.exit(int(report.exit_code))


COMMANDS = [probe_command]
