"""The click group, global options, and the mapping of errors to exit codes."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from certctl import __version__
from certctl.errors import CertctlError, ExitCode

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class CertctlGroup(click.Group):
    """Maps certctl errors to one line on stderr and their exit code (at the edge, once)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Like click's, but usage errors are one `error:` line too (exit 2)."""
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            hint = ""
            if e.ctx is not None:
                hint = f" (see '{e.ctx.command_path} --help')"
            click.echo(f"error: {e.format_message()}{hint}", err=True)
            if not standalone_mode:
                raise
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"error: {e.format_message()}", err=True)
            if not standalone_mode:
                raise
            sys.exit(e.exit_code)
        except click.exceptions.Exit as e:
            if not standalone_mode:
                raise
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            if not standalone_mode:
                raise
            sys.exit(1)
        if not standalone_mode:
            return result
        # without standalone mode click returns ctx.exit()'s code instead of exiting
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; CertctlError → one line (traceback with --debug)."""
        try:
            return super().invoke(ctx)
        except CertctlError as e:
            debug = bool(ctx.meta.get("certctl.debug"))
            if debug:
                import traceback

                traceback.print_exc()
            click.echo(f"error: {e}", err=True)
            ctx.exit(int(e.exit_code))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            if ctx.meta.get("certctl.debug"):
                raise
            click.echo(
                f"error: internal error ({type(e).__name__}: {e}); rerun with --debug and"
                " report it",
                err=True,
            )
            ctx.exit(int(ExitCode.FAILED))


@click.group(cls=CertctlGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="certctl")
@click.option(
    "--store",
    envvar="CERTCTL_STORE",
    type=click.Path(file_okay=False),
    help="Store directory [env CERTCTL_STORE; default: the user data dir].",
)
@click.option(
    "--config",
    "config_path",
    envvar="CERTCTL_CONFIG",
    type=click.Path(dir_okay=False),
    help="Config file (TOML) [env CERTCTL_CONFIG; default: user config dir/config.toml].",
)
@click.option(
    "--server",
    envvar="CERTCTL_SERVER",
    help="ACME CA: letsencrypt (default), letsencrypt-staging or a directory URL"
    " [env CERTCTL_SERVER].",
)
@click.option(
    "--ca-bundle",
    envvar="CERTCTL_CA_BUNDLE",
    type=click.Path(dir_okay=False, exists=True),
    help="CA bundle to trust for the ACME server's TLS (private/test CA) [env CERTCTL_CA_BUNDLE].",
)
@click.option(
    "--resolver",
    "resolvers",
    multiple=True,
    envvar="CERTCTL_RESOLVER",
    help="IP[:PORT] of a DNS resolver for self-checks (repeatable) [env CERTCTL_RESOLVER].",
)
@click.option(
    "--check-http-port",
    type=click.IntRange(1, 65535),
    envvar="CERTCTL_CHECK_HTTP_PORT",
    help="Port the HTTP-01 self-check connects to (default 80, as the CA does).",
)
@click.option(
    "--debug", is_flag=True, envvar="CERTCTL_DEBUG", help="Show tracebacks and debug logs."
)
@click.pass_context
def cli(
    ctx: click.Context,
    store: str | None,
    config_path: str | None,
    server: str | None,
    ca_bundle: str | None,
    resolvers: tuple[str, ...],
    check_http_port: int | None,
    debug: bool,
) -> None:
    """Obtain, import, watch and renew TLS certificates.

    \b
    Examples:
      certctl order -d example.com --webroot /var/www/html --agree-tos
      certctl verify example.com
      certctl issue example.com
      certctl list
    """
    ctx.meta["certctl.debug"] = debug
    ctx.obj = {
        "store": store,
        "config": config_path,
        "server": server,
        "ca_bundle": ca_bundle,
        "resolvers": resolvers,
        "check_http_port": check_http_port,
        "debug": debug,
    }


def _register() -> None:
    from certctl.cli import account, doctor, issue, listing, order, renewdue, show, upload, verify
    from certctl.cli.options import add_name_completion

    for module in (order, verify, issue, upload, listing, renewdue, doctor, show, account):
        for command in module.COMMANDS:
            cli.add_command(command)
    add_name_completion(cli)  # last: NAME arguments of every command complete stored names


_register()
