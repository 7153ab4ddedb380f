"""The store module: layout, permissions, atomic writes, versions, locks, crash points."""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certctl.errors import BadInput, ExitCode, LockHeld, NotFound, StoreError
from certctl.models import CertRecord, Challenge, Current, OrderState, Validation
from certctl.store import Store, atomic_write, fault_point
from certctl.store import filesystem as store_module

SERVER = "https://acme.test/directory"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def warnings() -> list[str]:
    return []


@pytest.fixture
def store(tmp_path: Path, warnings: list[str]) -> Store:
    """A created store whose warnings are collected."""
    s = Store(tmp_path / "store", warn=warnings.append)
    s.ensure()
    return s


def record(name: str = "web", **kw: object) -> CertRecord:
    return CertRecord(name=name, domains=[f"{name}.example.com"], **kw)  # type: ignore[arg-type]


def full_record(name: str = "web") -> CertRecord:
    """A record using every nested table, for round trips and truncation."""
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    return CertRecord(
        name=name,
        domains=[f"{name}.example.com", f"www.{name}.example.com"],
        server=SERVER,
        validation=Validation(challenge="http", method="webroot", webroot="/var/www"),
        deploy_hook="systemctl reload nginx",
        created=when,
        current=Current(
            version=1,
            serial="0a1b",
            not_before=when,
            not_after=when,
            issuer="CN=Test CA",
            fingerprint="ab" * 32,
            names=[f"{name}.example.com"],
        ),
        order=OrderState(
            url="https://acme.test/order/1",
            status="pending",
            finalize_url="https://acme.test/finalize/1",
            expires=when,
            challenges=[
                Challenge(
                    domain=f"{name}.example.com",
                    authz_url="https://acme.test/authz/1",
                    url="https://acme.test/chall/1",
                    type="http-01",
                    token="tok",
                    validation="tok.thumb",
                )
            ],
        ),
    )


def leftovers(directory: Path) -> list[str]:
    """Temp/trash entries anywhere below `directory`."""
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if ".tmp" in p.name or p.name.startswith(".removed-")
    )


# ---- layout and permissions -------------------------------------------------


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077, 0o277])
def test_ensure_makes_0700_dirs_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    s = Store(tmp_path / "store", warn=lambda m: None)
    with umask(mask):
        s.ensure()
        s.write(record("web"))
        s.write_pending_key("web", b"PENDING")
        version = s.add_version("web", cert=b"C", chain=b"I", key=b"K")
        s.write_account_key(SERVER, b"ACCOUNT")
    root = tmp_path / "store"
    assert s.exists()
    dirs = [
        root,
        root / "certs",
        root / "accounts",
        root / "locks",
        root / "certs" / "web",
        root / "certs" / "web" / "versions",
        root / "certs" / "web" / "versions" / str(version),
        *(root / "accounts").iterdir(),
    ]
    assert len(dirs) == 8
    for directory in dirs:
        assert directory.is_dir()
        assert mode(directory) == 0o700, directory
    assert mode(root / "certctl-store.toml") == 0o600
    assert mode(root / "certs" / "web" / "meta.toml") == 0o600
    assert mode(root / "certs" / "web" / "pending.key") == 0o600
    vdir = root / "certs" / "web" / "versions" / str(version)
    assert mode(vdir / "privkey.pem") == 0o600
    assert mode(vdir / "cert.pem") == 0o644  # readable by the web server whatever the umask


def test_ensure_is_idempotent(store: Store, warnings: list[str]) -> None:
    marker = (store.root / "certctl-store.toml").read_bytes()
    store.ensure()
    assert (store.root / "certctl-store.toml").read_bytes() == marker
    assert warnings == []


def test_keys_are_0600_under_umask_000(tmp_path: Path) -> None:
    s = Store(tmp_path / "store", warn=lambda m: None)
    with umask(0o000):
        s.ensure()
        s.write_pending_key("web", b"PENDING KEY")
        s.write_account_key(SERVER, b"ACCOUNT KEY")
        version = s.add_version("web", cert=b"CERT", chain=b"CHAIN", key=b"VERSION KEY")
        s.switch_live("web", version)
    cert_dir = tmp_path / "store" / "certs" / "web"
    assert mode(cert_dir / "pending.key") == 0o600
    (account_dir,) = (tmp_path / "store" / "accounts").iterdir()
    assert mode(account_dir / "account.key") == 0o600
    vdir = cert_dir / "versions" / str(version)
    assert mode(vdir / "privkey.pem") == 0o600
    for public in ("cert.pem", "chain.pem", "fullchain.pem"):
        assert mode(vdir / public) == 0o644  # not world-writable despite umask 000
    assert s.read_pending_key("web") == b"PENDING KEY"
    assert s.read_account_key(SERVER) == b"ACCOUNT KEY"


