"""dns-lexicon's providers as certctl sees them: options, credentials, scrubbing, no fetches.

No server needed: every provider lexicon ships is resolved from its own metadata and
must refuse to start without credentials; the PowerDNS end-to-end tests are in
test_dns_lexicon.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from certctl.challenges.dns import lexicon_meta
from certctl.challenges.dns.settings import settings_for
from certctl.cli import cli
from certctl.errors import BadInput

NETGUARD = Path(__file__).parent / "netguard"
PROVIDERS = lexicon_meta.provider_names()


@pytest.fixture(autouse=True)
def no_lexicon_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("LEXICON_"):
            monkeypatch.delenv(key)


def test_lexicon_ships_many_providers_and_auto_is_left_out() -> None:
    assert len(PROVIDERS) >= 80
    assert {"cloudflare", "powerdns", "route53", "gandi", "ovh", "hetzner"} <= set(PROVIDERS)
    assert "auto" not in PROVIDERS
    with pytest.raises(BadInput, match="auto is not supported: it looks the provider up"):
        settings_for("lexicon", {"lexicon_provider": "auto"})


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_provider_resolves_its_options_and_refuses_without_credentials(
    provider: str,
) -> None:
    options = lexicon_meta.provider_options(provider)
    parser = argparse.ArgumentParser(add_help=False)
    lexicon_meta.provider_module(provider).Provider.configure_parser(parser)
    assert [o.name for o in options] == [a.dest for a in parser._actions]  # lexicon's own list
    needed = [o for o in options if o.needed]
    assert needed, options
    with pytest.raises(BadInput) as refused:
        settings_for("lexicon", {"lexicon_provider": provider})
    message = str(refused.value)
    assert message.startswith(f"DNS provider {provider} has no credentials: missing ")
    assert "\n" not in message
    for option in needed:
        assert f"{option.name} ({option.env})" in message


def test_powerdns_options_and_their_variables() -> None:
    options = {o.name: o for o in lexicon_meta.provider_options("powerdns")}
    assert list(options) == ["auth_token", "pdns_server", "pdns_server_id", "pdns_disable_notify"]
    assert options["auth_token"].env == "LEXICON_POWERDNS_AUTH_TOKEN"
    assert options["auth_token"].credential and options["auth_token"].needed
    assert not options["pdns_server"].credential


def test_unknown_provider_is_bad_input() -> None:
    with pytest.raises(BadInput, match="unknown --lexicon-provider 'nosuch': 'certctl dns"):
        settings_for("lexicon", {"lexicon_provider": "nosuch"})
    with pytest.raises(BadInput, match="--dns-provider lexicon needs --lexicon-provider NAME"):
        settings_for("lexicon", {})
    with pytest.raises(BadInput, match="--lexicon-provider does not apply to --dns-provider hook"):
        settings_for("hook", {"hook": "/bin/true", "lexicon_provider": "powerdns"})


# ---- credentials ---------------------------------------------------------------------------


def private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    "text",
    [
        'auth_token = "s3cret-token"\npdns_server = "http://127.0.0.1:1"\n',
        '[powerdns]\nauth_token = "s3cret-token"\npdns_server = "http://127.0.0.1:1"\n',
        "LEXICON_POWERDNS_AUTH_TOKEN=s3cret-token\nexport LEXICON_POWERDNS_PDNS_SERVER="
        '"http://127.0.0.1:1"\n# a comment\n',
        'LEXICON_POWERDNS_AUTH_TOKEN = "s3cret-token"\npdns_server = "http://127.0.0.1:1"\n',
    ],
    ids=["toml", "toml-table", "variables", "toml-variable-names"],
)
def test_credentials_file_forms(tmp_path: Path, text: str) -> None:
    file = private(tmp_path / "creds", text)
    settings = settings_for(
        "lexicon", {"lexicon_provider": "powerdns", "credentials_file": str(file)}
    )
    assert settings == {
        "lexicon_provider": "powerdns",
        "credentials_file": str(file),
        "propagation_timeout": 120.0,
    }
    options = lexicon_meta.provider_options("powerdns")
    values = lexicon_meta.read_credentials("powerdns", options, str(file), [])
    assert values == {"auth_token": "s3cret-token", "pdns_server": "http://127.0.0.1:1"}


def test_credentials_file_refusals_never_show_a_value(tmp_path: Path) -> None:
    open_file = private(tmp_path / "open", 'auth_token = "s3cret-token"\n', 0o640)
    with pytest.raises(BadInput, match=f"readable by others .*chmod 600 {open_file}"):
        settings_for(
            "lexicon", {"lexicon_provider": "powerdns", "credentials_file": str(open_file)}
        )
    unknown = private(tmp_path / "unknown", 'auth_tokn = "s3cret-token"\n')
    with pytest.raises(BadInput) as refused:
        settings_for("lexicon", {"lexicon_provider": "powerdns", "credentials_file": str(unknown)})
    assert "'auth_tokn' is not an option of DNS provider powerdns" in str(refused.value)
    assert "s3cret-token" not in str(refused.value)
    garbled = private(tmp_path / "garbled", "this is not s3cret-token\n")
    with pytest.raises(BadInput) as refused:
        settings_for("lexicon", {"lexicon_provider": "powerdns", "credentials_file": str(garbled)})
    assert "line 1: expected TOML or VARIABLE=value lines" in str(refused.value)
    assert "s3cret-token" not in str(refused.value)
    with pytest.raises(BadInput, match="cannot read --dns-credentials"):
        settings_for(
            "lexicon",
            {"lexicon_provider": "powerdns", "credentials_file": str(tmp_path / "missing")},
        )


def test_environment_credentials_stored_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEXICON_CLOUDFLARE_AUTH_TOKEN", "s3cret-token")
    settings = settings_for("lexicon", {"lexicon_provider": "Cloudflare"})
    assert settings == {
        "lexicon_provider": "cloudflare",
        "credentials_env": ["LEXICON_CLOUDFLARE_AUTH_TOKEN"],
        "propagation_timeout": 120.0,
    }
    assert "s3cret-token" not in json.dumps(settings)
    monkeypatch.delenv("LEXICON_CLOUDFLARE_AUTH_TOKEN")
    with pytest.raises(BadInput, match=r"variable LEXICON_CLOUDFLARE_AUTH_TOKEN .* is not set"):
        settings_for("lexicon", settings)  # as a renewal re-reads the stored settings


# ---- nothing secret leaves ---------------------------------------------------------------


def test_scrubber_replaces_credentials_and_url_queries() -> None:
    scrub = lexicon_meta.Scrubber({"auth_token": "s3cret-token", "short": "ab"})
    text = scrub(
        "401 Client Error for url: https://api.example/x?key=abc&user=s3cret-token"
        " (token s3cret-token)"
    )
    assert "s3cret-token" not in text and "key=abc" not in text
    assert text == "401 Client Error for url: https://api.example/x?… (token [redacted])"


def test_scrubber_cleans_every_log_record_while_lexicon_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        scrub = lexicon_meta.Scrubber({"auth_token": "s3cret-token"})
        with scrub.logging():
            logging.getLogger("lexicon._private.providers.x").debug("req %s", "s3cret-token")
            logging.getLogger("urllib3.connectionpool").debug("GET /?key=s3cret-token HTTP/1.1")
        logging.getLogger("after").debug("no longer scrubbed: %s", "plain")
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    err = capsys.readouterr().err
    assert "s3cret-token" not in err
    assert "req [redacted]" in err and "no longer scrubbed: plain" in err


# ---- the public-suffix list: bundled, never fetched --------------------------------------

SUFFIX_PROBE = """
import sys
import tldextract
if sys.argv[1] == "certctl":
    from certctl.challenges.dns import lexicon_meta
    lexicon_meta.provider_names()  # what every lexicon use starts with
    print(lexicon_meta.registered_domain_suffix("_acme-challenge.www.example.co.uk"))
