"""certctl dns providers: what --dns-provider lexicon can talk to."""

from __future__ import annotations

import click

from certctl.cli.globalopts import CertctlSubGroup
from certctl.cli.options import json_option, lexicon_provider_completion


@click.group("dns", cls=CertctlSubGroup)
def dns_group() -> None:
    """DNS-01 automation: the DNS providers certctl can publish through.

    \b
    Examples:
      certctl dns providers
      certctl dns providers cloudflare
    """


@dns_group.command("providers")
@click.argument("name", required=False, shell_complete=lexicon_provider_completion)
@json_option
def providers_command(name: str | None, json_output: bool) -> None:
    """List the DNS providers (dns-lexicon's), or the options one of them reads.

    Each option is read from --dns-credentials FILE (TOML `name = "value"`, or the
    variables as `VAR=value` lines) or from its environment variable; credentials
    are never given on the command line. Needs `pip install 'certctl[dns]'`.

    \b
    Examples:
      certctl dns providers
      certctl dns providers powerdns --json
    """
    from certctl.cli import render
    from certctl.ops import dnsproviders

    if name is None:
        found = dnsproviders.list_providers()
        if json_output:
            render.print_json({"providers": [p.to_json() for p in found]})
            return
        for provider in found:
            extra = "" if provider.installed else f"  (pip install 'dns-lexicon[{provider.name}]')"
            render.say(f"{provider.name}{extra}")
        return
    info = dnsproviders.describe(name)
    if json_output:
        render.print_json(info.to_json())
        return
    render.say(f"{info.name}: --dns-provider lexicon --lexicon-provider {info.name}")
    if not info.installed:
        render.say(f"  needs: pip install 'dns-lexicon[{info.name}]'")
    for option in info.options:
        kind = "credential" if option["credential"] else "option"
        render.say(f"  {option['name']} ({kind}; {option['env']}): {option['help']}")


COMMANDS = [dns_group]