def test_lock_file_is_0600_under_umask_000(tmp_path: Path) -> None:
    s = Store(tmp_path / "store", warn=lambda m: None)
    with umask(0o000), s.lock("web"):
        pass
    assert mode(tmp_path / "store" / "locks" / "web.lock") == 0o600


def test_symlinked_store_root_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    Store(real).ensure()
    link = tmp_path / "link"
    link.symlink_to(real)
    s = Store(link)
    with pytest.raises(BadInput, match="symlink") as info:
        s.check()
    assert info.value.exit_code == ExitCode.USAGE
    with pytest.raises(BadInput, match="symlink"):
        s.ensure()


def test_symlink_to_missing_store_root_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BadInput, match="symlink"):
        Store(link).ensure()
    assert not (tmp_path / "elsewhere").exists()


def test_store_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store"
    path.write_text("not a directory")
    with pytest.raises(BadInput):
        Store(path).ensure()
    assert path.read_text() == "not a directory"


@pytest.mark.parametrize("sub", ["", "certs", "locks", "accounts"])
def test_world_writable_store_dir_is_repaired_with_a_warning(
    store: Store, warnings: list[str], sub: str
) -> None:
    target = store.root / sub if sub else store.root
    os.chmod(target, 0o777)
    store.check()
    assert mode(target) == 0o700
    assert len(warnings) == 1
    assert str(target) in warnings[0]
    assert "777" in warnings[0] and "700" in warnings[0]
    warnings.clear()
    store.check()  # repaired: no second warning
    assert warnings == []


def test_symlinked_certs_dir_is_refused(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.root / "certs").rmdir()
    (store.root / "certs").symlink_to(outside)
    with pytest.raises(BadInput, match="symlink"):
        store.check()


def test_symlinked_cert_dir_is_not_written_through(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.root / "certs" / "web").symlink_to(outside)
    with pytest.raises(BadInput):
        store.write(record("web"))
    with pytest.raises(BadInput):
        store.add_version("web", cert=b"C", chain=b"", key=b"K")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".", "", "-x", "a\x00b"])
def test_invalid_names_never_become_paths(store: Store, tmp_path: Path, bad: str) -> None:
    before = sorted(tmp_path.rglob("*"))
    for call in (
        lambda: store.write(CertRecord(name=bad, domains=["x.example.com"])),
        lambda: store.read(bad),
        lambda: store.has(bad),
        lambda: store.write_pending_key(bad, b"K"),
        lambda: store.add_version(bad, cert=b"C", chain=b"", key=b"K"),
        lambda: store.remove(bad),
    ):
        with pytest.raises(BadInput, match="invalid certificate name"):
            call()
    assert sorted(tmp_path.rglob("*")) == before


# ---- metadata ---------------------------------------------------------------


def test_write_read_round_trip(store: Store) -> None:
    original = full_record("web")
    store.write(original)
    assert store.has("web")
    assert store.read("web") == original


def test_read_unknown_name_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="certctl list") as info:
        store.read("nosuch")
    assert "nosuch" in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'name = "web', id="truncated-string"),
        pytest.param(b'name = "web"\ndomains = [\n    "web.ex', id="truncated-array"),
        pytest.param(b"this is not toml", id="garbage"),
        pytest.param(b"", id="empty"),
        pytest.param(b'name = "web"\n', id="missing-domains"),
        pytest.param(b"\xff\xfe\x00name", id="not-utf8"),
        pytest.param(b'name = "web"\nname = "web"\ndomains = []\n', id="duplicate-key"),
    ],
)
def test_read_damaged_meta_raises_store_error_naming_the_cert(store: Store, content: bytes) -> None:
    store.write(record("web"))
    (store.root / "certs" / "web" / "meta.toml").write_bytes(content)
    with pytest.raises(StoreError) as info:
        store.read("web")
    assert "'web'" in str(info.value)
    assert "\n" not in str(info.value)


