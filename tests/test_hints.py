"""Every "next step" command certctl prints works when pasted into a shell.

Hints are built in one place (certctl.policy.hints) from the certificate's record.
Here each one, for every kind of record, is run by bash through the real command
line parser (a `certctl` on PATH that parses and stops before doing anything),
and the hints of the bug reports are run for real: against Pebble, or offline.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certctl.models import SOURCE_UPLOAD, CertRecord, Current, Validation
from certctl.policy import hints

import storeview
from certfactory import make_leaf
from conftest import Certctl, unique
from pebble import PebbleServer

SRC = Path(__file__).resolve().parents[1] / "src" / "certctl"
SUBCOMMANDS = (
    "order|obtain|verify|issue|upload|list|show|remove|export|revoke|renew-due|set|account|doctor"
)
COMMAND_IN_TEXT = re.compile(rf"\bcertctl (?:--\S+ \S+ )*(?:{SUBCOMMANDS})\b")

# A `certctl` that parses its arguments with the real CLI, then stops: exit 0 when
# click accepts them, click's exit code (2) with the message otherwise.
PARSE_ONLY = """\
import sys
import click
from certctl.cli import cli

def parse(command, args, parent=None, name="certctl"):
    ctx = command.make_context(name, list(args), parent=parent)
    if isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            raise click.UsageError("no subcommand", ctx)
        sub_name, sub, sub_args = command.resolve_command(ctx, rest)
        parse(sub, sub_args, ctx, sub_name)

try:
    parse(cli, sys.argv[1:])
except click.exceptions.Exit as e:
    sys.exit(e.exit_code)
except click.ClickException as e:
    print(f"usage error: {e.format_message()}", file=sys.stderr)
    sys.exit(e.exit_code)
"""


@pytest.fixture
def parse_only(tmp_path: Path) -> dict[str, str]:
    """An environment whose `certctl` only parses (see PARSE_ONLY)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "certctl"
    script.write_text(f"#!{sys.executable}\n{PARSE_ONLY}")
    script.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CERTCTL_STORE": str(tmp_path / "store"),
        "CERTCTL_CONFIG": os.devnull,
    }


