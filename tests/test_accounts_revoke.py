"""Accounts (EAB, show, deactivate, key rollover), revocation and profiles against Pebble."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certctl.acme.session import AcmeSession
from certctl.errors import AcmeError
from certctl.models import AccountRecord

from conftest import Certctl, make_due, unique
from pebble import PebbleServer, require_pebble

pytestmark = pytest.mark.pebble

HMAC_KEY = base64.urlsafe_b64encode(os.urandom(48)).decode().rstrip("=")
WRONG_HMAC_KEY = base64.urlsafe_b64encode(os.urandom(48)).decode().rstrip("=")
SECRETS = (HMAC_KEY, WRONG_HMAC_KEY)


@pytest.fixture(scope="module")
def eab_pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleServer]:
    """A Pebble requiring External Account Binding (one key, "kid-1") with one profile."""
    require_pebble()
    server = PebbleServer(
        tmp_path_factory.mktemp("pebble-eab"),
        eab_keys={"kid-1": HMAC_KEY},
        profiles={"default": {"description": "the only one", "validityPeriod": 7776000}},
    )
    with server:
        yield server


@pytest.fixture
def eab_certctl(store: Path, eab_pebble: PebbleServer) -> Certctl:
    """certctl wired to a fresh store and the EAB Pebble."""
    return Certctl(store, eab_pebble)


class Outputs:
    """Every stdout/stderr a test saw, to prove no secret leaked into any of them."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def run(self, certctl: Certctl, *args: str, **kw: Any) -> Any:
        proc = certctl.run(*args, **kw)
        self.texts += [proc.stdout, proc.stderr]
        return proc

    def assert_no_secret(self, store: Path) -> None:
        for text in self.texts:
            for secret in SECRETS:
                assert secret not in text
        for path in store.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for secret in SECRETS:
                    assert secret.encode() not in data, path


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def obtain(certctl: Certctl, domain: str, *extra: str) -> dict[str, Any]:
    """Issue a certificate with HTTP-01 standalone."""
    assert certctl.pebble is not None
    return certctl.json(  # type: ignore[no-any-return]
        "obtain",
        "-d",
        domain,
        "--standalone",
        "--http-port",
        str(certctl.pebble.http_port),
        "--agree-tos",
        *extra,
    )


def account_files(certctl: Certctl) -> Path:
    """The one account directory of the store (filesystem backend)."""
    (directory,) = (certctl.store / "accounts").iterdir()
    return directory


def stored_account(certctl: Certctl) -> tuple[AccountRecord, bytes, bytes | None]:
    """The one account of the store through the contract: record, key, unsettled old key."""
    assert certctl.pebble is not None
    with closing(certctl.open()) as store:
        assert store.account_servers() == [certctl.pebble.directory_url]
        found = store.read_account(certctl.pebble.directory_url)
        assert found is not None
        return found[0], found[1], store.previous_account_key(certctl.pebble.directory_url)


def no_account(certctl: Certctl) -> bool:
    """True when the store holds no account, not even a key kept before registering."""
    assert certctl.pebble is not None
    with closing(certctl.open()) as store:
        return store.account_servers() == [] and (
            store.read_account_key(certctl.pebble.directory_url) is None
        )


def sql(certctl: Certctl, statement: str) -> None:
    """Run one statement on the test's PostgreSQL store (as its own user)."""
    import psycopg

    with psycopg.connect(certctl.location, autocommit=True) as conn:
        conn.execute(statement)


def session_for(pebble: PebbleServer) -> AcmeSession:
    return AcmeSession(pebble.directory_url, ca_bundle=str(pebble.ca_bundle), timeout=10)


def order_profiles(certctl: Certctl) -> list[str | None]:
    """The profile of every order the store's account placed, as the CA recorded it."""
    assert certctl.pebble is not None
    with closing(certctl.open()) as store:
        stored = store.read_account(certctl.pebble.directory_url)
    assert stored is not None
    session = session_for(certctl.pebble)
    session.login(stored[1], stored[0].uri)
    url = session._get(stored[0].uri).json()["orders"]  # RFC 8555 §7.1.2.1
    profiles = []
    while url:
        page = session._get(url)
        profiles += [session._get(o).json().get("profile") for o in page.json()["orders"]]
        url = page.links.get("next", {}).get("url")
    return profiles