def test_read_meta_naming_another_cert_is_damaged(store: Store) -> None:
    store.write(record("web"))
    meta = store.root / "certs" / "web" / "meta.toml"
    meta.write_text(meta.read_text().replace('name = "web"', 'name = "other"'))
    with pytest.raises(StoreError, match="'web'"):
        store.read("web")


def test_read_every_truncation_is_a_record_or_store_error(store: Store) -> None:
    """Whatever prefix of a meta.toml survives, read() never fails with another error."""
    store.write(full_record("web"))
    meta = store.root / "certs" / "web" / "meta.toml"
    data = meta.read_bytes()
    unexpected = []
    for cut in range(len(data)):
        meta.write_bytes(data[:cut])
        try:
            store.read("web")
        except StoreError as e:
            assert "'web'" in str(e)
        except Exception as e:
            unexpected.append((cut, type(e).__name__))
    assert unexpected == []


@pytest.mark.parametrize(
    "extra",
    [
        'validation = "http"',
        "current = 5",
        'order = "x"',
        '[order]\nurl = "u"\nstatus = "pending"\nfinalize_url = "f"\nchallenges = [1]',
    ],
)
def test_read_wrongly_typed_meta_raises_store_error(store: Store, extra: str) -> None:
    store.write(record("web"))
    meta = store.root / "certs" / "web" / "meta.toml"
    meta.write_text(f'name = "web"\ndomains = ["web.example.com"]\n{extra}\n')
    with pytest.raises(StoreError, match="'web'"):
        store.read("web")


def test_names_skips_dot_entries_and_invalid_names(store: Store) -> None:
    store.write(record("good"))
    store.write(record("also.good"))
    certs = store.root / "certs"
    for junk in (".removed-good-1234", ".tmp-x", ".hidden", "-x", "_x", "a b", "a..b", "\u0430"):
        (certs / junk).mkdir()
        (certs / junk / "meta.toml").write_text('name = "junk"\ndomains = []\n')
    assert store.names() == ["also.good", "good"]


def test_names_of_missing_store_is_empty(tmp_path: Path) -> None:
    s = Store(tmp_path / "missing")
    assert s.names() == []
    assert not s.exists()
    assert not (tmp_path / "missing").exists()


# ---- atomic writes ----------------------------------------------------------


