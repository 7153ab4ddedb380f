"""certctl upload."""

from __future__ import annotations

import os
import sys

import click

from certctl.cli.globalopts import CertctlCommand
from certctl.cli.options import json_option

MAX_INPUT = 1 << 20


def _read(option: str, path: str | None, stdin_used: list[str]) -> bytes | None:
    """Read one input file (or '-' for stdin), at most 1 MiB + 1 byte."""
    from certctl.errors import BadInput

    if path is None:
        return None
    if path == "-":
        if stdin_used:
            raise BadInput(f"only one input can be '-' (stdin): {stdin_used[0]} already is")
        stdin_used.append(option)
        return sys.stdin.buffer.read(MAX_INPUT + 1)
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_INPUT + 1)
    except FileNotFoundError:
        raise BadInput(f"{option} {path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{option} {path}: is a directory, expected a file") from None
    except OSError as e:
        raise BadInput(f"{option} {path}: cannot read ({e.strerror})") from None


def _passphrase(env_name: str | None, file_path: str | None, stdin_used: list[str]) -> bytes | None:
    from certctl.errors import BadInput

    if env_name and file_path:
        raise BadInput("give the passphrase with --passphrase-env or --passphrase-file, not both")
    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            raise BadInput(f"--passphrase-env {env_name}: that environment variable is not set")
        return value.encode()
    if file_path:
        data = _read("--passphrase-file", file_path, stdin_used)
        assert data is not None
        return data.rstrip(b"\r\n")
    return None


def _confirm(question: str) -> bool:
    """Ask on the terminal (stderr, so --json output stays one document)."""
    return click.confirm(question, err=True)


@click.command("upload", cls=CertctlCommand)
@click.argument("name")
@click.option(
    "--cert", metavar="FILE", help="Certificate (PEM or DER), chain may be appended; '-' = stdin."
)
@click.option("--key", metavar="FILE", help="Private key (PEM or DER, may be encrypted).")
@click.option("--chain", metavar="FILE", help="Intermediate certificates.")
@click.option(
    "--bundle", metavar="FILE", help="One PEM file with key, certificate and chain, any order."
)
@click.option("--pkcs12", metavar="FILE", help="A .pfx/.p12 file.")
@click.option(
    "--passphrase-env", metavar="VAR", help="Environment variable holding the passphrase."
)
@click.option("--passphrase-file", metavar="FILE", help="File holding the passphrase.")
@click.option("--replace", is_flag=True, help="Store a new version over an existing name.")
@click.option(
    "--drop-names",
    is_flag=True,
    help="Allow a replacement that leaves out names of the current certificate.",
)
@click.option(
    "--stop-renewal",
    is_flag=True,
    help="Allow replacing an ACME certificate, which certctl renews, with an upload.",
)
@click.option(
    "--strict", is_flag=True, help="Refuse (instead of warn) when an intermediate is missing."
)
@click.option(
    "--allow-expired", is_flag=True, help="Store an expired certificate (with a warning)."
)
@click.option("--deploy-hook", metavar="CMD", help="Command run after this certificate changes.")
@json_option
@click.pass_context
def upload_command(
    ctx: click.Context,
    name: str,
    cert: str | None,
    key: str | None,
    chain: str | None,
    bundle: str | None,
    pkcs12: str | None,
    passphrase_env: str | None,
    passphrase_file: str | None,
    replace: bool,
    drop_names: bool,
    stop_renewal: bool,
    strict: bool,
    allow_expired: bool,
    deploy_hook: str | None,
    json_output: bool,
) -> None:
    """Store a certificate obtained elsewhere, after checking it; watched by renew-due.

    A replacement that leaves out names needs --drop-names, and one over a
    certificate certctl renews from ACME needs --stop-renewal (on a terminal
    certctl asks instead).

    \b
    Examples:
      certctl upload shop --cert shop.crt --key shop.key --chain intermediate.crt
      certctl upload shop --bundle shop.pem --replace
      certctl upload www --bundle www.pem --replace --stop-renewal   # over an ACME one
      CERT_PASS=... certctl upload shop --pkcs12 shop.pfx --passphrase-env CERT_PASS
      cat shop.pem | certctl upload shop --bundle - --json
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops.upload import UploadRequest, upload
    from certctl.policy.names import cert_name_for

    name = cert_name_for(name)
    stdin_used: list[str] = []
    request = UploadRequest(
        name=name,
        cert=_read("--cert", cert, stdin_used),
        key=_read("--key", key, stdin_used),
        chain=_read("--chain", chain, stdin_used),
        bundle=_read("--bundle", bundle, stdin_used),
        pkcs12=_read("--pkcs12", pkcs12, stdin_used),
        passphrase=_passphrase(passphrase_env, passphrase_file, stdin_used),
        strict=strict,
        allow_expired=allow_expired,
        replace=replace,
        drop_names=drop_names,
        stop_renewal=stop_renewal,
        deploy_hook=deploy_hook,
    )
    context = build_context(ctx, json_output=json_output)
    report = upload(context, request, _confirm if context.interactive else None)
    for warning in report.warnings:
        context.reporter.warn(warning)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.upload_report(report)
    if report.hook_error:
        click.echo(f"error: {report.hook_error} (the new certificate is stored and live)", err=True)
        ctx.exit(1)


COMMANDS = [upload_command]
