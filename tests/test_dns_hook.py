"""DNS-01 through a user's hook command (a shell script calling nsupdate) against BIND9."""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from test_dns_rfc2136 import stored_text
from test_e2e_pebble import assert_issued

from bind import DnsLab, dns_lab, require_tools
from conftest import Certctl, store_key

pytestmark = pytest.mark.pebble

HOOK = r"""#!/bin/sh
# certctl DNS hook: publish or remove one TXT value with nsupdate (TSIG key from a file)
set -eu
echo "$CERTCTL_ACTION $CERTCTL_RECORD_NAME $CERTCTL_RECORD_VALUE $CERTCTL_DOMAIN" >> "$HOOK_LOG"
case "$CERTCTL_DOMAIN" in
  fail-*) echo "looking up the zone" >&2; echo "update failed: REFUSED" >&2; exit 3 ;;
esac
if [ "$CERTCTL_ACTION" = add ]; then
  change="update add $CERTCTL_RECORD_NAME. 60 TXT \"$CERTCTL_RECORD_VALUE\""
else
  change="update delete $CERTCTL_RECORD_NAME. TXT \"$CERTCTL_RECORD_VALUE\""
fi
printf 'server 127.0.0.1 %s\n%s\nsend\n' "$BIND_PORT" "$change" | nsupdate -k "$TSIG_KEY_FILE"
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsLab]:
    """The BIND lab (see bind.dns_lab), plus nsupdate for the hook."""
    require_tools("nsupdate")
    with dns_lab(tmp_path_factory.mktemp("dnslab")) as started:
        yield started


@pytest.fixture
def certctl(store: Path, lab: DnsLab, backend: str, request: pytest.FixtureRequest) -> Certctl:
    """certctl against the lab's Pebble, with a fresh store (each backend in turn)."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        return Certctl(store, lab.pebble, location=url, key_file=store_key(store.parent))
    return Certctl(store, lab.pebble)


@pytest.fixture
def hook(tmp_path: Path) -> Path:
    """The hook script, executable."""
    path = tmp_path / "dns-hook.sh"
    path.write_text(HOOK)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(autouse=True)
def no_leftovers(lab: DnsLab) -> Iterator[None]:
    """After every test, no `_acme-challenge` TXT is left in any zone of the primary."""
    yield
    assert lab.primary.leftover_challenges() == []


def obtain(
    lab: DnsLab, certctl: Certctl, tmp_path: Path, hook: Path, *domains: str
) -> tuple[CompletedProcess[str], list[str]]:
    """`certctl obtain` with the hook provider; returns the process and the hook's log lines."""
    log = tmp_path / "hook.log"
    env = {
        "CERTCTL_RESOLVER": lab.resolver.address,
        "HOOK_LOG": str(log),
        "BIND_PORT": str(lab.primary.port),
        "TSIG_KEY_FILE": str(lab.secret_file),
    }
    proc = certctl.run(
        "obtain",
        *(a for d in domains for a in ("-d", d)),
        "--challenge", "dns",
        "--dns-provider", "hook",
        "--dns-hook", f"{hook} --from-certctl",
        "--dns-nameserver", lab.primary.address,
        "--agree-tos",
        extra_env=env,
    )  # fmt: skip
    return proc, log.read_text().splitlines() if log.exists() else []


def test_hook_publishes_and_removes_wildcard_and_apex(
    lab: DnsLab, certctl: Certctl, tmp_path: Path, hook: Path
) -> None:
    base = f"h-{uuid.uuid4().hex[:8]}.dns2.test"
    proc, log = obtain(lab, certctl, tmp_path, hook, f"*.{base}", base)
    assert proc.returncode == 0, proc.stderr
    assert_issued(certctl, lab.pebble, f"wildcard.{base}", [f"*.{base}", base])
    record = f"_acme-challenge.{base}"
    assert [line.split()[0] for line in log] == ["add", "add", "remove", "remove"]
    assert {(line.split()[1], line.split()[3]) for line in log} == {(record, base)}
    added = {line.split()[2] for line in log if line.startswith("add")}
    removed = {line.split()[2] for line in log if line.startswith("remove")}
    assert len(added) == 2 and added == removed
    meta = stored_text(certctl, f"wildcard.{base}")
    if certctl.backend == "filesystem":
        assert 'method = "hook"' in meta and f'hook = "{hook} --from-certctl"' in meta
    else:
        assert '"method": "hook"' in meta and f'"hook": "{hook} --from-certctl"' in meta


def test_hook_failure_fails_with_its_stderr_and_removes_what_was_added(
    lab: DnsLab, certctl: Certctl, tmp_path: Path, hook: Path
) -> None:
    good, bad = f"ok-{uuid.uuid4().hex[:8]}.dns1.test", f"fail-{uuid.uuid4().hex[:8]}.dns1.test"
    proc, log = obtain(lab, certctl, tmp_path, hook, good, bad)
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    assert error == (
        f"error: DNS hook {hook} (add TXT _acme-challenge.{bad} for {bad}) failed with exit 3:"
        " looking up the zone | update failed: REFUSED"
    )
    # whatever was added before the failure was removed again
    added = [line.split()[1:3] for line in log if line.startswith("add") and good in line]
    removed = [line.split()[1:3] for line in log if line.startswith("remove")]
    assert removed == added