@contextmanager
def disk_full(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make every os.write fail with ENOSPC inside the block."""

    def failing_write(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(store_module.os, "write", failing_write)
        yield


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old")
    atomic_write(target, b"new content", 0o600)
    assert target.read_bytes() == b"new content"
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_atomic_write_large_data(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    atomic_write(tmp_path / "big", data, 0o644)
    assert (tmp_path / "big").read_bytes() == data


def test_atomic_write_failure_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old content")
    with disk_full(monkeypatch), pytest.raises(OSError) as info:
        atomic_write(target, b"new content", 0o600)
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_atomic_write_rename_failure_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old")

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(store_module.os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_write(target, b"new", 0o600)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_meta_write_on_full_disk_keeps_old_meta(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write(full_record("web"))
    meta = store.root / "certs" / "web" / "meta.toml"
    before = meta.read_bytes()
    changed = full_record("web")
    changed.domains = ["changed.example.com"]
    with disk_full(monkeypatch), pytest.raises(StoreError) as info:
        store.write(changed)
    message = str(info.value)
    assert "disk full" in message
    assert "'web'" in message
    assert "\n" not in message
    assert meta.read_bytes() == before
    assert leftovers(store.root) == []
    assert store.read("web") == full_record("web")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s.write_pending_key("web", b"NEW KEY"), id="pending-key"),
        pytest.param(lambda s: s.write_account_key(SERVER, b"NEW"), id="account-key"),
    ],
)
def test_key_write_on_full_disk_is_store_error(
    store: Store, monkeypatch: pytest.MonkeyPatch, call: object
) -> None:
    with disk_full(monkeypatch), pytest.raises(StoreError, match="disk full"):
        call(store)  # type: ignore[operator]
    assert leftovers(store.root) == []


def test_other_write_error_is_store_error_without_disk_full(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    store.write(record("web"))
    before = (store.root / "certs" / "web" / "meta.toml").read_bytes()
    monkeypatch.setattr(store_module.os, "fsync", failing_fsync)
    with pytest.raises(StoreError) as info:
        store.write(record("web", deploy_hook="x"))
    assert "disk full" not in str(info.value)
    assert os.strerror(errno.EIO) in str(info.value)
    monkeypatch.undo()
    assert (store.root / "certs" / "web" / "meta.toml").read_bytes() == before
    assert leftovers(store.root) == []


# ---- versions and live ------------------------------------------------------


def test_add_version_and_switch_live(store: Store) -> None:
    assert store.versions("web") == []
    assert store.live_version("web") is None
    assert store.read_live("web") is None

    v1 = store.add_version("web", cert=b"CERT1\n", chain=b"CHAIN1\n", key=b"KEY1\n")
    assert v1 == 1
    assert store.live_version("web") is None  # stored, not yet live
    store.switch_live("web", v1)

    cert_dir = store.root / "certs" / "web"
    live = cert_dir / "live"
    assert live.is_symlink()
    assert os.readlink(live) == "versions/1"  # relative: the store can be moved
    assert store.live_version("web") == 1
    assert (live / "privkey.pem").read_bytes() == b"KEY1\n"
    assert (live / "cert.pem").read_bytes() == b"CERT1\n"
    assert (live / "chain.pem").read_bytes() == b"CHAIN1\n"
    assert (live / "fullchain.pem").read_bytes() == b"CERT1\nCHAIN1\n"

    paths = store.live_paths("web")
    assert paths.privkey == live / "privkey.pem"
    assert paths.fullchain.read_bytes() == b"CERT1\nCHAIN1\n"
    assert set(paths.as_dict()) == {"cert", "chain", "fullchain", "privkey"}

    v2 = store.add_version("web", cert=b"CERT2\n", chain=b"CHAIN2\n", key=b"KEY2\n")
    assert v2 == 2
    assert store.live_version("web") == 1  # adding does not switch
    assert (live / "privkey.pem").read_bytes() == b"KEY1\n"
    store.switch_live("web", v2)
    assert os.readlink(live) == "versions/2"
    assert (paths.privkey).read_bytes() == b"KEY2\n"
    assert (paths.cert).read_bytes() == b"CERT2\n"

    # the older version is kept, intact, for rolling back by hand
    assert store.versions("web") == [1, 2]
    assert store.read_version("web", 1) == {
        "cert.pem": b"CERT1\n",
        "chain.pem": b"CHAIN1\n",
        "fullchain.pem": b"CERT1\nCHAIN1\n",
        "privkey.pem": b"KEY1\n",
    }
    store.switch_live("web", 1)
    assert store.read_live("web") == store.read_version("web", 1)
    assert leftovers(store.root) == []


def test_version_numbers_follow_the_highest(store: Store) -> None:
    for expected in (1, 2, 3):
        assert store.add_version("web", cert=b"C", chain=b"", key=b"K") == expected
    assert store.versions("web") == [1, 2, 3]
    assert store.add_version("other", cert=b"C", chain=b"", key=b"K") == 1


def test_switch_live_to_missing_version_keeps_live(store: Store) -> None:
    store.switch_live("web", store.add_version("web", cert=b"C", chain=b"", key=b"K"))
    with pytest.raises(StoreError, match="missing"):
        store.switch_live("web", 7)
    assert store.live_version("web") == 1


def test_add_version_on_full_disk_stores_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.switch_live("web", store.add_version("web", cert=b"C1", chain=b"", key=b"K1"))
    with disk_full(monkeypatch), pytest.raises(StoreError) as info:
        store.add_version("web", cert=b"C2", chain=b"", key=b"K2")
    assert "disk full" in str(info.value)
    assert "'web'" in str(info.value)
    assert store.versions("web") == [1]
    assert store.live_version("web") == 1
    assert store.read_live("web")["privkey.pem"] == b"K1"  # type: ignore[index]
    assert leftovers(store.root) == []


def test_read_incomplete_version_is_store_error(store: Store) -> None:
    v = store.add_version("web", cert=b"C", chain=b"", key=b"K")
    (store.root / "certs" / "web" / "versions" / str(v) / "chain.pem").unlink()
    with pytest.raises(StoreError, match="incomplete"):
        store.read_version("web", v)


# ---- remove -----------------------------------------------------------------


def test_remove_deletes_the_whole_entry(store: Store) -> None:
    store.write(full_record("web"))
    store.write(record("keep"))
    store.write_pending_key("web", b"K")
    store.switch_live("web", store.add_version("web", cert=b"C", chain=b"", key=b"K"))
    store.remove("web")
    assert not (store.root / "certs" / "web").exists()
    assert not store.has("web")
    assert store.names() == ["keep"]
    assert sorted(p.name for p in (store.root / "certs").iterdir()) == ["keep"]
    assert leftovers(store.root) == []
    with pytest.raises(NotFound):
        store.read("web")


def test_remove_unknown_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="nosuch"):
        store.remove("nosuch")


# ---- locks ------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from certctl.store import Store
    store = Store(Path(sys.argv[1]))
    with store.lock(sys.argv[2]):
        print("locked", flush=True)
        time.sleep(120)
    """
)


