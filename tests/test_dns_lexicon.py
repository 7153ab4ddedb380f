"""DNS-01 through dns-lexicon against a real PowerDNS authoritative server and its HTTP API.

PowerDNS hosts the zones; a BIND resolver (recursive, no cache, *.test forwarded to
PowerDNS) is what Pebble asks, as a CA resolves through a recursive resolver: so a
CNAME-delegated `_acme-challenge` is followed as it would be in the wild. Every
certctl subprocess runs with tests/netguard on its path: any attempt to reach
anything but loopback (a public-suffix list download included) is refused and logged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from pdns import PowerDns, require_pdns
from test_e2e_pebble import assert_issued

from bind import BindServer, Zone, require_tools
from conftest import Certctl, make_due, store_key
from pebble import PebbleServer, require_pebble

pytestmark = pytest.mark.pebble

ZONES = ["dns1.test", "dns2.test", "challenges.test"]
NETGUARD = Path(__file__).parent / "netguard"


@dataclass
class Lab:
    pdns: PowerDns
    resolver: BindServer
    # authoritative elsewhere: unhosted.test (not at the provider), a copy of dns1.test that
    # never gets an update
    other: BindServer
    pebble: PebbleServer
    credentials: Path  # TOML, 0600: auth_token and pdns_server


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_pebble()
    require_pdns()
    require_tools("named")
    tmp = tmp_path_factory.mktemp("pdnslab")
    with (
        PowerDns(tmp / "pdns", ZONES) as pdns,
        BindServer(tmp / "resolver", [], [], forward_to=pdns.port) as resolver,
        BindServer(tmp / "other", [Zone("unhosted.test"), Zone("dns1.test")], []) as other,
        PebbleServer(tmp / "pebble", dns_server=resolver.address) as pebble,
    ):
        credentials = tmp / "powerdns.toml"
        credentials.write_text(
            f'[powerdns]\nauth_token = "{pdns.api_key}"\npdns_server = "{pdns.api_url}"\n'
        )
        credentials.chmod(0o600)
        yield Lab(pdns, resolver, other, pebble, credentials)


@pytest.fixture
def certctl(store: Path, lab: Lab, backend: str, request: pytest.FixtureRequest) -> Certctl:
    """certctl against the lab's Pebble, with a fresh store (each backend in turn)."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        return Certctl(store, lab.pebble, location=url, key_file=store_key(store.parent))
    return Certctl(store, lab.pebble)


@pytest.fixture
def netlog(tmp_path: Path) -> Iterator[Path]:
    """The netguard log of this test's certctl runs: empty at the end (loopback only)."""
    path = tmp_path / "netguard.log"
    yield path
    assert not path.exists() or path.read_text() == ""


@pytest.fixture(autouse=True)
def no_leftovers(lab: Lab) -> Iterator[None]:
    """After every test, no `_acme-challenge` TXT of certctl's is left in any zone."""
    yield
    assert lab.pdns.leftover_challenges() == []


def label(prefix: str = "l") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def lexicon(lab: Lab, *extra: str, credentials: Path | None = None) -> list[str]:
    """Order options for the PowerDNS provider (credentials from the TOML file by default)."""
    file = [] if credentials is None and "--env" in extra else ["--dns-credentials"]
    if file:
        file.append(str(credentials or lab.credentials))
    return [
        "--challenge", "dns",
        "--dns-provider", "lexicon",
        "--lexicon-provider", "powerdns",
        *file,
        "--dns-nameserver", lab.pdns.address,
        "--agree-tos",
        *(e for e in extra if e != "--env"),
    ]  # fmt: skip


def run(
    certctl: Certctl, lab: Lab, netlog: Path, *args: str, env: dict[str, str] | None = None
) -> CompletedProcess[str]:
    """certctl as a subprocess (stdin closed, as cron), network guarded to loopback."""
    return certctl.run(*args, extra_env={**guarded_env(netlog, lab), **(env or {})})


def guarded_env(netlog: Path, lab: Lab) -> dict[str, str]:
    """tests/netguard on the path, HOME in the test's directory (a suffix-list cache would land
    there), the DNS self-check through the lab's resolver."""
    assert not [k for k in os.environ if k.startswith("LEXICON_")]
    src = os.environ.get("PYTHONPATH", "")
    return {
        "PYTHONPATH": os.pathsep.join(p for p in (str(NETGUARD), src) if p),
        "CERTCTL_TEST_NETGUARD": str(netlog),
        "HOME": str(netlog.parent / "home"),
        "XDG_CACHE_HOME": str(netlog.parent / "home" / ".cache"),
        "CERTCTL_RESOLVER": lab.resolver.address,
    }


