"""The global options (--store, --config, ...), before the subcommand or after it.

The group reads them (and their CERTCTL_ variables); every subcommand repeats them,
so `certctl list --store DIR` works like `certctl --store DIR list`, and the value
given last wins. The subcommands' classes list them apart in their help.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from click.core import ParameterSource
from click.formatting import HelpFormatter

F = Callable[..., Any]


@dataclass(frozen=True)
class GlobalSpec:
    """One global option: its parameter name (also its key in ctx.obj) and click settings."""

    name: str
    flag: str
    envvar: str
    settings: dict[str, Any]


GLOBAL_OPTIONS = (
    GlobalSpec(
        "store",
        "--store",
        "CERTCTL_STORE",
        {
            "type": click.Path(file_okay=False),
            "help": "Store directory, or postgresql://USER@HOST/DB for a shared store"
            " [env CERTCTL_STORE; default: the user data dir].",
        },
    ),
    GlobalSpec(
        "store_key_file",
        "--store-key-file",
        "CERTCTL_STORE_KEY_FILE",
        {
            "type": click.Path(dir_okay=False),
            "help": "Store key (from 'certctl store init-key') that seals the private keys"
            " of a postgresql:// store [env CERTCTL_STORE_KEY_FILE].",
        },
    ),
    GlobalSpec(
        "config",
        "--config",
        "CERTCTL_CONFIG",
        {
            "type": click.Path(dir_okay=False),
            "help": "Config file (TOML) [env CERTCTL_CONFIG; default: user config"
            " dir/config.toml].",
        },
    ),
    GlobalSpec(
        "server",
        "--server",
        "CERTCTL_SERVER",
        {
            "help": "ACME CA: letsencrypt (default), letsencrypt-staging or a directory URL"
            " [env CERTCTL_SERVER].",
        },
    ),
    GlobalSpec(
        "ca_bundle",
        "--ca-bundle",
        "CERTCTL_CA_BUNDLE",
        {
            "type": click.Path(dir_okay=False, exists=True),
            "help": "CA bundle to trust for the ACME server's TLS (private/test CA)"
            " [env CERTCTL_CA_BUNDLE].",
        },
    ),
    GlobalSpec(
        "resolvers",
        "--resolver",
        "CERTCTL_RESOLVER",
        {
            "multiple": True,
            "help": "IP[:PORT] of a DNS resolver for self-checks (repeatable)"
            " [env CERTCTL_RESOLVER].",
        },
    ),
    GlobalSpec(
        "check_http_port",
        "--check-http-port",
        "CERTCTL_CHECK_HTTP_PORT",
        {
            "type": click.IntRange(1, 65535),
            "help": "Port the HTTP-01 self-check connects to (default 80, as the CA does).",
        },
    ),
    GlobalSpec(
        "check_tls_port",
        "--check-tls-port",
        "CERTCTL_CHECK_TLS_PORT",
        {
            "type": click.IntRange(1, 65535),
            "help": "Port the TLS-ALPN-01 self-check connects to (default 443, as the CA does).",
        },
    ),
    GlobalSpec(
        "debug",
        "--debug",
        "CERTCTL_DEBUG",
        {"is_flag": True, "help": "Show tracebacks and debug logs."},
    ),
)
PATH_OPTIONS = (
    "store",
    "store_key_file",
    "config",
    "ca_bundle",
)  # an empty variable for these is refused
_GIVEN = "certctl.globals"  # ctx.meta: global options given after a subcommand


def global_options(fn: F) -> F:
    """The global options on the top-level group, each also read from its CERTCTL_ variable."""
    for spec in reversed(GLOBAL_OPTIONS):
        fn = click.option(spec.flag, spec.name, envvar=spec.envvar, **spec.settings)(fn)
    return fn


class GlobalOption(click.Option):
    """A global option repeated on a subcommand; listed under "Global options".

    It reads no environment variable (the group's copy does), and a value given on
    the command line goes to ctx.meta, so the value given last wins wherever it is.
    """


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if param.name and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
        ctx.meta.setdefault(_GIVEN, {})[param.name] = value
        if param.name == "debug":
            ctx.meta["certctl.debug"] = bool(value)
    return value


def add_global_options(command: click.Command) -> None:
    """Give every subcommand (groups too) the global options, so they work after it."""
    if not isinstance(command, (CertctlCommand, CertctlSubGroup)):
        raise TypeError(f"{command.name}: use cls=CertctlCommand (the global options' help)")
    for spec in GLOBAL_OPTIONS:
        command.params.append(
            GlobalOption(
                [spec.flag, spec.name], expose_value=False, callback=_remember, **spec.settings
            )
        )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_global_options(sub)


def global_values(ctx: click.Context) -> dict[str, Any]:
    """The global options in force: the group's, overridden by those given after a subcommand."""
    root = ctx.find_root()
    # ctx.obj is set when the group runs; while completing, only its parsed params exist
    values = dict(root.obj or {spec.name: root.params.get(spec.name) for spec in GLOBAL_OPTIONS})
    values.update(ctx.meta.get(_GIVEN, {}))
    return values


def _format_options(command: click.Command, ctx: click.Context, formatter: HelpFormatter) -> None:
    own: list[tuple[str, str]] = []
    shared: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None:
            (shared if isinstance(param, GlobalOption) else own).append(record)
    for title, records in (("Options", own), ("Global options", shared)):
        if records:
            with formatter.section(title):
                formatter.write_dl(records)


class OutputSafeParsing(click.Command):
    """make_context with OSError (only --help and --version write while parsing) as OutputError."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """click's, with a failed write of the help as an output error."""
        from certctl.cli.output import OutputError

        try:
            return super().make_context(info_name, args, parent, **extra)
        except OSError as e:
            raise OutputError(e) from e


class CertctlCommand(OutputSafeParsing, click.Command):
    """A subcommand: its help lists the global options apart; a failed --help write is output."""

    def format_options(self, ctx: click.Context, formatter: HelpFormatter) -> None:
        """Options, then Global options."""
        _format_options(self, ctx, formatter)


class CertctlSubGroup(OutputSafeParsing, click.Group):
    """A group below the top level (`account`), like CertctlCommand."""

    command_class = CertctlCommand

    def format_options(self, ctx: click.Context, formatter: HelpFormatter) -> None:
        """Options, Global options, then Commands."""
        _format_options(self, ctx, formatter)
        self.format_commands(ctx, formatter)
