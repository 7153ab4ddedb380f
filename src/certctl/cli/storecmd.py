"""certctl store init-key|rotate-key|copy: the store itself (its key, moving it)."""

from __future__ import annotations

from pathlib import Path

import click

from certctl.cli.globalopts import CertctlSubGroup
from certctl.cli.options import json_option


@click.group("store", cls=CertctlSubGroup)
def store_group() -> None:
    """Manage the store itself: the key that seals private keys in a shared store,
    and copying a whole store to another backend.

    \b
    Examples:
      certctl store init-key /etc/certctl/store.key
      certctl --store ~/.local/share/certctl store copy \\
        --to postgresql://certctl@db.internal/certctl --to-key-file /etc/certctl/store.key
      certctl store rotate-key /etc/certctl/store.key.new
    """


@store_group.command("init-key")
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def init_key_command(file: Path, json_output: bool) -> None:
    """Write a new store key to FILE (0600) and print its id, never the key.

    The store key encrypts (AES-256-GCM) the private keys kept in a shared
    PostgreSQL store, so the database alone cannot use any certificate. Copy
    the file to every host of the fleet, and keep a backup apart from the
    database's: without the key the stored private keys are lost and every
    certificate must be re-issued. An existing FILE is never overwritten (exit 2).

    \b
    Examples:
      certctl store init-key /etc/certctl/store.key
      certctl store init-key ~/.config/certctl/store.key --json
    """
    from certctl.cli import render
    from certctl.store.sealing import generate_key_file

    key = generate_key_file(file)
    path = str(file.absolute())
    if json_output:
        render.print_json({"path": path, "key_id": key.key_id})
    else:
        render.say(f"store key {key.key_id} written to {path} (mode 0600)")
        render.say("keep a backup of it apart from the database: without it the keys are lost")


@store_group.command("rotate-key")
@click.argument("new_key_file", metavar="NEW_KEY_FILE", type=click.Path(dir_okay=False))
@json_option
@click.pass_context
def rotate_key_command(ctx: click.Context, new_key_file: str, json_output: bool) -> None:
    """Re-encrypt every private key of a PostgreSQL store under NEW_KEY_FILE.

    One transaction: every secret is opened with the current key (--store-key-file)
    and sealed with the new one, and the store's key id is switched in the same
    commit. Then copy NEW_KEY_FILE to every host in place of the old key file:
    a host still holding the old key is refused with a message naming both ids.

    \b
    Examples:
      certctl store init-key /etc/certctl/store.key.new
      certctl store rotate-key /etc/certctl/store.key.new
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import storecopy

    context = build_context(ctx, json_output=json_output)
    report = storecopy.rotate_key(context, Path(new_key_file))
    if json_output:
        render.print_json(report)
    else:
        render.say(
            f"store {report['store']}: {report['secrets']} secret(s) now sealed with store key"
            f" {report['new_key_id']} (was {report['old_key_id']});"
            " give every host the new key file"
        )


@store_group.command("copy")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="DIR|URL",
    help="The empty store to copy into: a directory or postgresql://USER@HOST/DB.",
)
@click.option(
    "--to-key-file",
    type=click.Path(dir_okay=False),
    help="Store key for a postgresql:// target [env CERTCTL_TO_STORE_KEY_FILE].",
    envvar="CERTCTL_TO_STORE_KEY_FILE",
)
@json_option
@click.pass_context
def copy_command(
    ctx: click.Context, target: str, to_key_file: str | None, json_output: bool
) -> None:
    """Copy the whole store (--store) into an empty one, then verify the copy.

    Accounts, every version of every certificate, the live versions, pending orders
    and notice and back-off state are copied; the copy is checked with doctor's
    checks and compared record by record with the source. The source is only read.
    Into PostgreSQL the copy is one transaction: it lands whole or not at all.

    \b
    Examples:
      certctl --store /var/lib/certctl store copy \\
        --to postgresql://certctl@db.internal/certctl --to-key-file /etc/certctl/store.key
      certctl --store postgresql://certctl@db.internal/certctl store copy --to /srv/backup
    """
    from certctl.cli import render
    from certctl.cli.runtime import build_context
    from certctl.ops import storecopy

    context = build_context(ctx, json_output=json_output)
    destination = storecopy.open_target(target, to_key_file, context.reporter.warn)
    ctx.call_on_close(destination.close)
    report = storecopy.copy_store(context, destination)
    if json_output:
        render.print_json(report.to_json())
    else:
        render.say(
            f"copied {report.certificates} certificate(s) ({report.versions} version(s),"
            f" {report.pending_keys} pending key(s)) and {report.accounts} account(s)"
            f" from {report.source} to {report.target}: verified"
        )


COMMANDS = [store_group]
