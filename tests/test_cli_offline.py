"""The command line without a CA: help, version, bad usage (exit 2, store unchanged), list."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from certctl import __version__
from certctl.cli import cli
from certctl.models import CertRecord
from certctl.store import Store

import storeview
from conftest import Certctl

# Any order that wrongly got past validation would fail here instead of reaching a real CA.
DEAD_CA = ["--server", "http://127.0.0.1:9/directory"]
MODES = ["invoke", "run"]


@pytest.fixture(autouse=True)
def _fresh_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work around render.console() caching a Console bound to the first sys.stdout
    (see test_consecutive_in_process_runs_both_print)."""
    from certctl.cli import render

    monkeypatch.setattr(render, "_consoles", {}, raising=False)


def call(offline: Certctl, mode: str, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) in-process or as a subprocess."""
    if mode == "invoke":
        result = offline.invoke(*args)
        return result.exit_code, result.stdout, result.stderr
    proc = offline.run(*args)
    return proc.returncode, proc.stdout, proc.stderr


def tree(root: Path) -> dict[str, Any] | None:
    """Everything observable about a directory tree: names, types, modes, contents."""
    if not os.path.lexists(root):
        return None
    result: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in sorted(dirnames + filenames):
            path = Path(dirpath) / entry
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                detail: Any = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                detail = ("dir", stat.S_IMODE(info.st_mode))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                detail = ("file", stat.S_IMODE(info.st_mode), digest)
            result[str(path.relative_to(root))] = detail
    info = root.lstat()
    result["."] = ("root", stat.S_IMODE(info.st_mode))
    return result


def state(cx: Certctl) -> Any:
    """Everything observable about the store (None before it exists): files, or rows."""
    if cx.backend == "filesystem":
        return tree(cx.store)
    return storeview.rows(cx) or None


@pytest.fixture
def created(offline: Certctl) -> Certctl:
    """`offline` with its store created (and one certificate in it)."""
    storeview.write_record(offline, CertRecord(name="existing", domains=["existing.example.com"]))
    return offline


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


# ---- version and help ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_version(offline: Certctl, mode: str) -> None:
    code, out, _ = call(offline, mode, "--version")
    assert code == 0
    assert __version__ in out
    assert out.strip() == f"certctl, version {__version__}"


COMMANDS = sorted(cli.commands)


def test_commands_are_registered() -> None:
    assert {"order", "verify", "issue", "list", "obtain"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_has_an_example(name: str) -> None:
    assert "Example" in (cli.commands[name].help or "")


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_command_short_and_long_help(offline: Certctl, name: str, flag: str) -> None:
    result = offline.invoke(name, flag)
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("Usage:") and f" {name} " in first
    assert "Example" in result.stdout
    assert "-h, --help" in result.stdout
    assert not storeview.exists(offline)  # help touches nothing


def test_top_level_help_lists_every_command(offline: Certctl) -> None:
    proc = offline.run("-h")
    assert proc.returncode == 0
    for name in COMMANDS:
        assert name in proc.stdout
    assert "Example" in proc.stdout


# ---- bad usage: exit 2, one line on stderr, store unchanged ----------------------

BAD_USAGE = [
    pytest.param(
        ["order", "-d", "*.example.com", "--challenge", "http"],
        ["*.example.com", "DNS"],
        id="wildcard-http",
    ),
    pytest.param(["order", "-d", "*.example.com"], ["DNS"], id="wildcard-default-challenge"),
    pytest.param(["obtain", "-d", "*.example.com", "--standalone"], ["DNS"], id="wildcard-obtain"),
    pytest.param(
        ["order", "-d", "example.com", "--webroot", "{tmp}/no-such-dir"],
        ["{tmp}/no-such-dir"],
        id="webroot-missing",
    ),
    pytest.param(
        ["order", "-d", "example.com", "--webroot", "{tmp}", "--standalone"],
        ["--webroot", "--standalone"],
        id="webroot-and-standalone",
    ),
    pytest.param(
        ["order", "-d", "example.com", "--challenge", "dns", "--standalone"],
        ["--standalone"],
        id="dns-with-standalone",
    ),
    pytest.param(
        ["order", "-d", "example.com", "--http-port", "8080"],
        ["--http-port"],
        id="http-port-without-standalone",
    ),
    pytest.param(["order", "-d", "exa mple.com"], ["exa mple.com"], id="invalid-domain"),
    pytest.param(
        ["order", "-d", "192.0.2.1", "--challenge", "dns"],
        ["192.0.2.1", "DNS-01 cannot prove control of an IP address"],
        id="ip-domain-dns01",
    ),
    pytest.param(
        ["order", "-d", "*.192.0.2.1", "--challenge", "dns"],
        ["cannot be a wildcard"],
        id="ip-wildcard",
    ),
    pytest.param(
        ["order", "-d", "example.com", "--challenge", "tls-alpn", "--webroot", "/"],
        ["is not for TLS-ALPN-01"],
        id="tls-alpn-webroot",
    ),
    pytest.param(
        ["order", "-d", "ok.example.com", "-d", "*.*.x.com", "--challenge", "dns"],
        ["*.*.x.com"],
        id="second-domain-invalid",
    ),
    pytest.param(["order", "-d", "example.com", "--name", "../x"], ["../x"], id="name-dotdot"),
    pytest.param(["order", "-d", "example.com", "--name", "-x"], ["-x"], id="name-dash"),
    pytest.param(["obtain", "-d", "example.com"], ["--standalone"], id="obtain-manual"),
    pytest.param(["verify", "../x"], ["../x"], id="verify-invalid-name"),
    pytest.param(["issue", "a/b"], ["a/b"], id="issue-invalid-name"),
    pytest.param(["--resolver", "bogus", "list"], ["bogus"], id="invalid-resolver"),
    pytest.param(["--resolver", "192.0.2.1:99999", "list"], ["99999"], id="resolver-bad-port"),
    pytest.param(["--config", "{tmp}/bad.toml", "list"], ["{tmp}/bad.toml"], id="config-bad-toml"),
    pytest.param(
        ["--config", "{tmp}/missing.toml", "list"], ["{tmp}/missing.toml"], id="config-missing"
    ),
    pytest.param(
        ["--config", "{tmp}/bad-value.toml", "list"],
        ["{tmp}/bad-value.toml"],
        id="config-bad-value",
    ),
    pytest.param(["--server", "ftp://x", "order", "-d", "example.com"], ["ftp://x"], id="bad-ca"),
]


def _expand(items: list[str], tmp: Path) -> list[str]:
    return [item.replace("{tmp}", str(tmp)) for item in items]


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """Files the bad-usage cases refer to."""
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "bad.toml").write_text("server = \n")
    (tmp_path / "bad-value.toml").write_text("checks = 5\n")
    (tmp_path / "bad-resolver.toml").write_text('[checks]\nresolvers = ["bogus"]\n')
    (tmp_path / "resolver-string.toml").write_text('[checks]\nresolvers = "192.0.2.1"\n')
    return tmp_path


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("args", "fragments"), BAD_USAGE)
def test_bad_usage_exits_2_and_changes_nothing(
    created: Certctl, inputs: Path, mode: str, args: list[str], fragments: list[str]
) -> None:
    args, fragments = _expand(args, inputs), _expand(fragments, inputs)
    if args[0] != "--server":
        args = [*DEAD_CA, *args]
    before = state(created)
    code, out, err = call(created, mode, *args)
    assert code == 2, err
    line = one_error_line(err)
    for fragment in fragments:
        assert fragment in line
    assert out == ""
    assert state(created) == before


@pytest.mark.parametrize(
    ("args", "fragments"),
    [p for p in BAD_USAGE if p.id in {"wildcard-http", "invalid-domain", "name-dotdot"}],
)
def test_bad_usage_on_missing_store_creates_nothing(
    offline: Certctl, args: list[str], fragments: list[str]
) -> None:
    code, _, err = call(offline, "invoke", *DEAD_CA, *args)
    assert code == 2
    assert fragments[0] in one_error_line(err)
    assert not storeview.exists(offline)


CLICK_USAGE = [
    pytest.param(["order", "-d", "example.com", "--key-type", "dsa"], "dsa", id="key-type"),
    pytest.param(["order", "-d", "example.com", "--challenge", "tls"], "tls", id="challenge"),
    pytest.param(["order"], "--domain", id="missing-domain"),
    pytest.param(["verify"], "NAME", id="missing-name"),
    pytest.param(["--check-http-port", "0", "list"], "0", id="port-range"),
    pytest.param(["nosuchcommand"], "nosuchcommand", id="unknown-command"),
    pytest.param(
        ["order", "-d", "example.com", "--webroot", "{tmp}/a-file"], "a-file", id="webroot-file"
    ),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("args", "fragment"), CLICK_USAGE)
def test_option_errors_exit_2_and_change_nothing(
    created: Certctl, inputs: Path, mode: str, args: list[str], fragment: str
) -> None:
    args = _expand(args, inputs)
    before = state(created)
    code, out, err = call(created, mode, *DEAD_CA, *args)
    assert code == 2
    assert fragment in err
    assert out == ""
    assert state(created) == before


@pytest.mark.parametrize(("args", "fragment"), CLICK_USAGE)
def test_option_errors_are_one_error_line(
    created: Certctl, inputs: Path, args: list[str], fragment: str
) -> None:
    _, _, err = call(created, "invoke", *_expand(args, inputs))
    assert fragment in one_error_line(err)


@pytest.mark.parametrize("config", ["bad-resolver.toml", "resolver-string.toml"])
def test_config_resolver_error_names_the_file(created: Certctl, inputs: Path, config: str) -> None:
    code, _, err = call(created, "invoke", "--config", str(inputs / config), "list")
    assert code == 2
    assert str(inputs / config) in one_error_line(err)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("command", ["verify", "issue"])
def test_unknown_name_exits_2_pointing_at_list(created: Certctl, mode: str, command: str) -> None:
    code, out, err = call(created, mode, *DEAD_CA, command, "nosuch")
    assert code == 2
    line = one_error_line(err)
    assert "'nosuch'" in line
    assert "certctl list" in line
    assert out == ""


@pytest.mark.parametrize("command", ["verify", "issue"])
def test_unknown_name_changes_nothing(created: Certctl, command: str) -> None:
    before = state(created)
    code, _, _ = call(created, "invoke", *DEAD_CA, command, "nosuch")
    assert code == 2
    assert state(created) == before


def test_unknown_name_on_missing_store_creates_no_store(offline: Certctl) -> None:
    code, _, _ = call(offline, "invoke", *DEAD_CA, "verify", "nosuch")
    assert code == 2
    assert not storeview.exists(offline)


def test_debug_shows_a_traceback_for_bad_input(created: Certctl) -> None:
    proc = created.run("--debug", *DEAD_CA, "order", "-d", "exa mple.com")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert "error: invalid domain" in proc.stderr


# ---- list ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_list_empty_store(offline: Certctl, mode: str) -> None:
    storeview.ensure(offline)
    code, out, err = call(offline, mode, "list")
    assert code == 0, err
    assert "No certificates" in out


@pytest.mark.parametrize("mode", MODES)
def test_list_json_empty_store_prints_only_json(offline: Certctl, mode: str) -> None:
    storeview.ensure(offline)
    code, out, _ = call(offline, mode, "list", "--json")
    assert code == 0
    assert json.loads(out) == {"certificates": []}  # the whole of stdout is one document


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("json_output", [False, True])
def test_list_missing_store_is_empty_and_creates_nothing(
    offline: Certctl, mode: str, json_output: bool
) -> None:
    assert not storeview.exists(offline)
    code, out, err = call(offline, mode, "list", *(["--json"] if json_output else []))
    assert code == 0, err
    if json_output:
        assert json.loads(out) == {"certificates": []}
    else:
        assert "No certificates" in out
    assert not storeview.exists(offline)


def _store_with_damage(cx: Certctl) -> None:
    for name in ("alpha", "broken", "gamma"):
        storeview.write_record(cx, CertRecord(name=name, domains=[f"{name}.example.com"]))
    if cx.backend == "filesystem":
        meta = cx.store / "certs" / "broken" / "meta.toml"
        meta.write_bytes(meta.read_bytes()[:20])  # truncated mid-way
    else:  # jsonb holds only whole JSON: a record cut short of its domains
        damaged = (
            """UPDATE certctl_certificates SET record = '{"name": "broken"}' WHERE name = %s"""
        )
        assert storeview.execute(cx, damaged, ("broken",)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_list_json_shows_damaged_entry_and_the_others(offline: Certctl, mode: str) -> None:
    _store_with_damage(offline)
    code, out, err = call(offline, mode, "list", "--json")
    assert code == 0, err
    entries = {e["name"]: e for e in json.loads(out)["certificates"]}
    assert sorted(entries) == ["alpha", "broken", "gamma"]
    assert entries["broken"]["state"] == "damaged"
    assert "broken" in entries["broken"]["reason"]
    for good in ("alpha", "gamma"):
        assert entries[good]["state"] != "damaged"
        assert entries[good]["domains"] == [f"{good}.example.com"]


@pytest.mark.parametrize("mode", MODES)
def test_list_table_shows_damaged_entry_and_the_others(offline: Certctl, mode: str) -> None:
    _store_with_damage(offline)
    code, out, err = call(offline, mode, "list")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert sorted(rows) == ["alpha", "broken", "gamma"]
    assert "damaged" in rows["broken"]
    assert "alpha.example.com" in rows["alpha"]
    assert "damaged" not in rows["alpha"] and "damaged" not in rows["gamma"]


def test_list_survives_wrongly_typed_meta(offline: Certctl) -> None:
    _store_with_damage(offline)
    storeview.write_record(offline, CertRecord(name="typed", domains=["typed.example.com"]))
    if offline.backend == "filesystem":
        (offline.store / "certs" / "typed" / "meta.toml").write_text(
            'name = "typed"\ndomains = ["typed.example.com"]\ncurrent = 5\n'
        )
    else:
        typed = '{"name": "typed", "domains": ["typed.example.com"], "current": 5}'
        statement = "UPDATE certctl_certificates SET record = %s::jsonb WHERE name = %s"
        assert storeview.execute(offline, statement, (typed, "typed")) == 1
    code, out, _ = call(offline, "invoke", "list", "--json")
    assert code == 0
    states = {e["name"]: e["state"] for e in json.loads(out)["certificates"]}
    assert states["typed"] == "damaged"


@pytest.mark.filesystem_only  # a stray file in the store's certs/ directory
def test_list_survives_a_stray_file_in_certs(offline: Certctl) -> None:
    _store_with_damage(offline)
    (offline.store / "certs" / "stray").write_text("oops")
    code, out, _ = call(offline, "invoke", "list", "--json")
    assert code == 0
    names = [e["name"] for e in json.loads(out)["certificates"]]
    assert {"alpha", "gamma"} <= set(names)


def test_list_after_crash_in_first_order_shows_nothing_damaged(offline: Certctl) -> None:
    with storeview.opened(offline) as store:
        store.ensure()
        store.write_pending_key("half", b"KEY")  # what the 'pending-key-after' fault leaves
    code, out, _ = call(offline, "invoke", "list", "--json")
    assert code == 0
    assert [e for e in json.loads(out)["certificates"] if e["state"] == "damaged"] == []


# ---- where the store is ------------------------------------------------------------


def test_certctl_store_env_is_honoured(offline: Certctl, tmp_path: Path) -> None:
    storeview.write_record(offline, CertRecord(name="alpha", domains=["alpha.example.com"]))
    assert offline.env()["CERTCTL_STORE"] == offline.location
    listed = json.loads(offline.run("list", "--json", check=True).stdout)
    assert [e["name"] for e in listed["certificates"]] == ["alpha"]

    other = tmp_path / "other-store"
    env = {**offline.env(), "CERTCTL_STORE": str(other)}
    result = CliRunner().invoke(cli, ["list", "--json"], env=env)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"certificates": []}


def test_store_option_overrides_env(offline: Certctl, tmp_path: Path) -> None:
    storeview.write_record(offline, CertRecord(name="alpha", domains=["alpha.example.com"]))
    other = tmp_path / "other-store"
    Store(other).ensure()
    Store(other).write(CertRecord(name="beta", domains=["beta.example.com"]))
    code, out, _ = call(offline, "invoke", "--store", str(other), "list", "--json")
    assert code == 0
    assert [e["name"] for e in json.loads(out)["certificates"]] == ["beta"]


@pytest.mark.parametrize("mode", MODES)
def test_symlinked_store_is_refused(offline: Certctl, tmp_path: Path, mode: str) -> None:
    real = tmp_path / "real-store"
    Store(real).ensure()
    link = tmp_path / "link-store"
    link.symlink_to(real)
    code, out, err = call(offline, mode, "--store", str(link), "list")
    assert code == 2
    assert "symlink" in one_error_line(err)
    assert out == ""


@pytest.mark.filesystem_only  # the mode of the store directory
def test_loose_store_permissions_are_repaired_with_a_warning(offline: Certctl) -> None:
    Store(offline.store).ensure()
    os.chmod(offline.store, 0o755)
    proc = offline.run("list", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"certificates": []}  # the warning is not on stdout
    assert "warning:" in proc.stderr and "755" in proc.stderr
    assert stat.S_IMODE(offline.store.stat().st_mode) == 0o700


# ---- in-process runs -------------------------------------------------------------


def test_consecutive_in_process_runs_both_print(offline: Certctl) -> None:
    first = offline.invoke("list")
    second = offline.invoke("list")
    assert "No certificates" in first.stdout
    assert "No certificates" in second.stdout


def test_set_json_changes_renewal_point_and_hook(offline: Certctl, tmp_path: Path) -> None:
    import certfactory

    bundle = tmp_path / "b.pem"
    bundle.write_bytes(certfactory.make_leaf("set.example.net").bundle_pem())
    assert offline.run("upload", "site", "--bundle", str(bundle)).returncode == 0
    proc = offline.run("set", "site", "--renew-before", "20", "--deploy-hook", "true", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "name": "site",
        "renew_before_days": 20.0,
        "deploy_hook": "true",
        "endpoints": [],  # issue #18: `set` records endpoints too
    }
    reset = offline.run("set", "site", "--renew-before", "default", "--deploy-hook", "", "--json")
    assert json.loads(reset.stdout) == {
        "name": "site",
        "renew_before_days": None,
        "deploy_hook": None,
        "endpoints": [],
    }
    bad = offline.run("set", "site", "--renew-before", "soon")
    assert bad.returncode == 2 and "--renew-before" in bad.stderr
