"""The store contract (store/contract.py), the same tests on both backends.

Each test runs on a filesystem store and on a PostgreSQL store (a real server,
tests/postgres.py), through the CertStore operations only: what ops/ and cli/
may rely on, whichever backend holds the certificates.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certctl.errors import BadInput, LockHeld, NotFound, StoreError
from certctl.models import AccountRecord, CertRecord, Current, Validation
from certctl.store.contract import CertStore, live_files
from certctl.store.opening import is_database_url, open_store

from conftest import BACKENDS, store_key

SERVER = "https://acme.test/directory"
WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def contract(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CertStore]:
    """A created store of each backend."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        store = open_store(url, key_file=store_key(tmp_path))
    else:
        store = open_store(str(tmp_path / "store"), warn=lambda message: None)
    store.ensure()
    try:
        yield store
    finally:
        store.close()


def record(name: str = "web", **kw: object) -> CertRecord:
    return CertRecord(
        name=name,
        domains=[f"{name}.example.com", f"www.{name}.example.com"],
        server=SERVER,
        validation=Validation(challenge="http", method="webroot", webroot="/var/www"),
        created=WHEN,
        **kw,  # type: ignore[arg-type]
    )


def facts(version: int = 1) -> Current:
    return Current(
        version=version,
        serial=f"0{version}",
        not_before=WHEN,
        not_after=WHEN,
        issuer="CN=Test CA",
        fingerprint="ab" * 32,
        names=["web.example.com"],
    )


def test_a_new_store_is_empty(contract: CertStore) -> None:
    assert contract.exists()
    assert contract.names() == []
    assert contract.records() == []
    assert contract.account_servers() == []
    assert not contract.has("web")


def test_records_round_trip_with_datetimes_and_nested_tables(contract: CertStore) -> None:
    written = record(renewal={"failures": 2, "last_error": "boom"}, notices={"email": {"at": WHEN}})
    contract.write(written)
    assert contract.has("web")
    assert contract.read("web") == written
    assert contract.names() == ["web"]
    [(name, listed)] = contract.records()
    assert name == "web" and listed == written


def test_unknown_names_are_not_found_and_bad_names_refused(contract: CertStore) -> None:
    with pytest.raises(NotFound, match="no certificate named 'nope'"):
        contract.read("nope")
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(BadInput):
            contract.read(bad)


def test_versions_and_the_live_switch(contract: CertStore) -> None:
    contract.write(record())
    assert contract.versions("web") == [] and contract.live_version("web") is None
    first = contract.add_version("web", cert=b"C1", chain=b"I1", key=b"K1", facts=facts(1))
    assert contract.live_version("web") is None  # stored, not live
    contract.switch_live("web", first)
    second = contract.add_version("web", cert=b"C2", chain=b"I2", key=b"K2", facts=facts(2))
    assert (first, second) == (1, 2)
    assert contract.versions("web") == [1, 2]
    assert contract.read_live("web") == {
        "cert.pem": b"C1",
        "chain.pem": b"I1",
        "fullchain.pem": b"C1I1",
        "privkey.pem": b"K1",
    }
    assert contract.unswitched_version("web", b"C2", b"K2") == 2
    assert contract.unswitched_version("web", b"C2", b"other key") is None
    contract.switch_live("web", second)
    assert contract.live_version("web") == 2
    assert contract.read_version("web", 1)["privkey.pem"] == b"K1"  # older versions kept
    assert contract.unswitched_version("web", b"C2", b"K2") is None  # it is live now


def test_switching_to_a_missing_version_keeps_live(contract: CertStore) -> None:
    contract.write(record())
    contract.switch_live("web", contract.add_version("web", cert=b"C", chain=b"", key=b"K"))
    with pytest.raises(StoreError, match="missing"):
        contract.switch_live("web", 7)
    assert contract.live_version("web") == 1


def test_a_copy_keeps_version_numbers_and_refuses_a_taken_one(contract: CertStore) -> None:
    contract.write(record())
    assert contract.add_version("web", cert=b"C", chain=b"", key=b"K", number=4) == 4
    with pytest.raises(StoreError):
        contract.add_version("web", cert=b"C", chain=b"", key=b"K", number=4)
    assert contract.add_version("web", cert=b"C", chain=b"", key=b"K") == 5


def test_a_failed_transaction_leaves_the_certificate_as_it_was(contract: CertStore) -> None:
    """On PostgreSQL nothing of the transaction lands; files are ordered, live the commit."""
    contract.write(record())
    contract.switch_live("web", contract.add_version("web", cert=b"C1", chain=b"", key=b"K1"))
    with pytest.raises(RuntimeError), contract.transaction():
        version = contract.add_version("web", cert=b"C2", chain=b"", key=b"K2")
        contract.switch_live("web", version)
        raise RuntimeError("crash before the record")
    if contract.backend == "postgresql":
        assert contract.live_version("web") == 1
        assert contract.versions("web") == [1]
    assert contract.read("web").name == "web"


def test_remove_deletes_versions_pending_keys_and_record(contract: CertStore) -> None:
    contract.write(record())
    contract.switch_live("web", contract.add_version("web", cert=b"C", chain=b"", key=b"K"))
    contract.write_pending_key("web", b"PENDING", "ab" * 8)
    contract.remove("web")
    assert not contract.has("web")
    assert contract.versions("web") == []
    assert contract.pending_key_ids("web") == []
    with pytest.raises(NotFound):
        contract.remove("web")