def domains_args(*domains: str) -> list[str]:
    return [a for d in domains for a in ("-d", d)]


def stored_text(certctl: Certctl, name: str) -> str:
    if certctl.backend == "filesystem":
        return (certctl.store / "certs" / name / "meta.toml").read_text()
    import psycopg

    with psycopg.connect(certctl.location, autocommit=True) as conn:
        row = conn.execute(
            "SELECT record::text FROM certctl_certificates WHERE name = %s", (name,)
        ).fetchone()
    assert row is not None, name
    return str(row[0])


def validation(certctl: Certctl, name: str) -> dict[str, object]:
    text = stored_text(certctl, name)
    meta = tomllib.loads(text) if certctl.backend == "filesystem" else json.loads(text)
    found: dict[str, object] = meta["validation"]
    return found


def no_home_cache(netlog: Path) -> None:
    home = netlog.parent / "home"
    assert not home.exists() or not any(home.rglob("*")), list(home.rglob("*"))


# ---- issuing ------------------------------------------------------------------------------


def test_wildcard_and_apex_three_steps_keeps_foreign_txt(
    certctl: Certctl, lab: Lab, netlog: Path
) -> None:
    base = f"{label('w')}.dns1.test"
    record = f"_acme-challenge.{base}"
    lab.pdns.set_rrset("dns1.test", record, "TXT", ['"keep-me"'])  # someone else's value
    try:
        args = domains_args(f"*.{base}", base)
        ordered = run(certctl, lab, netlog, "order", *args, *lexicon(lab), "--json")
        assert ordered.returncode == 0, ordered.stderr
        name = f"wildcard.{base}"
        assert lab.pdns.api_txt(record) == ["keep-me"]  # order only prints
        verified = run(certctl, lab, netlog, "verify", name)
        assert verified.returncode == 0, verified.stderr
        assert f"powerdns added TXT {record} in zone dns1.test" in verified.stderr
        assert "waiting up to 120s until TXT" in verified.stderr  # progress of the wait
        # exactly the two added values are gone, over the API and over DNS
        assert lab.pdns.api_txt(record) == ["keep-me"]
        assert lab.pdns.txt(record) == ["keep-me"]
        issued = run(certctl, lab, netlog, "issue", name)
        assert issued.returncode == 0, issued.stderr
        assert_issued(certctl, lab.pebble, name, [f"*.{base}", base])
        assert validation(certctl, name) == {
            "challenge": "dns",
            "method": "lexicon",
            "settings": {
                "lexicon_provider": "powerdns",
                "credentials_file": str(lab.credentials),
                "nameservers": [lab.pdns.address],
                "propagation_timeout": 120.0,
            },
        }
        shown = run(certctl, lab, netlog, "show", name, "--json")
        assert shown.returncode == 0, shown.stderr
        listed = run(certctl, lab, netlog, "list", "--json")
        entries = json.loads(listed.stdout)["certificates"]
        assert [e["renewal"] for e in entries if e["name"] == name] == ["dns-01 lexicon (powerdns)"]
        everything = ordered.stdout + ordered.stderr + verified.stdout + verified.stderr
        everything += issued.stdout + issued.stderr + shown.stdout + stored_text(certctl, name)
        assert lab.pdns.api_key not in everything
        no_home_cache(netlog)
    finally:
        lab.pdns.set_rrset("dns1.test", record, "TXT", [])