def accepted(command: str, env: dict[str, str], cwd: Path | None = None) -> None:
    """Run `command` in bash; fail with its output unless it exits 0."""
    proc = subprocess.run(
        ["bash", "-c", command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode == 0, f"{command!r} exited {proc.returncode}: {proc.stderr}"


def command_of(text: str) -> str:
    """The command a hint sentence ends with."""
    start = text.find("certctl ")
    assert start >= 0, text
    return text[start:]


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _record(name: str, domains: list[str], validation: Validation, **kw: object) -> CertRecord:
    current = Current(1, "0A1B", T0, T0 + timedelta(days=90), "Test CA", "AB:CD", domains)
    return CertRecord(name=name, domains=domains, validation=validation, current=current, **kw)  # type: ignore[arg-type]


RECORDS = {
    "uploaded": _record("shop", ["shop.example.net"], Validation(), source=SOURCE_UPLOAD),
    "http-manual": _record("a.example.com", ["a.example.com", "b.example.com"], Validation()),
    "standalone": _record(
        "s.example.com",
        ["s.example.com"],
        Validation(method="standalone", http_port=5002),
        key_type="rsa3072",
        profile="shortlived",
        server="https://ca.test/dir",
    ),
    "webroot": _record(
        "w.example.com", ["w.example.com"], Validation(method="webroot", webroot="/var/www/my site")
    ),
    "dns-wildcard-manual": _record(
        "wildcard.d.test", ["*.d.test", "d.test"], Validation(challenge="dns")
    ),
    "dns-idn": _record(
        "xn--bcher-kva.test", ["xn--bcher-kva.test", "*.xn--bcher-kva.test"], Validation("dns")
    ),
    "rfc2136-file": _record(
        "wildcard.r.test",
        ["*.r.test", "r.test"],
        Validation(
            challenge="dns",
            method="rfc2136",
            settings={
                "server": "192.0.2.53:5353",
                "tsig_key": "certctl-key",
                "tsig_algorithm": "hmac-sha512",
                "tsig_secret_file": "/etc/certctl/tsig secret.key",
                "zone": "r.test",
                "nameservers": ["192.0.2.1", "[2001:db8::1]:53"],
                "propagation_timeout": 30.0,
            },
        ),
    ),
    "rfc2136-env": _record(
        "e.test",
        ["e.test"],
        Validation(
            challenge="dns",
            method="rfc2136",
            settings={
                "server": "192.0.2.53:53",
                "tsig_key": "k",
                "tsig_algorithm": "hmac-sha256",
                "tsig_secret_env": "TSIG_SECRET",
                "propagation_timeout": 120.0,
            },
        ),
    ),
    "hook": _record(
        "wildcard.h.test",
        ["*.h.test"],
        Validation(
            challenge="dns",
            method="hook",
            settings={
                "hook": "/usr/local/bin/dns-hook --zone 'h test'",
                "propagation_timeout": 120,
            },
        ),
    ),
    "lexicon-file": _record(
        "wildcard.l.test",
        ["*.l.test", "l.test"],
        Validation(
            challenge="dns",
            method="lexicon",
            settings={
                "lexicon_provider": "powerdns",
                "credentials_file": "/etc/certctl/power dns.toml",
                "zone": "l.test",
                "nameservers": ["192.0.2.1"],
                "propagation_timeout": 120.0,
            },
        ),
    ),
    "lexicon-env": _record(
        "v.test",
        ["v.test"],
        Validation(
            challenge="dns",
            method="lexicon",
            settings={
                "lexicon_provider": "cloudflare",
                "credentials_env": ["LEXICON_CLOUDFLARE_AUTH_TOKEN"],
                "propagation_timeout": 120.0,
            },
        ),
    ),
}


@pytest.mark.parametrize("kind", RECORDS)
def test_every_hint_is_accepted_by_the_command_line(
    kind: str, parse_only: dict[str, str], tmp_path: Path
) -> None:
    record = RECORDS[kind]
    commands = list(hints.all_commands(record, server="https://ca.test/dir").values())
    commands += [
        command_of(hints.replace_text(record)),
        command_of(hints.after_revocation(record)),
    ]
    for command in commands:
        accepted(command, parse_only, cwd=tmp_path)


def test_all_commands_covers_every_hint_function() -> None:
    """A new hint function must be added to all_commands, so the test above runs it."""
    public = {
        name
        for name, value in vars(hints).items()
        if callable(value) and not name.startswith("_") and value.__module__ == hints.__name__
    }
    texts = {"replace_text", "after_revocation", "all_commands", "command"}
    listed = set(hints.all_commands(RECORDS["uploaded"]))
    constants = {"list", "register_account", "settle_account", "order_help", "upload_help"}
    assert public - texts == listed - constants


def test_order_hint_repeats_every_domain_and_the_validation() -> None:
    wildcard = shlex.split(hints.order_again(RECORDS["dns-wildcard-manual"]))
    assert wildcard == [
        "certctl", "order", "-d", "*.d.test", "-d", "d.test", "--name", "wildcard.d.test",
        "--challenge", "dns",
    ]  # fmt: skip
    assert "'*.d.test'" in hints.order_again(RECORDS["dns-wildcard-manual"])
    rfc2136 = shlex.split(hints.order_again(RECORDS["rfc2136-file"]))
    for option, value in (
        ("--dns-provider", "rfc2136"),
        ("--tsig-key", "certctl-key"),
        ("--tsig-secret-file", "/etc/certctl/tsig secret.key"),
        ("--tsig-algorithm", "hmac-sha512"),
        ("--dns-zone", "r.test"),
        ("--propagation-timeout", "30"),
    ):
        assert rfc2136[rfc2136.index(option) + 1] == value
    provider = shlex.split(hints.order_again(RECORDS["lexicon-file"]))
    for option, value in (
        ("--dns-provider", "lexicon"),
        ("--lexicon-provider", "powerdns"),
        ("--dns-credentials", "/etc/certctl/power dns.toml"),  # the path, never the credentials
        ("--dns-zone", "l.test"),
    ):
        assert provider[provider.index(option) + 1] == value
    from_env = shlex.split(hints.order_again(RECORDS["lexicon-env"]))
    assert "--dns-credentials" not in from_env  # the variables are read again
    standalone = shlex.split(hints.order_again(RECORDS["standalone"], server="https://other/dir"))
    assert standalone[:3] == ["certctl", "--server", "https://ca.test/dir"]
    assert {"--standalone", "rsa3072", "shortlived", "5002"} <= set(standalone)


# ---- no hint is built anywhere else ------------------------------------------------------


def _strings(tree: ast.AST) -> list[tuple[ast.AST, bool]]:
    """Every string literal outside docstrings, and whether it is (part of) an f-string."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    found: list[tuple[ast.AST, bool]] = []
    in_fstring = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            found.append((node, True))
            in_fstring.update(id(v) for v in node.values)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and id(node) not in in_fstring
        ):
            found.append((node, False))
    return found


def _text(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    assert isinstance(node, ast.Constant)
    return str(node.value)


def test_no_command_hint_is_built_outside_the_hints_module() -> None:
    """A hint with a name or domain in it comes from policy/hints.py (quoted, complete)."""
    interpolated = re.compile(rf"\bcertctl\b[^'\n]*?\b(?:{SUBCOMMANDS})\b[^'.;:()]*\{{\}}")
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "policy" / "hints.py":
            continue
        for node, formatted in _strings(ast.parse(path.read_text(), str(path))):
            if formatted and interpolated.search(_text(node)):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {_text(node)}")
    assert offenders == []


def test_every_fixed_hint_in_the_source_is_accepted(
    parse_only: dict[str, str], tmp_path: Path
) -> None:
    """Fixed hints ('see certctl list') are quoted in their message: each one parses."""
    commands = set()
    for path in sorted(SRC.rglob("*.py")):
        for node, _ in _strings(ast.parse(path.read_text(), str(path))):
            for quoted in re.findall(r"'(certctl [^'{}]*)'", _text(node)):
                if COMMAND_IN_TEXT.match(quoted):
                    commands.add(quoted)
    for name in dir(hints):
        value = getattr(hints, name)
        if isinstance(value, str) and value.startswith("certctl "):
            commands.add(value)
    assert "certctl list" in commands and "certctl account show" in commands
    for command in sorted(commands):
        accepted(command, parse_only, cwd=tmp_path)


# ---- the hints of the bug reports, run for real -------------------------------------------


def test_verify_of_an_uploaded_certificate_suggests_an_upload_that_works(
    offline: Certctl, tmp_path: Path
) -> None:
    first = make_leaf("shop.example.net")
    (tmp_path / "first.pem").write_bytes(first.bundle_pem())
    assert offline.run("upload", "shop", "--bundle", str(tmp_path / "first.pem")).returncode == 0
    proc = offline.run("verify", "shop")
    assert proc.returncode == 2
    assert "certctl order" not in proc.stderr  # an order under that name is refused
    command = command_of(proc.stderr.strip())
    assert command == hints.upload_successor("shop")
    (tmp_path / hints.NEW_BUNDLE).write_bytes(make_leaf("shop.example.net").bundle_pem())
    env = {**os.environ, **offline.env()}
    accepted(
        command.replace("certctl ", f"{shlex.join([sys.executable, '-m', 'certctl'])} ", 1),
        env,
        tmp_path,
    )
    shown = offline.json("show", "shop")
    assert shown["live_version"] == 2


def test_wildcard_hints_keep_the_apex_quote_the_star_and_work(
    certctl: Certctl, pebble: PebbleServer, tmp_path: Path
) -> None:
    base = unique("hint")
    ordered = certctl.json(
        "order", "-d", f"*.{base}", "-d", base, "--challenge", "dns", "--agree-tos"
    )
    name = ordered["name"]
    for challenge in ordered["challenges"]:
        pebble.add_txt(challenge["record"], challenge["value"])
    try:
        verified = certctl.run("verify", name)
    finally:
        pebble.clear_txt(f"_acme-challenge.{base}.")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip().endswith(f"Now run: certctl issue {name}")
    certctl.json("issue", name)

    expected = shlex.join(
        ["certctl", "order", "-d", f"*.{base}", "-d", base, "--name", name, "--challenge", "dns"]
    )
    revoked = certctl.json("revoke", name)
    assert command_of(revoked["next_step"]) == expected
    again = certctl.run("issue", name)  # manual validation, no order left
    assert again.returncode == 2
    assert command_of(again.stderr.strip()) == expected
    env = {**os.environ, **certctl.env()}
    runner = shlex.join([sys.executable, "-m", "certctl"])
    accepted(expected.replace("certctl ", f"{runner} ", 1), env, tmp_path)
    with storeview.opened(certctl) as store:
        record = store.read(name)
    assert record.order is not None and record.domains == [f"*.{base}", base]
    assert record.validation.challenge == "dns"
    shown = json.loads(certctl.run("show", name, "--json").stdout)
    assert command_of(shown["next_step"]) == hints.verify(name)
