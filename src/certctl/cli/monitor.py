"""certctl check (Nagios/Icinga/Sensu/Checkmk plugin) and certctl metrics (Prometheus)."""

from __future__ import annotations

from typing import Any

import click

from certctl.cli.globalopts import CertctlCommand
from certctl.cli.options import json_option, probe_timeout_option

UNKNOWN = 3  # the monitoring-plugins convention: a plugin that cannot tell exits 3


class PluginCommand(CertctlCommand):
    """A monitoring plugin: a usage error is UNKNOWN (exit 3), not CRITICAL (2)."""

    def make_context(
        self, info_name: str | None, args: list[str], *rest: Any, **kwargs: Any
    ) -> click.Context:
        """Parse as usual; bad options exit 3 with the usual one line on stderr.

        stdout gets the UNKNOWN status line the monitoring shows (its JSON with --json).
        """
        given = list(args)
        try:
            return super().make_context(info_name, args, *rest, **kwargs)
        except click.UsageError as e:
            from certctl.cli import render
            from certctl.ops.monitor import unknown

            report = unknown(e.format_message())
            if "--json" in given:
                render.print_json(report.to_json())
            else:
                render.write_text("\n".join(report.lines()) + "\n")
            e.exit_code = UNKNOWN  # type: ignore[misc]  # click reads it per instance
            raise


@click.command("check", cls=PluginCommand)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "-w",
    "--warning",
    type=click.FloatRange(0, 3650),
    default=14,
    show_default=True,
    metavar="DAYS",
    help="WARNING when fewer days are left (at most a third of the lifetime).",
)
@click.option(
    "-c",
    "--critical",
    type=click.FloatRange(0, 3650),
    default=7,
    show_default=True,
    metavar="DAYS",
    help="CRITICAL when fewer days are left (at most a sixth of the lifetime).",
)
@click.option("--probe", is_flag=True, help="Also probe the endpoints (see `certctl probe`).")
@probe_timeout_option
@json_option
@click.pass_context
def check_command(
    ctx: click.Context,
    names: tuple[str, ...],
    warning: float,
    critical: float,
    probe: bool,
    timeout: float,
    json_output: bool,
) -> None:
    """Monitoring plugin: one status line with perfdata, exit 0/1/2/3.

    OK, WARNING (days left below -w, a renewal failing, an endpoint unreachable),
    CRITICAL (below -c, expired, revoked, an endpoint serving anything but the
    live version) or UNKNOWN (the store cannot be read, a bad option), as
    Nagios, Icinga, Sensu and Checkmk expect.

    \b
    Examples:
      certctl check
      certctl check example.com -w 21 -c 7 --probe
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.errors import CertctlError
    from certctl.ops import monitor

    try:
        context = build_context(ctx, json_output=json_output)
        from certctl.ops.names import resolve_names

        report = monitor.check(
            context,
            resolve_names(context, names),
            warning=warning,
            critical=critical,
            probe=probe,
            timeout=timeout,
        )
    except CertctlError as e:
        report = monitor.unknown(str(e))
    if json_output:
        render.print_json(report.to_json())
    else:
        render.write_text("\n".join(report.lines()) + "\n")
    ctx.exit(report.status)


@click.command("metrics", cls=CertctlCommand)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=False),
    metavar="FILE",
    help="Write to FILE atomically (node_exporter's textfile collector) instead of stdout.",
)
@click.option("--probe", is_flag=True, help="Also probe the endpoints (certctl_endpoint_*).")
@probe_timeout_option
@click.pass_context
def metrics_command(ctx: click.Context, output: str | None, probe: bool, timeout: float) -> None:
    """Print the store's state in the Prometheus text exposition format.

    Per certificate: expiry, renewal-due, last renewal success and failure
    times, consecutive failures; with --probe, per endpoint whether it serves
    the live version.

    \b
    Examples:
      certctl metrics
      certctl metrics --probe -o /var/lib/prometheus/node-exporter/certctl.prom
    """
    from pathlib import Path

    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import monitor

    context = build_context(ctx)
    text = monitor.metrics(context, probe=probe, timeout=timeout)
    if output is None:
        render.write_text(text)
    else:
        monitor.write_metrics(Path(output), text)


COMMANDS = [check_command, metrics_command]
