"""The click group, global options, and the mapping of errors to exit codes."""

from __future__ import annotations

import sys
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

import click

from certctl import __version__
from certctl.cli.globalopts import OutputSafeParsing, global_options
from certctl.cli.output import OutputError, end_output, flush_out, write_err
from certctl.errors import CertctlError, Declined, ExitCode

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def describe_os_error(error: OSError) -> str:
    """One line for an OSError no layer below turned into a certctl error: path and cause."""
    cause = error.strerror or str(error)
    if error.filename is None:
        return cause
    where = str(error.filename)
    if error.filename2 is not None:
        where += f" -> {error.filename2}"
    return f"{where}: {cause}"


class CertctlGroup(OutputSafeParsing, click.Group):
    """Maps certctl errors to one line on stderr and their exit code (at the edge, once)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Like click's, but usage errors are one `error:` line too (exit 2).

        stdout is flushed here, where a failure can still be reported: a reader that
        went away ends the run quietly with 141, any other failure is one line, exit 1.
        """
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            flush_out()
        except OutputError as e:
            if not standalone_mode:
                raise
            sys.exit(end_output(e))
        except click.exceptions.NoArgsIsHelpError as e:
            # bare `certctl` (or `certctl account`): the help, on stderr with exit 2 as click does
            write_err(e.format_message() + "\n")
            if not standalone_mode:
                raise
            sys.exit(e.exit_code)
        except click.UsageError as e:
            hint = ""
            if e.ctx is not None:
                hint = f" (see '{e.ctx.command_path} --help')"
            write_err(f"error: {e.format_message()}{hint}\n")
            if not standalone_mode:
                raise
            sys.exit(e.exit_code)
        except click.ClickException as e:
            write_err(f"error: {e.format_message()}\n")
            if not standalone_mode:
                raise
            sys.exit(e.exit_code)
        except click.exceptions.Exit as e:
            if not standalone_mode:
                raise
            sys.exit(e.exit_code)
        except click.Abort:
            write_err("aborted\n")
            if not standalone_mode:
                raise
            sys.exit(1)
        if not standalone_mode:
            return result
        # without standalone mode click returns ctx.exit()'s code instead of exiting
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; CertctlError or OSError → one line (traceback with --debug)."""
        try:
            return super().invoke(ctx)
        except OutputError:
            raise  # stdout failed: main() ends the run
        except Declined as e:
            write_err(f"{e}\n")  # the user said no: not an error
            ctx.exit(int(e.exit_code))
        except CertctlError as e:
            _traceback_if_debug(ctx)
            write_err(f"error: {e}\n")
            ctx.exit(int(e.exit_code))
        except KeyboardInterrupt:
            write_err("interrupted\n")
            ctx.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except OSError as e:
            # the file system or the OS failed where no layer below said what it was doing:
            # still one line naming the path and the cause, not an "internal error"
            _traceback_if_debug(ctx)
            write_err(f"error: {describe_os_error(e)}\n")
            ctx.exit(int(ExitCode.FAILED))
        except Exception as e:
            if ctx.meta.get("certctl.debug"):
                raise
            write_err(
                f"error: internal error ({type(e).__name__}: {e}); rerun with --debug and"
                " report it\n"
            )
            ctx.exit(int(ExitCode.FAILED))


def _traceback_if_debug(ctx: click.Context) -> None:
    if ctx.meta.get("certctl.debug"):
        import traceback

        traceback.print_exc()


@click.group(cls=CertctlGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="certctl")
@global_options
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """Obtain, import, watch and renew TLS certificates.

    \b
    Examples:
      certctl order -d example.com --webroot /var/www/html --agree-tos
      certctl verify example.com
      certctl issue example.com
      certctl list
    """
    ctx.meta["certctl.debug"] = options["debug"]
    ctx.obj = options  # global_values() adds those given after the subcommand


# Each command's module in cli/, imported when the command runs (or help lists it), so a
# command pays for its own module only. tests/test_startup.py checks the table against
# every module's COMMANDS.
COMMAND_MODULES = {
    "order": "order",
    "obtain": "order",
    "verify": "verify",
    "issue": "issue",
    "upload": "upload",
    "list": "listing",
    "renew-due": "renewdue",
    "set": "renewdue",
    "doctor": "doctor",
    "show": "show",
    "remove": "show",
    "export": "show",
    "account": "account",
    "revoke": "account",
    "store": "storecmd",
    "deploy": "fleet",
    "serve-challenges": "fleet",
    "dns": "dnscmd",
    "probe": "probe",
    "check": "monitor",
    "metrics": "monitor",
}


class LazyCommands(MutableMapping[str, click.Command]):
    """The group's commands: a name's module is imported on first use, then registered
    with the global options and the completion of stored names (as if added up front)."""

    def __init__(self, modules: dict[str, str]) -> None:
        self._modules = modules
        self._loaded: dict[str, click.Command] = {}

    def _load(self, name: str) -> None:
        from importlib import import_module

        from certctl.cli.globalopts import add_global_options
        from certctl.cli.options import add_name_completion

        module = import_module(f"certctl.cli.{self._modules[name]}")
        for command in module.COMMANDS:
            if command.name not in self._loaded:
                add_global_options(command)
                add_name_completion(command)  # NAME arguments complete stored names
                self._loaded[str(command.name)] = command

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and name in self._modules:
            self._load(name)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]
        self._modules.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._loaded.keys() | self._modules.keys()))

    def __len__(self) -> int:
        return len(self._loaded.keys() | self._modules.keys())


cli.commands = LazyCommands(dict(COMMAND_MODULES))
