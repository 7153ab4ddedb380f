"""certctl renew-due."""

from __future__ import annotations

import click

from certctl.cli.globalopts import CertctlCommand
from certctl.cli.options import json_option, timeout_option


@click.command("renew-due", cls=CertctlCommand)
@click.option(
    "--dry-run", is_flag=True, help="Show what would be renewed and notified; change nothing."
)
@click.option(
    "--force",
    "force",
    multiple=True,
    metavar="NAME",
    help="Renew NAME now even if not due, ignoring back-off (repeatable).",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Renewals running at once.",
)
@click.option(
    "--notice-days",
    type=click.FloatRange(0, 365),
    help="Warn this many days before expiry (default 14; never more than a third of the lifetime).",
)
@click.option(
    "--random-delay",
    type=click.FloatRange(0, 86400),
    default=0,
    metavar="SECONDS",
    help="Sleep a random time up to SECONDS first (spread a fleet of hosts).",
)
@click.option(
    "--probe-wait",
    type=click.FloatRange(0, 600),
    default=15,
    show_default=True,
    metavar="SECONDS",
    help="After a renewal, how long its endpoints get to serve it (probed until then).",
)
@click.option(
    "--no-probe",
    is_flag=True,
    help="Don't probe endpoints after renewals (a fleet whose hosts deploy later).",
)
@timeout_option(120)
@json_option
@click.pass_context
def renew_due_command(
    ctx: click.Context,
    dry_run: bool,
    force: tuple[str, ...],
    parallel: int,
    notice_days: float | None,
    random_delay: float,
    probe_wait: float,
    no_probe: bool,
    timeout: float,
    json_output: bool,
) -> None:
    """Renew every due certificate and warn about those that need a human.

    Silent when there is nothing to do (cron mails any output). Exit 0 when all
    is well, 1 when a renewal, hook or notification failed, 3 when another run
    held a certificate's lock.

    \b
    Examples:
      certctl renew-due                        # from cron, twice a day
      certctl renew-due --dry-run
      certctl renew-due --force example.com
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops.names import resolve_names
    from certctl.ops.renew import RenewOptions, renew_due
    from certctl.ops.renew import random_delay as sleep_random

    context = build_context(ctx, json_output=json_output)
    forced = resolve_names(context, force)
    sleep_random(random_delay)
    options = RenewOptions(
        dry_run=dry_run,
        force=forced,
        parallel=parallel,
        notice_days=notice_days,
        timeout=timeout,
        probe_wait=probe_wait,
        probe=not no_probe,
    )
    report = renew_due(context, options)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.renew_report(report)
    ctx.exit(int(report.exit_code))


@click.command("set", cls=CertctlCommand)
@click.argument("name")
@click.option(
    "--renew-before",
    metavar="DAYS|default",
    help="Renew when DAYS are left (overrides ARI and the lifetime rule; less than the"
    " certificate's lifetime minus a day); 'default' resets.",
)
@click.option(
    "--deploy-hook", metavar="CMD", help="Command run after the certificate changes; '' removes it."
)
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Where the certificate must be served (repeatable; replaces the list; port 443 by"
    " default; '' removes all). `probe` and `renew-due` check them.",
)
@click.option(
    "--sni", metavar="NAME", help="Server name to ask for at --endpoint (needed for IPs)."
)
@click.option(
    "--starttls",
    type=click.Choice(["smtp", "imap", "ftp"]),
    help="Upgrade a plain connection at --endpoint first (default ports 25, 143, 21).",
)
@json_option
@click.pass_context
def set_command(
    ctx: click.Context,
    name: str,
    renew_before: str | None,
    deploy_hook: str | None,
    endpoints: tuple[str, ...],
    sni: str | None,
    starttls: str | None,
    json_output: bool,
) -> None:
    """Change a certificate's settings: renewal point, deploy hook, endpoints.

    \b
    Examples:
      certctl set example.com --deploy-hook 'systemctl reload nginx'
      certctl set example.com --renew-before 20
      certctl set example.com --endpoint www.example.com --endpoint example.com:8443
      certctl set example.com --endpoint 192.0.2.7 --sni www.example.com
      certctl set mail.example.com --endpoint mail.example.com --starttls smtp
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops.names import resolve_name
    from certctl.ops.settings import update_settings

    context = build_context(ctx, json_output=json_output)
    record = update_settings(
        context,
        resolve_name(context, name),
        renew_before=renew_before,
        deploy_hook=deploy_hook,
        endpoints=list(endpoints) if endpoints else None,
        sni=sni,
        starttls=starttls,
    )
    document = {
        "name": record.name,
        "renew_before_days": record.renew_before_days,
        "deploy_hook": record.deploy_hook,
        "endpoints": [e.label for e in record.endpoints],
    }
    if json_output:
        render.print_json(document)
    else:
        shown = ", ".join(e.label for e in record.endpoints) or "(none)"
        render.say(
            f"{record.name}: renew_before = {record.renew_before_days or 'default'},"
            f" deploy_hook = {record.deploy_hook or '(none)'}, endpoints = {shown}"
        )


COMMANDS = [renew_due_command, set_command]