def test_several_zones_env_credentials_then_renew_due_from_cron(
    certctl: Certctl, lab: Lab, netlog: Path
) -> None:
    """Credentials from variables: the store keeps their names; cron renews with them."""
    one, two = f"{label('z')}.dns1.test", f"{label('z')}.dns2.test"
    domains = [one, f"*.{two}", two]
    env = dict(
        LEXICON_POWERDNS_AUTH_TOKEN=lab.pdns.api_key,
        LEXICON_POWERDNS_PDNS_SERVER=lab.pdns.api_url,
    )
    first = run(
        certctl, lab, netlog, "obtain", *domains_args(*domains), *lexicon(lab, "--env"), env=env
    )
    assert first.returncode == 0, first.stderr
    assert "in zone dns1.test" in first.stderr and "in zone dns2.test" in first.stderr
    assert_issued(certctl, lab.pebble, one, domains)
    settings = validation(certctl, one)["settings"]
    assert settings == {
        "lexicon_provider": "powerdns",
        "credentials_env": ["LEXICON_POWERDNS_AUTH_TOKEN", "LEXICON_POWERDNS_PDNS_SERVER"],
        "nameservers": [lab.pdns.address],
        "propagation_timeout": 120.0,
    }
    make_due(certctl, one)
    renewed = run(certctl, lab, netlog, "renew-due", "--json", "--debug", env=env)
    assert renewed.returncode == 0, renewed.stderr
    assert "DEBUG:" in renewed.stderr  # lexicon's and urllib3's own logging, scrubbed
    outcome = json.loads(renewed.stdout)["certificates"]
    assert [(c["name"], c["action"]) for c in outcome] == [(one, "renewed")]
    with closing(certctl.open()) as store:
        assert store.live_version(one) == 2
    for text in (first.stdout, first.stderr, renewed.stdout, renewed.stderr):
        assert lab.pdns.api_key not in text
    assert lab.pdns.api_key not in stored_text(certctl, one)
    # a variable gone at renewal: one line naming it, nothing renewed
    make_due(certctl, one)
    gone = {k: v for k, v in env.items() if k != "LEXICON_POWERDNS_AUTH_TOKEN"}
    failed = run(certctl, lab, netlog, "renew-due", env=gone)
    assert failed.returncode != 0
    said = failed.stdout + failed.stderr  # the run's table reports each certificate's failure
    assert "variable LEXICON_POWERDNS_AUTH_TOKEN (option auth_token" in said and "not set" in said
    with closing(certctl.open()) as store:
        assert store.live_version(one) == 2


def test_delegated_challenge_name_is_published_at_the_cname_target(
    certctl: Certctl, lab: Lab, netlog: Path
) -> None:
    host = label("cn")
    domain = f"{host}.dns1.test"
    alias, target = f"_acme-challenge.{domain}", f"{host}.challenges.test"
    lab.pdns.set_rrset("dns1.test", alias, "CNAME", [target + "."])
    try:
        proc = run(certctl, lab, netlog, "obtain", "-d", domain, *lexicon(lab))
        assert proc.returncode == 0, proc.stderr
        assert f"powerdns added TXT {target} in zone challenges.test" in proc.stderr
        assert_issued(certctl, lab.pebble, domain, [domain])
        assert lab.pdns.api_txt(target) == [] and lab.pdns.txt(target) == []
        zone = lab.pdns.api("GET", "/zones/dns1.test.")
        kept = [r for r in zone["rrsets"] if r["name"] == alias + "."]
        assert [(r["type"], r["records"][0]["content"]) for r in kept] == [("CNAME", target + ".")]
    finally:
        lab.pdns.set_rrset("dns1.test", alias, "CNAME", [])


# ---- failures ---------------------------------------------------------------------------


def write_credentials(path: Path, token: str, server: str, mode: int = 0o600) -> Path:
    path.write_text(f'auth_token = "{token}"\npdns_server = "{server}"\n')
    path.chmod(mode)
    return path


def test_wrong_api_key_is_one_line_naming_provider_and_zone(
    certctl: Certctl, lab: Lab, netlog: Path, tmp_path: Path
) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    creds = write_credentials(tmp_path / "bad.toml", wrong, lab.pdns.api_url)
    domain = f"{label('k')}.dns1.test"
    proc = run(certctl, lab, netlog, "obtain", "-d", domain, *lexicon(lab, credentials=creds))
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert (
        "DNS provider powerdns refused the credentials (HTTP 401) to find the zone of"
        f" _acme-challenge.{domain}: check them in --dns-credentials {creds}"
    ) in errors[0]
    assert f"--dns-credentials {creds}" in errors[0]
    assert wrong not in proc.stdout + proc.stderr
    assert lab.pdns.api_txt(f"_acme-challenge.{domain}") == []


def on(server: BindServer, args: list[str]) -> list[str]:
    """The order options with `server` as the one that must serve the values."""
    args = list(args)
    args[args.index("--dns-nameserver") + 1] = server.address
    return args


