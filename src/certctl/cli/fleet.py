"""certctl deploy and certctl serve-challenges: what every host of a fleet runs."""

from __future__ import annotations

import click

from certctl.cli.globalopts import CertctlCommand
from certctl.cli.options import json_option


@click.command("deploy", cls=CertctlCommand)
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="NAME",
    help="Certificate this host serves; a glob such as 'shop-*' (repeatable)."
    " Default: names in the config's [deploy].",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Where this host's files go: DIR/NAME/{cert,chain,fullchain,privkey}.pem."
    " Default: dir in [deploy].",
)
@click.option(
    "--hook",
    help="Command run once when any certificate changed (e.g. 'systemctl reload nginx')."
    " Default: hook in [deploy].",
)
@click.option(
    "--host-id",
    envvar="CERTCTL_HOST_ID",
    help="This host's name in the fleet [env CERTCTL_HOST_ID; default: the host name].",
)
@click.option("--owner", metavar="USER[:GROUP]", help="Owner of the files written.")
@json_option
@click.pass_context
def deploy_command(
    ctx: click.Context,
    names: tuple[str, ...],
    directory: str | None,
    hook: str | None,
    host_id: str | None,
    owner: str | None,
    json_output: bool,
) -> None:
    """Write the live files of this host's certificates, and reload only on change.

    For each certificate, DIR/NAME/ gets the live version's files, switched in
    at once (a server never sees a certificate beside another's key; the key is
    0600). Unchanged certificates are not touched; the hook runs once when any
    changed, never otherwise; nothing is printed when nothing changed (cron).
    Each host records the version it deployed in the store (see 'certctl list').
    Exit 1 when a certificate could not be written or the hook failed.

    \b
    Examples:
      certctl deploy --name 'shop-*' --dir /etc/nginx/tls --hook 'systemctl reload nginx'
      certctl deploy          # with [deploy] dir, names and hook in the config file
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import fleet

    context = build_context(ctx, json_output=json_output)
    request = fleet.DeployRequest(
        patterns=names, directory=directory, hook=hook, host=host_id, owner=owner
    )
    report = fleet.deploy(context, request)
    if json_output:
        render.print_json(report.to_json())
    else:
        _say_deployed(report)
    ctx.exit(1 if report.failed else 0)


def _say_deployed(report: object) -> None:
    """One line per certificate written or failed, and the hook's outcome; else nothing."""
    from certctl.cli import render
    from certctl.ops.fleet import DeployReport

    assert isinstance(report, DeployReport)
    for entry in report.certificates:
        if entry.action == "written":
            was = f" (was {entry.previous})" if entry.previous else ""
            render.say(f"{entry.name}: deployed version {entry.version}{was} to {entry.directory}")
        elif entry.action == "failed":
            render.say(f"{entry.name}: FAILED — {entry.error}")
    if report.hook_error:
        render.say(f"hook: FAILED — {report.hook_error}")
    elif report.hook_ran:
        render.say("hook: ran")


@click.command("serve-challenges", cls=CertctlCommand)
@click.option(
    "--listen",
    default="127.0.0.1:8402",
    show_default=True,
    metavar="ADDR:PORT",
    help="Where to answer; the load balancer or web server forwards"
    " /.well-known/acme-challenge/ here.",
)
@click.pass_context
def serve_challenges_command(ctx: click.Context, listen: str) -> None:
    """Answer HTTP-01 challenges from the shared store, on every host behind a balancer.

    Serves GET /.well-known/acme-challenge/<token> with the response the renewing
    host published (--http-fleet), 404 for anything else. Runs until SIGTERM.

    \b
    Examples:
      certctl serve-challenges --listen 127.0.0.1:8402
      certctl serve-challenges --listen '[::]:80'      # directly on port 80
    """
    from certctl.cli.output import write_err
    from certctl.cli.runtime import build_context
    from certctl.ops import fleet

    context = build_context(ctx)

    def ready(address: tuple[str, int]) -> None:
        write_err(f"serving HTTP-01 responses from {context.store.location} on {listen}\n")

    fleet.serve_challenges(context, listen, ready)


COMMANDS = [deploy_command, serve_challenges_command]