def test_pending_keys_by_order_id(contract: CertStore) -> None:
    contract.write(record())
    first, second = "a1" * 8, "b2" * 8
    contract.write_pending_key("web", b"OLD ORDER", None)
    contract.write_pending_key("web", b"FIRST", first)
    contract.write_pending_key("web", b"SECOND", second)
    assert set(contract.pending_key_ids("web")) == {None, first, second}
    assert contract.read_pending_key("web", first) == b"FIRST"
    assert contract.read_pending_key("web") == b"OLD ORDER"
    contract.drop_pending_key("web", keep=second)
    assert contract.pending_key_ids("web") == [second]
    contract.drop_pending_key("web", second)
    assert contract.pending_key_ids("web") == []
    assert contract.read_pending_key("web", second) is None


def test_accounts_and_the_key_rollover(contract: CertStore) -> None:
    account = AccountRecord(server=SERVER, uri="https://acme.test/acct/1", created=WHEN)
    assert contract.read_account(SERVER) is None
    contract.write_account_key(SERVER, b"KEY1")
    assert contract.read_account_key(SERVER) == b"KEY1"
    assert contract.read_account(SERVER) is None  # not registered yet
    contract.write_account(account)
    assert contract.read_account(SERVER) == (account, b"KEY1")
    assert contract.account_servers() == [SERVER]
    contract.begin_account_key_rollover(account, b"KEY2")
    assert contract.read_account(SERVER) == (account, b"KEY2")
    assert contract.previous_account_key(SERVER) == b"KEY1"
    with pytest.raises(StoreError, match="unsettled"):
        contract.begin_account_key_rollover(account, b"KEY3")
    contract.finish_account_key_rollover(account, keep_new=False)  # the CA kept the old key
    assert contract.read_account(SERVER) == (account, b"KEY1")
    assert contract.previous_account_key(SERVER) is None
    contract.begin_account_key_rollover(account, b"KEY2")
    contract.finish_account_key_rollover(account, keep_new=True)
    assert contract.read_account(SERVER) == (account, b"KEY2")


def test_a_lock_is_exclusive_and_freed(contract: CertStore) -> None:
    with contract.lock("web"):
        with pytest.raises(LockHeld, match="another certctl"):
            _lock_in_another_process(contract, "web")
        _lock_in_another_process(contract, "other")  # names don't conflict
    _lock_in_another_process(contract, "web")


def _lock_in_another_process(contract: CertStore, name: str) -> None:
    """Take and release the lock on `name` in a child process; re-raise LockHeld here."""
    key_file = getattr(contract, "key_file", None)
    script = textwrap.dedent(
        f"""
        import sys
        from certctl.errors import LockHeld
        from certctl.store.opening import open_store
        store = open_store({contract.location if is_database_url(contract.location) else str(contract.root)!r},
                           key_file={str(key_file) if key_file else None!r})
        try:
            with store.lock({name!r}):
                pass
        except LockHeld as e:
            print(e)
            sys.exit(3)
        """  # noqa: E501
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    if proc.returncode == 3:
        raise LockHeld(proc.stdout.strip())
    assert proc.returncode == 0, proc.stderr


def test_live_files_exist_only_where_the_store_has_files(contract: CertStore) -> None:
    contract.write(record())
    contract.switch_live("web", contract.add_version("web", cert=b"C", chain=b"", key=b"K"))
    paths = live_files(contract, "web")
    if contract.backend == "postgresql":
        assert paths == {}
        assert not contract.owns_path(Path("/tmp"))
    else:
        assert Path(paths["privkey"]).read_bytes() == b"K"
        assert contract.owns_path(Path(paths["privkey"]))


def test_records_lists_a_damaged_record_beside_the_good_ones(contract: CertStore) -> None:
    contract.write(record("good"))
    contract.write(record("bad"))
    _damage(contract, "bad")
    listed = dict(contract.records())
    assert isinstance(listed["good"], CertRecord)
    assert isinstance(listed["bad"], StoreError)
    assert "'bad'" in str(listed["bad"]) and "damaged" in str(listed["bad"])


def _damage(contract: CertStore, name: str) -> None:
    """Give `name` a record of the wrong type in a field (valid TOML / JSON otherwise)."""
    if contract.backend == "postgresql":
        contract.run(  # type: ignore[attr-defined]
            "damage",
            "UPDATE certctl_certificates SET record = jsonb_set(record, '{domains}', '\"x\"')"
            " WHERE name = %s",
            (name,),
        )
    else:
        meta = contract.root / "certs" / name / "meta.toml"  # type: ignore[attr-defined]
        meta.write_text(meta.read_text().replace("domains = [", "domains = 3\nold = ["))


def test_keys_never_reach_the_database_in_the_clear(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """PostgreSQL only: every key column holds sealed bytes, never the PEM."""
    url = request.getfixturevalue("pg_url")
    postgres = request.getfixturevalue("postgres")
    store = open_store(url, key_file=store_key(tmp_path))
    try:
        store.write(record())
        store.switch_live(
            "web",
            store.add_version("web", cert=b"C", chain=b"", key=b"-----BEGIN PRIVATE KEY-----"),
        )
        store.write_pending_key("web", b"-----BEGIN PRIVATE KEY----- pending", "cd" * 8)
        store.write_account_key(SERVER, b"-----BEGIN PRIVATE KEY----- account")
    finally:
        store.close()
    dump = postgres.pg_dump(url.rsplit("/", 1)[1])
    assert "certctl_versions" in dump
    assert "PRIVATE KEY" not in dump
    assert "BEGIN" not in dump