def test_zone_the_server_does_not_host(certctl: Certctl, lab: Lab, netlog: Path) -> None:
    """The name's zone is served elsewhere (lab.other), not by the provider's account."""
    domain = f"{label('u')}.unhosted.test"
    proc = run(certctl, lab, netlog, "obtain", "-d", domain, *on(lab.other, lexicon(lab)))
    assert proc.returncode == 1, proc.stderr
    assert (
        f"zone not found: DNS provider powerdns hosts no zone holding _acme-challenge.{domain}"
        in proc.stderr
    )
    assert "pass --dns-zone" in proc.stderr
    assert lab.pdns.api_key not in proc.stdout + proc.stderr
    # an explicit zone it does not host: the same, naming it
    zone = on(lab.other, lexicon(lab, "--dns-zone", "unhosted.test"))
    named = run(certctl, lab, netlog, "obtain", "-d", domain, *zone)
    assert named.returncode == 1, named.stderr
    assert "zone not found: DNS provider powerdns does not host zone unhosted.test" in named.stderr


def test_api_stopped_mid_run_is_reported_with_what_to_remove(
    certctl: Certctl, lab: Lab, netlog: Path, tmp_path: Path
) -> None:
    """The API goes away while certctl waits for propagation: removal fails, clearly."""
    own = PowerDns(tmp_path / "pdns", ["dns1.test"]).start()
    try:
        creds = write_credentials(tmp_path / "own.toml", own.api_key, own.api_url)
        domain = f"{label('s')}.dns1.test"
        record = f"_acme-challenge.{domain}"
        # the server that must serve the value: a copy of the zone that never gets it
        args = on(lab.other, lexicon(lab, "--propagation-timeout", "4", credentials=creds))
        ordered = run(certctl, lab, netlog, "order", "-d", domain, *args)
        assert ordered.returncode == 0, ordered.stderr
        full_env = {**os.environ, **certctl.env(), **guarded_env(netlog, lab)}
        verify = subprocess.Popen(
            [sys.executable, "-m", "certctl", "verify", domain],
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while own.api_txt(record) == []:
            assert verify.poll() is None, verify.communicate()
            assert time.monotonic() < deadline, "certctl never published"
            time.sleep(0.05)
        own.stop()  # mid-run: published, now waiting
        out, err = verify.communicate(timeout=90)
        assert verify.returncode == 1, err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, err
        assert "not propagated after 4s" in errors[0]
        assert f"could not remove TXT {record}" in errors[0]
        assert "DNS provider powerdns (zone dns1.test) API unreachable" in errors[0]
        assert "remove it by hand" in errors[0]
        assert own.api_key not in out + err
        own.start()  # the same database: the value certctl could not remove is there
        assert len(own.api_txt(record)) == 1
    finally:
        own.stop()


# ---- refusals before anything is ordered ---------------------------------------------------


def test_missing_credential_refused_before_an_order(
    certctl: Certctl, lab: Lab, netlog: Path
) -> None:
    domain = f"{label('m')}.dns1.test"
    proc = run(certctl, lab, netlog, "order", "-d", domain, *lexicon(lab, "--env"))
    assert proc.returncode == 2, proc.stderr
    assert "DNS provider powerdns has no credentials: missing auth_token" in proc.stderr
    assert "LEXICON_POWERDNS_AUTH_TOKEN" in proc.stderr
    with closing(certctl.open()) as store:
        assert store.names() == []


def test_credentials_file_readable_by_others_is_refused(
    certctl: Certctl, lab: Lab, netlog: Path, tmp_path: Path
) -> None:
    creds = write_credentials(tmp_path / "open.toml", lab.pdns.api_key, lab.pdns.api_url, 0o644)
    proc = run(certctl, lab, netlog, "order", "-d", "x.dns1.test", *lexicon(lab, credentials=creds))
    assert proc.returncode == 2, proc.stderr
    assert f"chmod 600 {creds}" in proc.stderr
    assert lab.pdns.api_key not in proc.stdout + proc.stderr


def test_propagation_timeout_removes_what_was_added(
    certctl: Certctl, lab: Lab, netlog: Path
) -> None:
    """A server that never serves the value: the run fails, the CA is not asked, nothing stays."""
    domain = f"{label('t')}.dns1.test"
    record = f"_acme-challenge.{domain}"
    args = on(lab.other, lexicon(lab, "--propagation-timeout", "2"))
    proc = run(certctl, lab, netlog, "obtain", "-d", domain, *args)
    assert proc.returncode == 1, proc.stderr
    assert f"powerdns added TXT {record} in zone dns1.test" in proc.stderr
    assert "error: not propagated after 2s (the CA was not asked)" in proc.stderr
    assert "could not remove" not in proc.stderr
    assert lab.pdns.api_txt(record) == [] and lab.pdns.txt(record) == []
