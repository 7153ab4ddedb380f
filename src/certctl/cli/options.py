"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

F = Callable[..., Any]


def json_option(fn: F) -> F:
    """--json: print one JSON document on stdout and nothing else there."""
    return click.option("--json", "json_output", is_flag=True, help="Print one JSON document.")(fn)


def timeout_option(default: float) -> Callable[[F], F]:
    """--timeout SECONDS for waiting on the CA."""
    return click.option(
        "--timeout",
        type=click.FloatRange(1, 3600),
        default=default,
        show_default=True,
        help="Seconds to wait for the CA.",
    )


def probe_timeout_option(fn: F) -> F:
    """--timeout SECONDS per endpoint probe (connect and TLS handshake)."""
    return click.option(
        "--timeout",
        type=click.FloatRange(0.1, 120),
        default=5,
        show_default=True,
        help="Seconds per endpoint for connecting and the TLS handshake.",
    )(fn)


def confirm_tos_for(interactive: bool) -> Callable[[str], bool] | None:
    """On a terminal, ask to accept the CA's terms; otherwise never prompt."""
    if not interactive:
        return None

    def ask(terms: str) -> bool:
        return click.confirm(f"Accept the CA's terms of service ({terms})?", err=True)

    return ask


def confirm_drop_for(interactive: bool) -> Callable[[str], bool] | None:
    """On a terminal, ask before an order drops names; otherwise never prompt (exit 2)."""
    if not interactive:
        return None

    def ask(question: str) -> bool:
        return click.confirm(question, err=True)

    return ask


def complete_cert_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of the certificate names in the store; quick, and never fails."""
    try:
        import os

        from certctl.cli.globalopts import global_values
        from certctl.store.opening import open_store

        root = global_values(ctx).get("store") or os.environ.get("CERTCTL_STORE")
        if not root:
            from certctl.cli.runtime import default_store

            root = default_store()
        store = open_store(root, warn=lambda message: None)
        try:
            names = store.names()
        finally:
            store.close()
        return [n for n in names if n.startswith(incomplete)]
    except Exception:  # completion must never break the user's shell
        return []


def add_name_completion(command: click.Command) -> None:
    """Complete stored names for every NAME argument (and NAME option) in the command tree."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_name_completion(sub)
    for param in command.params:
        takes_name = (isinstance(param, click.Argument) and param.name == "name") or (
            isinstance(param, click.Option) and param.metavar == "NAME"
        )
        if takes_name and param._custom_shell_complete is None:
            param._custom_shell_complete = complete_cert_names


def lexicon_provider_completion(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[str]:
    """Shell completion of dns-lexicon's providers (imports lexicon only when completing)."""
    try:
        from certctl.ops.dnsproviders import list_providers

        return [p.name for p in list_providers() if p.name.startswith(incomplete)]
    except Exception:  # completion must never break the user's shell (lexicon not installed)
        return []
