"""DNS provider options: bad input is refused with one line and exit 2 before anything happens."""

from __future__ import annotations

import base64
from pathlib import Path

import dns.name
import pytest

from certctl.challenges.dns import protocol
from certctl.challenges.dns.protocol import Expectation, Server
from certctl.challenges.dns.settings import settings_for
from certctl.errors import OperationFailed

import storeview
from conftest import Certctl

SECRET = base64.b64encode(b"s" * 32).decode()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "tsig.secret"
    path.write_text(SECRET + "\n")
    return path


def order(offline: Certctl, *args: str) -> tuple[int, str]:
    result = offline.invoke("order", "-d", "example.com", "--challenge", "dns", *args)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dns-provider", "rfc2136"], "--dns-provider rfc2136 needs --dns-server"),
        (
            ["--dns-provider", "rfc2136", "--dns-server", "192.0.2.1"],
            "--dns-provider rfc2136 needs --tsig-key",
        ),
        (
            ["--dns-provider", "rfc2136", "--dns-server", "192.0.2.1", "--tsig-key", "k"],
            "needs one of --tsig-secret-file or --tsig-secret-env",
        ),
        (
            ["--dns-provider", "rfc2136", "--dns-server", "ns1.example.com", "--tsig-key", "k"],
            "invalid --dns-server 'ns1.example.com': expected IP[:PORT]",
        ),
        (
            ["--dns-provider", "rfc2136", "--dns-server", "192.0.2.1:0", "--tsig-key", "k"],
            "invalid port in --dns-server '192.0.2.1:0'",
        ),
        (["--dns-server", "192.0.2.1"], "--dns-server needs --challenge dns --dns-provider"),
        (["--dns-provider", "hook"], "--dns-provider hook needs --dns-hook CMD"),
        (
            ["--dns-provider", "hook", "--dns-hook", "/nonexistent/hook add"],
            "--dns-hook program '/nonexistent/hook' not found or not executable",
        ),
        (
            ["--dns-provider", "hook", "--dns-hook", "true", "--dns-server", "192.0.2.1"],
            "--dns-server does not apply to --dns-provider hook",
        ),
        (
            ["--dns-provider", "hook", "--dns-hook", "true", "--dns-nameserver", "x"],
            "invalid --dns-nameserver 'x'",
        ),
    ],
)
def test_bad_dns_options_exit_2(offline: Certctl, args: list[str], message: str) -> None:
    code, output = order(offline, *args)
    assert code == 2, output
    assert message in output
    assert len(output.strip().splitlines()) == 1
    assert not storeview.exists(offline)  # nothing was changed


def test_provider_needs_dns_challenge(offline: Certctl) -> None:
    result = offline.invoke("order", "-d", "example.com", "--dns-provider", "hook")
    assert result.exit_code == 2
    assert "--dns-provider needs --challenge dns" in result.output


def rfc2136_args(*extra: str) -> list[str]:
    return ["--dns-provider", "rfc2136", "--dns-server", "192.0.2.1", "--tsig-key", "k", *extra]