# as godaddy's provider (and lexicon's Client) look suffixes up
print(tldextract.extract("_acme-challenge.www.example.co.uk").suffix)
"""


def probe_suffixes(tmp_path: Path, mode: str) -> tuple[list[str], str, list[Path]]:
    """(the netguard log lines, stdout, files under HOME) of the probe in a guarded process."""
    home, log = tmp_path / mode / "home", tmp_path / mode / "netguard.log"
    home.mkdir(parents=True)
    src = os.environ.get("PYTHONPATH", "")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TLDEXTRACT", "XDG_"))},
        "PYTHONPATH": os.pathsep.join(p for p in (str(NETGUARD), src) if p),
        "CERTCTL_TEST_NETGUARD": str(log),
        "HOME": str(home),
    }
    proc = subprocess.run(
        [sys.executable, "-c", SUFFIX_PROBE, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines() if log.exists() else []
    return lines, proc.stdout, [p for p in home.rglob("*") if p.is_file()]


def test_suffix_lookups_use_the_bundled_list_and_never_fetch(tmp_path: Path) -> None:
    # the guard sees what tldextract does by default: it fetches the list and caches it
    attempts, out, cached = probe_suffixes(tmp_path, "default")
    assert any("socket.getaddrinfo" in a for a in attempts), attempts
    # certctl's lexicon use: the bundled snapshot, no attempt, nothing written
    attempts, out, cached = probe_suffixes(tmp_path, "certctl")
    assert attempts == [] and cached == []
    assert out.split() == ["2", "co.uk"]


# ---- the command ------------------------------------------------------------------------


def test_dns_providers_command_lists_and_describes() -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["dns", "providers", "--json"], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    names = [p["name"] for p in json.loads(listed.stdout)["providers"]]
    assert names == PROVIDERS
    one = runner.invoke(cli, ["dns", "providers", "powerdns", "--json"], catch_exceptions=False)
    assert one.exit_code == 0, one.output
    described = json.loads(one.stdout)
    assert described["name"] == "powerdns" and described["installed"] is True
    assert [o["name"] for o in described["options"]][:2] == ["auth_token", "pdns_server"]
    assert described["options"][0]["env"] == "LEXICON_POWERDNS_AUTH_TOKEN"
    text = runner.invoke(cli, ["dns", "providers", "powerdns"], catch_exceptions=False)
    assert "auth_token (credential; LEXICON_POWERDNS_AUTH_TOKEN)" in text.stdout
    unknown = runner.invoke(cli, ["dns", "providers", "nosuch"], catch_exceptions=False)
    assert unknown.exit_code == 2
    assert "unknown --lexicon-provider 'nosuch'" in unknown.stderr


def test_lexicon_provider_completion_lists_providers() -> None:
    from certctl.cli.options import lexicon_provider_completion

    found = lexicon_provider_completion(None, None, "power")  # type: ignore[arg-type]
    assert found == ["powerdns"]


def test_provider_errors_are_one_scrubbed_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """lexicon's and requests' own texts carry the secret (a URL, a message): never shown."""
    import requests

    from certctl.challenges.dns.providers import ProviderSolver
    from certctl.errors import OperationFailed
    from certctl.reporting import QuietReporter

    secret = "s3cret-" + "token-value"
    monkeypatch.setenv("LEXICON_POWERDNS_AUTH_TOKEN", secret)
    monkeypatch.setenv("LEXICON_POWERDNS_PDNS_SERVER", "http://127.0.0.1:1")
    settings = settings_for("lexicon", {"lexicon_provider": "powerdns"})
    solver = ProviderSolver(settings, QuietReporter())
    solver.check()  # builds the provider offline: the credentials are read

    def fails(error: Exception) -> None:
        raise error

    response = requests.Response()
    response.status_code, response._content = 500, json.dumps({"error": f"bad {secret}"}).encode()
    cases = [
        Exception(f"provider said: token {secret} rejected\nsecond line"),
        requests.HTTPError(f"500 for url: http://h/x?api_key={secret}", response=response),
        requests.ConnectionError(f"HTTPConnectionPool: url /?key={secret} [Errno 111] refused"),
    ]
    for error in cases:
        with pytest.raises(OperationFailed) as failed:
            solver._call("DNS provider powerdns (zone example.com)", "add TXT x", fails, error)
        message = str(failed.value)
        assert secret not in message and "\n" not in message, message
        assert message.startswith("DNS provider powerdns (zone example.com)"), message


def test_a_silent_provider_api_times_out_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """lexicon sets no timeout on its requests: certctl bounds each one (here 0.5 s)."""
    import socket

    from certctl.challenges.dns import providers
    from certctl.errors import OperationFailed
    from certctl.reporting import QuietReporter

    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        monkeypatch.setenv("LEXICON_POWERDNS_AUTH_TOKEN", "s3cret-token")
        monkeypatch.setenv("LEXICON_POWERDNS_PDNS_SERVER", f"http://127.0.0.1:{port}")
        monkeypatch.setattr(providers, "API_TIMEOUT", 0.5)
        settings = settings_for("lexicon", {"lexicon_provider": "powerdns", "zone": "example.com"})
        solver = providers.ProviderSolver(settings, QuietReporter())
        with pytest.raises(OperationFailed) as failed:
            solver._client("example.com")
    assert str(failed.value) == (
        "DNS provider powerdns (zone example.com) did not answer within 0.5s to open the zone:"
        " retry later"
    )