def lifetime_days(certctl: Certctl, name: str) -> float:
    cert = x509.load_pem_x509_certificate(certctl.live(name)["cert.pem"])
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() / 86400


# ---- External Account Binding ---------------------------------------------------------


def test_eab_registration(eab_certctl: Certctl, tmp_path: Path) -> None:
    out = Outputs()
    env = {"EAB_KEY": HMAC_KEY, "WRONG_KEY": WRONG_HMAC_KEY, "BAD_KEY": "not base64!"}

    # without EAB: exit 2, the CA is asked nothing, nothing stored
    proc = out.run(eab_certctl, "account", "register", "--agree-tos")
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    assert "requires External Account Binding" in line and "--eab-kid" in line
    assert not (eab_certctl.store / "accounts").exists() or not any(
        (eab_certctl.store / "accounts").iterdir()
    )
    # an order creating the account on first use says the same
    proc = out.run(eab_certctl, "order", "-d", unique(), "--agree-tos")
    assert proc.returncode == 2 and "External Account Binding" in proc.stderr

    # not base64url: exit 2, one line, the value not echoed
    proc = out.run(
        eab_certctl,
        *("account", "register", "--agree-tos", "--eab-kid", "kid-1"),
        *("--eab-hmac-key-env", "BAD_KEY"),
        extra_env=env,
    )
    assert proc.returncode == 2
    assert "environment variable BAD_KEY is not base64url" in one_error_line(proc.stderr)
    assert "not base64!" not in proc.stderr

    # the wrong key: the CA refuses, exit 1 with its detail (also under --debug: no secret)
    for debug in ((), ("--debug",)):
        proc = out.run(
            eab_certctl,
            *debug,
            *("account", "register", "--agree-tos", "--eab-kid", "kid-1"),
            *("--eab-hmac-key-env", "WRONG_KEY"),
            extra_env=env,
        )
        assert proc.returncode == 1, proc.stderr
        assert "the CA said: external account binding JWS verification error" in proc.stderr
    # an unknown kid: the CA's words too
    proc = out.run(
        eab_certctl,
        *("account", "register", "--agree-tos", "--eab-kid", "kid-9"),
        *("--eab-hmac-key-env", "EAB_KEY"),
        extra_env=env,
    )
    assert proc.returncode == 1
    assert "not known to the ACME server" in one_error_line(proc.stderr)

    # the right key: registered
    proc = out.run(
        eab_certctl,
        *("account", "register", "--agree-tos", "--email", "ops@example.com"),
        *("--eab-kid", "kid-1", "--eab-hmac-key-env", "EAB_KEY", "--json"),
        extra_env=env,
    )
    assert proc.returncode == 0, proc.stderr
    registered = json.loads(proc.stdout)
    assert registered["eab_kid"] == "kid-1" and registered["status"] == "valid"
    assert registered["existing"] is False
    assert registered["contact"] == ["mailto:ops@example.com"]
    assert registered["uri"].startswith(eab_certctl.pebble.directory_url.removesuffix("/dir"))

    # registering again reports the existing account, exit 0
    proc = out.run(eab_certctl, "account", "register", "--agree-tos", "--json")
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert again["existing"] is True and again["uri"] == registered["uri"]
    proc = out.run(eab_certctl, "account", "register")
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"Existing ACME account at {eab_certctl.pebble.directory_url}")

    # the EAB account issues certificates
    domain = unique("eab")
    proc = out.run(
        eab_certctl,
        *("obtain", "-d", domain, "--standalone"),
        *("--http-port", str(eab_certctl.pebble.http_port), "--json"),
    )
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(out.run(eab_certctl, "account", "show", "--json").stdout)
    assert shown["uri"] == registered["uri"] and shown["eab_kid"] == "kid-1"
    out.assert_no_secret(eab_certctl.store)


