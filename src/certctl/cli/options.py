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


def confirm_tos_for(interactive: bool) -> Callable[[str], bool] | None:
    """On a terminal, ask to accept the CA's terms; otherwise never prompt."""
    if not interactive:
        return None

    def ask(terms: str) -> bool:
        return click.confirm(f"Accept the CA's terms of service ({terms})?", err=True)

    return ask
