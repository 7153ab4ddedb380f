"""certctl store init-key (the store's own commands: a group others join with @store_group)."""

from __future__ import annotations

from pathlib import Path

import click

from certctl.cli.globalopts import CertctlSubGroup
from certctl.cli.options import json_option


@click.group("store", cls=CertctlSubGroup)
def store_group() -> None:
    """Manage the store itself: the key that seals private keys in a shared store.

    \b
    Examples:
      certctl store init-key /etc/certctl/store.key
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


COMMANDS = [store_group]
