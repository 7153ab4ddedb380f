"""`account update --email` changes the contact at the CA (RFC 8555 §7.3.2), against Pebble;
`register --email` on an existing account points at it instead of ignoring the address."""

from __future__ import annotations

from contextlib import closing
from typing import Any

import pytest

from test_cli_offline import one_error_line, tree

from conftest import Certctl

pytestmark = pytest.mark.pebble


def state(certctl: Certctl) -> Any:
    """Everything the store holds: its files, or every row of its content tables."""
    if certctl.backend == "filesystem":
        return tree(certctl.store)
    import psycopg

    result = {}
    with psycopg.connect(certctl.location, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'certctl\\_%%'"
            " AND tablename <> 'certctl_locks' ORDER BY tablename"  # leases, not contents
        ).fetchall()
        for (table,) in tables:
            result[table] = sorted(map(repr, conn.execute(f"SELECT * FROM {table}").fetchall()))
    assert "certctl_accounts" in result  # the store exists: there is something to compare
    return result


def test_update_changes_the_contact_at_the_ca_and_in_the_store(certctl: Certctl) -> None:
    registered = certctl.json("account", "register", "--agree-tos", "--email", "old@example.com")
    updated = certctl.json("account", "update", "--email", "new@example.com")
    assert updated["uri"] == registered["uri"]
    assert (updated["contact"], updated["source"]) == (["mailto:new@example.com"], "ca")
    # the CA has it (POST-as-GET on the account), and so has the store
    shown = certctl.json("account", "show")
    assert (shown["source"], shown["contact"]) == ("ca", ["mailto:new@example.com"])
    assert certctl.json("account", "show", "--offline")["contact"] == ["mailto:new@example.com"]
    assert certctl.pebble is not None
    with closing(certctl.open()) as store:
        stored = store.read_account(certctl.pebble.directory_url)
    assert stored is not None and stored[0].email == "new@example.com"
    text = certctl.run("account", "update", "--email", "third@example.com", check=True).stdout
    assert text.startswith("Updated the contact of ACME account at ")
    assert "contact:  mailto:third@example.com" in text


def test_register_with_another_email_on_an_existing_account_says_use_update(
    certctl: Certctl,
) -> None:
    certctl.json("account", "register", "--agree-tos", "--email", "old@example.com")
    before = state(certctl)
    proc = certctl.run("account", "register", "--agree-tos", "--email", "new@example.com")
    assert proc.returncode == 2
    assert certctl.pebble is not None
    assert one_error_line(proc.stderr) == (
        f"error: an account already exists for {certctl.pebble.directory_url} (contact"
        " old@example.com): register did not change it; to change the contact run"
        " certctl account update --email new@example.com"
    )
    assert state(certctl) == before
    assert certctl.json("account", "show")["contact"] == ["mailto:old@example.com"]
    # the same address again is the idempotent "already registered", exit 0
    again = certctl.json("account", "register", "--agree-tos", "--email", "old@example.com")
    assert again["existing"] is True


def test_update_refusals_change_nothing(certctl: Certctl) -> None:
    missing = certctl.run("account", "update", "--email", "ops@example.com")
    assert missing.returncode == 2
    assert "certctl account register --agree-tos" in one_error_line(missing.stderr)
    certctl.json("account", "register", "--agree-tos", "--email", "old@example.com")
    before = state(certctl)
    for bad in ("not-an-address", "a@b", "two@example.com,three"):
        proc = certctl.run("account", "update", "--email", bad)
        assert proc.returncode == 2, bad
        assert one_error_line(proc.stderr).startswith("error: invalid e-mail address")
    assert state(certctl) == before
    certctl.json("account", "deactivate", "--yes")
    proc = certctl.run("account", "update", "--email", "new@example.com")
    assert proc.returncode == 2
    assert "is deactivated: register a new one" in one_error_line(proc.stderr)