def test_secret_problems_never_echo_the_secret(
    offline: Certctl, tmp_path: Path, secret_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both = rfc2136_args("--tsig-secret-file", str(secret_file), "--tsig-secret-env", "X")
    assert order(offline, *both)[0] == 2
    code, output = order(offline, *rfc2136_args("--tsig-secret-env", "CERTCTL_TEST_UNSET"))
    assert (code, output.strip()) == (
        2,
        "error: environment variable CERTCTL_TEST_UNSET (the TSIG secret) is not set or empty",
    )
    monkeypatch.setenv("CERTCTL_TEST_BAD", "not base64 at all!")
    code, output = order(offline, *rfc2136_args("--tsig-secret-env", "CERTCTL_TEST_BAD"))
    assert code == 2 and "not base64" in output and "at all" not in output
    missing = tmp_path / "missing.key"
    code, output = order(offline, *rfc2136_args("--tsig-secret-file", str(missing)))
    assert (code, output.strip()) == (
        2,
        f"error: cannot read the TSIG secret file {missing}: FileNotFoundError",
    )
    code, output = order(
        offline, *rfc2136_args("--tsig-secret-file", str(secret_file), "--tsig-algorithm", "md4")
    )
    assert code == 2 and "unknown --tsig-algorithm 'md4'" in output


def test_settings_reference_the_secret_and_are_idempotent(
    secret_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = {
        "server": "[2001:db8::1]:5353",
        "tsig_key": "certctl.",
        "tsig_algorithm": "HMAC-SHA512",
        "tsig_secret_file": str(secret_file),
        "zone": "Example.COM.",
        "nameservers": ["192.0.2.1", "192.0.2.2:5353"],
    }
    settings = settings_for("rfc2136", raw)
    assert settings == {
        "server": "[2001:db8::1]:5353",
        "tsig_key": "certctl",
        "tsig_algorithm": "hmac-sha512",
        "tsig_secret_file": str(secret_file.resolve()),
        "zone": "Example.COM",
        "nameservers": ["192.0.2.1:53", "192.0.2.2:5353"],
        "propagation_timeout": 120.0,
    }
    assert SECRET not in repr(settings)
    assert settings_for("rfc2136", settings) == settings  # stored form reloads unchanged
    monkeypatch.setenv("TSIG", SECRET)
    by_env = settings_for("rfc2136", {**raw, "tsig_secret_file": None, "tsig_secret_env": "TSIG"})
    assert by_env["tsig_secret_env"] == "TSIG" and SECRET not in repr(by_env)


def test_bind_key_clause_is_accepted_as_a_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "k.conf"
    path.write_text(f'key "certctl" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n')
    assert protocol.read_secret(str(path), None) == b"s" * 32


class FakeExpectation(Expectation):
    """Served from the n-th poll on; records when it was asked."""

    def __init__(self, served_from: int, clock: list[float]) -> None:
        super().__init__(Server("192.0.2.1", 5300), "example.com", dns.name.from_text("x."), {"v"})
        self.served_from, self.clock, self.asked_at = served_from, clock, list[float]()

    def satisfied(self) -> bool:
        self.asked_at.append(self.clock[0])
        self.seen = "no TXT record"
        return len(self.asked_at) >= self.served_from


def test_propagation_polls_with_backoff_until_served() -> None:
    now = [0.0]
    slow, fast = FakeExpectation(5, now), FakeExpectation(1, now)
    protocol.wait_until_served(
        [slow, fast], 60, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    assert len(fast.asked_at) == 1  # a server that serves it is not asked again
    gaps = [b - a for a, b in zip(slow.asked_at, slow.asked_at[1:], strict=False)]
    assert gaps == sorted(gaps) and gaps[0] == pytest.approx(0.2)


def test_propagation_deadline_names_the_lagging_server() -> None:
    now = [0.0]
    never = FakeExpectation(10**9, now)
    with pytest.raises(OperationFailed) as caught:
        protocol.wait_until_served(
            [never], 7, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
        )
    assert now[0] == pytest.approx(7)  # stops at the deadline, not after another sleep
    assert str(caught.value) == (
        "not propagated after 7s (the CA was not asked): 192.0.2.1:5300 (zone example.com)"
        " does not serve TXT x yet: no TXT record — check that every name server gets the"
        " zone's updates (NOTIFY, zone transfer), or raise --propagation-timeout"
    )


def test_relative_hook_is_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Renewals run from cron's directory: a ./hook must still be found then."""
    hook = tmp_path / "my hook.sh"
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    assert settings_for("hook", {"hook": "'./my hook.sh' --zone x"}) == {
        "hook": f"'{hook}' --zone x",
        "propagation_timeout": 120.0,
    }
    assert settings_for("hook", {"hook": "true --flag"})["hook"] == "true --flag"