@pytest.fixture
def holder(store: Store) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock on 'web' until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.root), "web"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_lock_held_by_another_process_names_its_pid(
    store: Store, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LockHeld) as info, store.lock("web"):
        pytest.fail("lock taken while another process holds it")
    message = str(info.value)
    assert re.search(rf"\bpid {holder.pid}\b", message), message
    assert "'web'" in message
    assert "retry later" in message
    assert info.value.exit_code == ExitCode.NOT_YET


def test_lock_is_free_at_once_after_holder_is_killed(
    store: Store, holder: subprocess.Popen[str]
) -> None:
    holder.send_signal(9)
    assert holder.wait(timeout=10) == -9
    with store.lock("web"):  # no waiting, no stale-lock cleanup needed
        content = (store.root / "locks" / "web.lock").read_text()
        assert content == f"pid {os.getpid()}"


def test_locks_on_different_names_do_not_conflict(
    store: Store, holder: subprocess.Popen[str]
) -> None:
    with store.lock("other"), store.lock("third"):
        pass
    assert holder.poll() is None  # the holder still holds 'web'
    with pytest.raises(LockHeld), store.lock("web"):
        pass


def test_lock_is_exclusive_within_one_process(store: Store) -> None:
    with store.lock("web"):
        with pytest.raises(LockHeld), store.lock("web"):
            pass
        with store.lock("other"):
            pass
    with store.lock("web"):  # released on exit
        pass


def test_lock_refuses_invalid_names(store: Store) -> None:
    with pytest.raises(BadInput), store.lock("../escape"):
        pass
    assert not (store.root / "escape.lock").exists()
    assert not (store.root.parent / "escape.lock").exists()


# ---- fault points -----------------------------------------------------------


def test_fault_point_does_nothing_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTCTL_TEST_FAULT", raising=False)
    assert fault_point("meta-after") is None
    monkeypatch.setenv("CERTCTL_TEST_FAULT", "some-other-point")
    assert fault_point("meta-after") is None
    monkeypatch.setenv("CERTCTL_TEST_FAULT", "")
    assert fault_point("meta-after") is None
    monkeypatch.setenv("CERTCTL_TEST_FAULT", "meta")  # no prefix matching
    assert fault_point("meta-after") is None


def _python(code: str, fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CERTCTL_TEST_FAULT"}
    if fault is not None:
        env["CERTCTL_TEST_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_fault_point_kills_the_process_when_named() -> None:
    code = "from certctl.store import fault_point\nfault_point('boom')\nprint('survived')"
    killed = _python(code, "boom")
    assert killed.returncode == -9
    assert "survived" not in killed.stdout
    control = _python(code, "other")
    assert control.returncode == 0
    assert control.stdout.strip() == "survived"


def test_crash_while_adding_a_version_keeps_the_live_one(store: Store) -> None:
    store.switch_live("web", store.add_version("web", cert=b"C1", chain=b"", key=b"K1"))
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from certctl.store import Store
        s = Store(Path({str(store.root)!r}))
        v = s.add_version("web", cert=b"C2", chain=b"", key=b"K2")
        s.switch_live("web", v)
        print("survived")
        """
    )
    crashed = _python(code, "version-cert.pem")
    assert crashed.returncode == -9
    assert "survived" not in crashed.stdout
    assert store.versions("web") == [1]
    assert store.live_version("web") == 1
    assert store.read_live("web")["privkey.pem"] == b"K1"  # type: ignore[index]
    # the next attempt still works and gets the next number
    assert store.add_version("web", cert=b"C2", chain=b"", key=b"K2") == 2