def test_eab_key_from_file(eab_certctl: Certctl, tmp_path: Path) -> None:
    out = Outputs()
    key_file = tmp_path / "eab.key"
    key_file.write_text(HMAC_KEY + "\n")
    proc = out.run(
        eab_certctl,
        *("account", "register", "--agree-tos", "--eab-kid", "kid-1"),
        *("--eab-hmac-key-file", str(key_file), "--key-type", "ec384", "--json"),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["key_type"] == "ec384"
    key = account_files(eab_certctl) / "account.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    out.assert_no_secret(eab_certctl.store)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--eab-kid", "kid-1"], "exactly one of --eab-hmac-key-env VAR or --eab-hmac-key-file"),
        (["--eab-hmac-key-env", "EAB_KEY"], "need --eab-kid"),
        (
            ["--eab-kid", "k", "--eab-hmac-key-env", "EAB_KEY", "--eab-hmac-key-file", "f"],
            "exactly one of",
        ),
        (["--eab-kid", "k", "--eab-hmac-key-env", "UNSET_VAR"], "UNSET_VAR is empty or not set"),
        (["--eab-kid", "k", "--eab-hmac-key-file", "/nonexistent"], "cannot read the EAB"),
        (["--eab-kid", "k", "--eab-hmac-key-env", "SHORT"], "too short for an HMAC key"),
    ],
)
def test_eab_bad_input_exits_2_and_creates_nothing(
    offline: Certctl, args: list[str], message: str
) -> None:
    env = {"EAB_KEY": HMAC_KEY, "SHORT": "c2hvcnQ"}
    proc = offline.run(
        "--server", "http://127.0.0.1:9/dir", "account", "register", "--agree-tos", *args,
        extra_env=env,
    )  # fmt: skip
    assert proc.returncode == 2
    assert message in one_error_line(proc.stderr)
    assert HMAC_KEY not in proc.stderr and "c2hvcnQ" not in proc.stderr
    with closing(offline.open()) as store:
        assert not store.exists()  # no store created (no tables on PostgreSQL)
    assert not offline.store.exists()


# ---- show ---------------------------------------------------------------------------


def test_account_show(certctl: Certctl) -> None:
    missing = certctl.run("account", "show")
    assert missing.returncode == 2
    assert "certctl account register --agree-tos" in one_error_line(missing.stderr)
    registered = certctl.json("account", "register", "--agree-tos", "--email", "me@example.com")
    shown = certctl.json("account", "show")
    assert shown == {
        "server": certctl.pebble.directory_url,  # type: ignore[union-attr]
        "uri": registered["uri"],
        "status": "valid",
        "contact": ["mailto:me@example.com"],
        "key_type": "ec256",
        "key_thumbprint": registered["key_thumbprint"],
        "created": registered["created"],
        "eab_kid": None,
        "source": "ca",
        "existing": False,
    }
    datetime.fromisoformat(shown["created"])
    offline = certctl.json("account", "show", "--offline")
    assert offline == {**shown, "source": "store"}
    text = certctl.run("account", "show", check=True).stdout
    assert f"uri:      {registered['uri']}" in text
    assert "status:   valid\n" in text and "contact:  mailto:me@example.com" in text


# ---- key rollover ---------------------------------------------------------------------


