"""Commands that don't talk to a CA must not load the ACME stack (fast start-up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Certctl, standalone, unique
from pebble import PebbleServer

HEAVY = ("acme", "josepy", "requests", "urllib3", "dns.resolver", "rich.table")

PROBE = """
import json, sys
from certctl.cli import main
sys.argv = ["certctl", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nMODULES=" + json.dumps(sorted(sys.modules)) + "\\n")
"""


def loaded_modules(store: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh certctl process imported to run `args`."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={
            "CERTCTL_STORE": str(store),
            "CERTCTL_CONFIG": "/dev/null",
            "PATH": "/usr/bin",
            # the certctl under test (a worktree's src/), not whichever the venv installed
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
            **(env or {}),
        },
        timeout=60,
    )
    marker = proc.stderr.rsplit("MODULES=", 1)
    assert len(marker) == 2, proc.stderr
    modules = set(json.loads(marker[1]))
    modules.add(f"exit-with-error={'error:' in marker[0]}")
    return modules


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("--help",),
        ("list",),
        ("list", "--json"),
        ("doctor",),
        ("set", "-h"),
        ("store", "--help"),
        ("store", "init-key", "-h"),
    ],
)
def test_no_acme_stack_without_a_ca(tmp_path: Path, args: tuple[str, ...]) -> None:
    modules = loaded_modules(tmp_path / "store", *args)
    assert "certctl" in modules
    assert not [m for m in HEAVY if m in modules], sorted(m for m in HEAVY if m in modules)


@pytest.mark.parametrize("args", [("list",), ("list", "--json"), ("doctor",)])
def test_notify_channels_loaded_only_for_a_notify_table(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """The [notify] schema is asked for only when the config file has that table: the
    channels (with subprocess, email, the webhook client) stay unloaded otherwise, and the
    policy is not needed to list from kept summaries (here: an empty store)."""
    modules = loaded_modules(tmp_path / "store", *args)
    assert not {"certctl.notify", "subprocess", "certctl.policy.timing"} & modules
    config = tmp_path / "certctl.toml"
    config.write_text('[notify.command]\ncommand = ["/bin/true"]\n')
    modules = loaded_modules(tmp_path / "store", *args, env={"CERTCTL_CONFIG": str(config)})
    assert "certctl.notify" in modules, "the table is checked against the channels' schema"


def test_version_does_not_even_load_click(tmp_path: Path) -> None:
    assert "click" not in loaded_modules(tmp_path / "store", "--version")


LEXICON = ("lexicon", "tldextract")


@pytest.mark.parametrize(
    "args",
    [("--help",), ("list",), ("order", "--help"), ("obtain", "--help"), ("dns", "--help")],
)
def test_dns_lexicon_not_loaded_by_other_commands(tmp_path: Path, args: tuple[str, ...]) -> None:
    modules = loaded_modules(tmp_path / "store", *args)
    assert "certctl" in modules
    assert not [m for m in LEXICON if m in modules]


def test_dns_lexicon_loaded_only_by_its_own_method(tmp_path: Path) -> None:
    """Every other solver is built without lexicon; `dns providers` does load it (control)."""
    assert "lexicon" in loaded_modules(tmp_path / "store", "dns", "providers")
    hook = tmp_path / "hook"
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)
    secret = tmp_path / "tsig.key"
    secret.write_text("c2VjcmV0\n")
    probe = f"""
import json, sys
from certctl.challenges import make_solver
from certctl.models import Validation
from certctl.reporting import QuietReporter
cases = [
    Validation("http", "standalone", http_port=8080),
    Validation("http", "webroot", webroot="{tmp_path}"),
    Validation("http", "manual"),
    Validation("dns", "manual"),
    Validation("dns", "hook", settings={{"hook": "{hook}"}}),
    Validation("dns", "rfc2136", settings={{"server": "127.0.0.1", "tsig_key": "k",
                                           "tsig_secret_file": "{secret}"}}),
]
for validation in cases:
    make_solver(validation, QuietReporter())
print(json.dumps(sorted(sys.modules)))
"""
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout))
    assert "certctl.challenges.dns.rfc2136" in modules  # the probe did build the solvers
    assert not [m for m in LEXICON if m in modules]


# ---- per command and validation method, against a real CA -----------------------------------

DNS_STACK = ("dns", "certctl.challenges.dns.protocol", "certctl.challenges.dns.publisher")
RFC2136_STACK = ("dns.update", "dns.resolver", "certctl.challenges.dns.protocol")
OFF_A_TERMINAL = ("rich",)  # output is plain text when stdout/stderr are not terminals


def _without(modules: set[str], *heavy: str) -> list[str]:
    """The heavy packages (or any of their submodules) that were imported anyway."""
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in heavy))


@pytest.fixture
def ca(tmp_path: Path, pebble: PebbleServer) -> Certctl:
    return Certctl(tmp_path / "store", pebble)


def _modules(ca: Certctl, *args: str) -> set[str]:
    env = {k: v for k, v in ca.env().items() if k != "CERTCTL_CONFIG"}
    modules = loaded_modules(ca.store, *args, env=env)
    assert "exit-with-error=False" in modules, args
    return modules


def test_http01_steps_never_load_the_dns_solvers(ca: Certctl, pebble: PebbleServer) -> None:
    """order/verify/issue over HTTP-01: no DNS solver, no rich off a terminal; issue and
    order no dnspython at all (verify's self-check asks the configured resolver with it)."""
    name = unique("imports")
    modules = _modules(ca, "order", "-d", name, *standalone(pebble))
    assert "acme" in modules
    assert not _without(modules, *DNS_STACK, *OFF_A_TERMINAL)
    modules = _modules(ca, "verify", name)
    assert "certctl.challenges.selfcheck" in modules
    assert not _without(modules, *RFC2136_STACK, *OFF_A_TERMINAL)
    modules = _modules(ca, "issue", name)
    assert not _without(modules, *DNS_STACK, *OFF_A_TERMINAL, "http.server")
    assert not _without(_modules(ca, "show", name), *HEAVY, *OFF_A_TERMINAL)


def test_obtain_standalone_and_webroot_never_load_the_dns_solvers(
    ca: Certctl, pebble: PebbleServer, tmp_path: Path
) -> None:
    modules = _modules(ca, "obtain", "-d", unique("imports"), *standalone(pebble))
    assert "acme" in modules
    assert not _without(modules, *RFC2136_STACK, *OFF_A_TERMINAL)
    webroot = tmp_path / "www"
    webroot.mkdir()
    order = ("order", "-d", unique("imports"), "--webroot", str(webroot), "--agree-tos")
    assert not _without(_modules(ca, *order), *DNS_STACK, *OFF_A_TERMINAL)


def test_dns01_manual_order_loads_no_dns_update_stack(ca: Certctl) -> None:
    order = ("order", "-d", unique("imports"), "--challenge", "dns", "--agree-tos")
    assert not _without(_modules(ca, *order), *RFC2136_STACK, *OFF_A_TERMINAL)


def test_renew_due_with_nothing_due_loads_no_acme_stack(ca: Certctl, pebble: PebbleServer) -> None:
    """Once the CA's renewal information is fresh (the first run asks for it), a run with
    nothing to do reads the store and decides offline."""
    ca.run("obtain", "-d", unique("imports"), *standalone(pebble), check=True)
    ca.run("renew-due", check=True)
    modules = _modules(ca, "renew-due")
    assert not _without(modules, *HEAVY, "dns", *OFF_A_TERMINAL)


# ---- each command imports its own cli/ module only ------------------------------------------


def test_command_table_names_every_command_of_every_module() -> None:
    """COMMAND_MODULES (cli/app.py) is how a command finds its module: none missing."""
    import importlib
    import pkgutil

    import certctl.cli
    from certctl.cli.app import COMMAND_MODULES

    found = {}
    for info in pkgutil.iter_modules(certctl.cli.__path__):
        module = importlib.import_module(f"certctl.cli.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            found[command.name] = info.name
    assert found == COMMAND_MODULES


@pytest.mark.parametrize(
    ("args", "own"),
    [(("list",), "listing"), (("show", "x"), "show"), (("renew-due",), "renewdue")],
)
def test_a_command_imports_no_other_commands_module(
    tmp_path: Path, args: tuple[str, ...], own: str
) -> None:
    from certctl.cli.app import COMMAND_MODULES

    modules = loaded_modules(tmp_path / "store", *args)
    assert f"certctl.cli.{own}" in modules
    others = {f"certctl.cli.{m}" for m in COMMAND_MODULES.values()} - {f"certctl.cli.{own}"}
    assert not sorted(others & modules)
