"""The run's Context, built from the global options, the environment and the config file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click


def default_store() -> str:
    """The store directory when neither --store nor CERTCTL_STORE names one."""
    import platformdirs

    return platformdirs.user_data_dir("certctl", appauthor=False)


def default_config() -> str:
    """The config file when neither --config nor CERTCTL_CONFIG names one."""
    import platformdirs

    return str(Path(platformdirs.user_config_dir("certctl", appauthor=False)) / "config.toml")


def _notify_schema() -> Any:
    from certctl.notify import CONFIG

    return CONFIG


def build_context(click_ctx: click.Context, *, json_output: bool = False) -> Any:
    """Build the run's Context from global options, environment and config file."""
    from certctl.cli.globalopts import global_values
    from certctl.cli.output import is_terminal
    from certctl.cli.render import CliReporter
    from certctl.config import load_settings
    from certctl.context import Context
    from certctl.store.opening import open_store

    opts = global_values(click_ctx)
    refuse_empty_path_variables(opts)
    if opts["debug"]:
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    explicit = opts["config"] is not None
    config = Path(opts["config"] or default_config())
    settings = load_settings(config, explicit, tables={"notify": _notify_schema})  # all checked
    if opts["server"]:
        settings.server = opts["server"]
    if opts["ca_bundle"]:
        settings.ca_bundle = opts["ca_bundle"]
    if opts["resolvers"]:
        resolvers: list[str] = []
        for value in opts["resolvers"]:
            resolvers.extend(v for v in value.replace(",", " ").split() if v)
        settings.resolvers = resolvers
        settings.resolver_addresses()
    if opts["check_http_port"]:
        settings.check_http_port = opts["check_http_port"]
    if opts.get("check_tls_port"):
        settings.check_tls_port = opts["check_tls_port"]
    reporter = CliReporter(quiet_status=json_output)
    store = open_store(
        opts["store"] or settings.store_url or default_store(),
        warn=reporter.warn,
        key_file=opts["store_key_file"] or settings.store_key_file,
        lease=settings.store_lease,
    )
    click_ctx.call_on_close(store.close)
    store.check()
    return Context(
        store=store,
        settings=settings,
        reporter=reporter,
        interactive=is_terminal(sys.stdin),
    )


def refuse_empty_path_variables(opts: dict[str, Any]) -> None:
    """CERTCTL_STORE= (set, but to nothing) must not quietly mean the default store.

    click treats an empty variable as unset; for a path that is a mistake to stop at
    (an unset shell variable in a unit file), not a choice.
    """
    from certctl.cli.globalopts import GLOBAL_OPTIONS, PATH_OPTIONS
    from certctl.errors import BadInput

    for spec in GLOBAL_OPTIONS:
        given = opts.get(spec.name) is not None
        if spec.name in PATH_OPTIONS and not given and os.environ.get(spec.envvar) == "":
            raise BadInput(
                f"{spec.envvar} is set but empty: unset it, or give a path"
                f" ({spec.envvar}=PATH or {spec.flag} PATH)"
            )