def test_rollover_then_obtain_with_the_new_key(certctl: Certctl) -> None:
    assert certctl.pebble is not None
    obtain(certctl, unique("before"))  # creates the account
    record, old_key, _ = stored_account(certctl)
    uri = record.uri

    report = certctl.json("account", "rollover", "--key-type", "ec384")
    assert report["uri"] == uri
    assert (report["old_key_type"], report["key_type"]) == ("ec256", "ec384")
    assert report["old_key_thumbprint"] != report["key_thumbprint"]
    record, new_key, previous = stored_account(certctl)
    assert new_key != old_key
    assert previous is None  # settled: the old key is gone
    assert record.key_type == "ec384"
    if certctl.backend == "filesystem":  # the key file on disk is private
        directory = account_files(certctl)
        assert (directory / "account.key").read_bytes() == new_key
        assert stat.S_IMODE((directory / "account.key").stat().st_mode) == 0o600
        assert sorted(p.name for p in directory.iterdir()) == ["account.key", "account.toml"]
        assert 'key_type = "ec384"' in (directory / "account.toml").read_text()

    # the new key orders and issues
    obtain(certctl, unique("after"))
    shown = certctl.json("account", "show")
    assert (shown["uri"], shown["key_type"]) == (uri, "ec384")
    assert shown["key_thumbprint"] == report["key_thumbprint"]

    # the old key no longer works: the CA refuses it
    stale = session_for(certctl.pebble)
    stale.login(old_key, uri)
    with pytest.raises(AcmeError, match="fetch the account: the CA said"):
        stale.account_details()
    assert stale.find_account(old_key) is None
    assert session_for(certctl.pebble).find_account(new_key) == uri


def test_rollover_killed_before_the_ca_was_asked_keeps_the_old_key(certctl: Certctl) -> None:
    obtain(certctl, unique("k1"))
    _, old_key, _ = stored_account(certctl)
    killed = certctl.run(
        "account", "rollover", extra_env={"CERTCTL_TEST_FAULT": "account-rollover-new-written"}
    )
    assert killed.returncode == -9
    _, key, previous = stored_account(certctl)
    assert previous == old_key
    assert key != old_key  # a key the CA never saw
    # the next run asks the CA which key it has (the old one) and goes on with it
    proc = certctl.run(
        "obtain", "-d", unique("k2"), "--standalone", "--http-port",
        str(certctl.pebble.http_port),  # type: ignore[union-attr]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "settled an interrupted account key rollover: the CA uses the old key" in proc.stderr
    assert stored_account(certctl)[1:] == (old_key, None)
    if certctl.backend == "filesystem":
        assert not (account_files(certctl) / "account.key.old").exists()
    # and a new rollover works
    certctl.json("account", "rollover")
    assert stored_account(certctl)[1] != old_key


def test_rollover_killed_after_the_ca_switched_keeps_the_new_key(certctl: Certctl) -> None:
    obtain(certctl, unique("k3"))
    _, old_key, _ = stored_account(certctl)
    killed = certctl.run(
        "account", "rollover", extra_env={"CERTCTL_TEST_FAULT": "account-rollover-settle"}
    )
    assert killed.returncode == -9
    _, new_key, previous = stored_account(certctl)
    assert new_key != old_key and previous == old_key
    shown = certctl.run("account", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "the CA uses the new key" in shown.stderr
    assert stored_account(certctl)[1:] == (new_key, None)
    if certctl.backend == "filesystem":
        assert not (account_files(certctl) / "account.key.old").exists()
    obtain(certctl, unique("k4"))


def test_rollover_without_account_exits_2(certctl: Certctl) -> None:
    proc = certctl.run("account", "rollover")
    assert proc.returncode == 2
    assert "no ACME account" in one_error_line(proc.stderr)


# ---- deactivate -------------------------------------------------------------------------


def test_deactivate_then_order_says_register_a_new_one(certctl: Certctl) -> None:
    assert certctl.pebble is not None
    obtain(certctl, unique("d1"))
    record, key, _ = stored_account(certctl)
    uri = record.uri

    refused = certctl.run("account", "deactivate")  # stdin is not a terminal
    assert refused.returncode == 2
    assert "add --yes" in one_error_line(refused.stderr)
    assert stored_account(certctl)[0].status == "valid"

    report = certctl.json("account", "deactivate", "--yes")
    assert (report["uri"], report["status"]) == (uri, "deactivated")
    assert stored_account(certctl)[0].status == "deactivated"
    stale = session_for(certctl.pebble)
    stale.login(key, uri)
    with pytest.raises(AcmeError, match="deactivated"):
        stale.account_details()

    proc = certctl.run("order", "-d", unique("d2"), "--agree-tos")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f"the ACME account {uri}" in line and "is deactivated" in line
    assert "certctl account register --agree-tos" in line
    assert certctl.json("account", "show")["status"] == "deactivated"
    again = certctl.json("account", "deactivate", "--yes")
    assert again["existing"] is True  # already deactivated: nothing to do

    # a new account (with a new key), and orders work again
    new = certctl.json("account", "register", "--agree-tos")
    assert new["uri"] != uri and new["existing"] is False and new["status"] == "valid"
    record, new_key, _ = stored_account(certctl)
    assert new_key != key and (record.uri, record.status) == (new["uri"], "valid")
    obtain(certctl, unique("d3"))


# ---- revoke -----------------------------------------------------------------------------


def test_revoke_superseded_then_renew_due_replaces_it(certctl: Certctl) -> None:
    assert certctl.pebble is not None
    domain = unique("rv")
    issued = obtain(certctl, domain)
    serial = issued["serial"]
    report = certctl.json("revoke", domain, "--reason", "superseded")
    assert report == {
        "name": domain,
        "serial": serial,
        "reason": "superseded",
        "server": certctl.pebble.directory_url,
        "signed_with": "account",
        "already_revoked": False,
        "revoked": True,
        "next_step": report["next_step"],
    }
    assert "renew-due" in report["next_step"]
    status = certctl.pebble.cert_status(serial)
    assert status is not None and status["Status"] == "Revoked"
    assert status.get("Reason") in (None, 4)
    listed = certctl.json("list")["certificates"]
    assert [(e["name"], e["state"]) for e in listed] == [(domain, "revoked")]
    with closing(certctl.open()) as store:
        assert store.read(domain).revoked

    # revoking again: the CA says it already is; still exit 0
    again = certctl.json("revoke", domain)
    assert again["already_revoked"] is True

    proc = certctl.run("renew-due", "--json")
    assert proc.returncode == 0, proc.stderr
    outcomes = json.loads(proc.stdout)["certificates"]
    assert [(o["name"], o["action"]) for o in outcomes] == [(domain, "renewed")]
    new_serial = outcomes[0]["serial"]
    assert new_serial != serial
    new_status = certctl.pebble.cert_status(new_serial)
    assert new_status is not None and new_status["Status"] == "Valid"
    with closing(certctl.open()) as store:
        assert not store.read(domain).revoked
    assert certctl.json("list")["certificates"][0]["state"] == "valid"
    quiet = certctl.run("renew-due")
    assert (quiet.returncode, quiet.stdout) == (0, "")


def test_revoke_key_compromise_signs_with_the_certificate_key(certctl: Certctl) -> None:
    assert certctl.pebble is not None
    domain = unique("kc")
    serial = obtain(certctl, domain)["serial"]
    # no account is needed: move it away
    if certctl.backend == "postgresql":
        sql(certctl, "CREATE TABLE accounts_away AS TABLE certctl_accounts")
        sql(certctl, "DELETE FROM certctl_accounts")
    else:
        accounts = certctl.store / "accounts"
        accounts.rename(certctl.store / "accounts-away")
        accounts.mkdir(mode=0o700)
    assert no_account(certctl)
    proc = certctl.run("revoke", domain, "--reason", "keyCompromise")
    assert proc.returncode == 0, proc.stderr
    assert f"{domain}: certificate {serial} revoked" in proc.stdout
    assert "signed with the certificate key" in proc.stdout
    status = certctl.pebble.cert_status(serial)
    assert status is not None and status["Status"] == "Revoked"
    with closing(certctl.open()) as store:
        assert store.read(domain).revoked
    assert no_account(certctl)  # and none was created
    if certctl.backend == "filesystem":
        assert not any(accounts.iterdir())


def test_revoke_uploaded_only_for_key_compromise(
    certctl: Certctl, store: Path, tmp_path: Path
) -> None:
    assert certctl.pebble is not None
    # a certificate from this CA, obtained by another store (another ACME client)
    other = Certctl(tmp_path / "other-store", certctl.pebble)
    domain = unique("up")
    serial = obtain(other, domain)["serial"]
    live = other.store / "certs" / domain / "live"
    upload = certctl.run(
        "upload", "shop", "--cert", str(live / "fullchain.pem"), "--key", str(live / "privkey.pem")
    )
    assert upload.returncode == 0, upload.stderr

    refused = certctl.run("revoke", "shop", "--reason", "superseded")
    assert refused.returncode == 2
    line = one_error_line(refused.stderr)
    assert "'shop' was uploaded" in line and "--reason keyCompromise" in line
    assert certctl.pebble.cert_status(serial)["Status"] == "Valid"  # type: ignore[index]

    report = certctl.json("revoke", "shop", "--reason", "keyCompromise")
    assert report["signed_with"] == "certificate key" and report["serial"] == serial
    assert "certctl upload shop --replace" in report["next_step"]
    assert certctl.pebble.cert_status(serial)["Status"] == "Revoked"  # type: ignore[index]
    assert certctl.json("list")["certificates"][0]["state"] == "revoked"


def test_revoke_bad_input(certctl: Certctl) -> None:
    unknown = certctl.run("revoke", "nothing-here")
    assert unknown.returncode == 2 and "certctl list" in one_error_line(unknown.stderr)
    domain = unique("ord")
    certctl.json("order", "-d", domain, "--agree-tos")
    pending = certctl.run("revoke", domain)
    assert pending.returncode == 2
    assert "no certificate yet" in one_error_line(pending.stderr)
    reason = certctl.run("revoke", domain, "--reason", "because")
    assert reason.returncode == 2
    assert "'because' is not one of" in one_error_line(reason.stderr)


# ---- profiles -----------------------------------------------------------------------------


def test_profile_shortlived_is_stored_and_reused_by_renewals(certctl: Certctl) -> None:
    domain = unique("sl")
    obtain(certctl, domain, "--profile", "shortlived")
    assert lifetime_days(certctl, domain) <= 6
    with closing(certctl.open()) as store:
        assert store.read(domain).profile == "shortlived"
    if certctl.backend == "filesystem":
        meta = certctl.store / "certs" / domain / "meta.toml"
        assert 'profile = "shortlived"' in meta.read_text()
    (entry,) = certctl.json("list")["certificates"]
    assert (entry["profile"], entry["state"]) == ("shortlived", "valid")
    assert entry["days_left"] <= 6

    make_due(certctl, domain)
    proc = certctl.run("renew-due", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [o["action"] for o in json.loads(proc.stdout)["certificates"]] == ["renewed"]
    assert lifetime_days(certctl, domain) <= 6
    assert certctl.json("list")["certificates"][0]["profile"] == "shortlived"
    # Pebble picks a random profile for an order that names none: so check that both
    # orders, the first and the renewal, asked for it
    assert order_profiles(certctl) == ["shortlived", "shortlived"]

    default = unique("df")
    obtain(certctl, default, "--profile", "default")
    assert lifetime_days(certctl, default) > 30


def test_unknown_profile_exits_2_listing_the_offered_ones(
    certctl: Certctl, eab_certctl: Certctl
) -> None:
    domain = unique("np")
    certctl.json("account", "register", "--agree-tos")
    proc = certctl.run("order", "-d", domain, "--profile", "tinylived")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "does not offer profile 'tinylived' (it offers: default, shortlived)" in line
    with closing(certctl.open()) as store:
        assert not store.has(domain)
    assert not (certctl.store / "certs" / domain / "meta.toml").exists()
    assert certctl.json("list")["certificates"] == []
    # a CA offering only its default profile
    eab_certctl.run(
        "account", "register", "--agree-tos", "--eab-kid", "kid-1",
        "--eab-hmac-key-env", "EAB_KEY", extra_env={"EAB_KEY": HMAC_KEY}, check=True,
    )  # fmt: skip
    proc = eab_certctl.run("order", "-d", domain, "--profile", "shortlived")
    assert proc.returncode == 2
    assert "(it offers: default)" in one_error_line(proc.stderr)
